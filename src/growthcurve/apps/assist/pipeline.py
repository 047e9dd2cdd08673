"""Fit, load, answer with and evaluate a customer-service assistant run folder.

A run is ``RUN/assist.json`` (temperature, threshold, encoder, figures; written last, so its presence means
the run is complete), ``RUN/faq.jsonl`` + ``RUN/faq_embeddings.npy`` (the checked FAQ and its vectors; the
faiss indexes are rebuilt from them on load, which takes milliseconds up to HNSW sizes) and the intent
classifier, trained into ``RUN/intent`` or referenced by path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from growthcurve.apps.assist.calibration import apply_temperature, choose_threshold, coverage_curve, fit_temperature
from growthcurve.apps.assist.config import AssistConfig, data_paths
from growthcurve.apps.assist.faq import FaqEntry, FaqIndex, SentenceEncoder, read_faq
from growthcurve.atomic import atomic_path, write_json, write_text
from growthcurve.errors import ConfigError, DataError, ModelError
from growthcurve.evaluation.ood import OodDetector, fit_detector, load_detector

__all__ = ["AssistRun", "evaluate_assistant", "fit_assistant", "log_turn", "read_labelled", "session_turns"]

HANDOFF_DEFAULT = "speak_to_human"


def read_labelled(
    path: str | Path, text_column: str, label_column: str, labels: list[str]
) -> tuple[list[str], list[int]]:
    """Texts and gold label indices of a labelled file; a label the model does not know is a DataError."""
    from growthcurve.data.readers import line_of, read_table, require_columns

    df = read_table(path)
    require_columns(df, [text_column, label_column], path)
    index = {lab: i for i, lab in enumerate(labels)}
    texts, gold = [], []
    for pos in range(len(df)):
        t, lab = df[text_column].iloc[pos], df[label_column].iloc[pos]
        if not isinstance(t, str) or not t.strip():
            raise DataError(f"'{path}' line {line_of(df, pos)}: the text is empty")
        if str(lab) not in index:
            raise DataError(f"'{path}' line {line_of(df, pos)}: label '{lab}' is not one of the intent model's labels")
        texts.append(t)
        gold.append(index[str(lab)])
    if not texts:
        raise DataError(f"'{path}' has no rows")
    return texts, gold


class AssistRun:
    """A loaded assistant: ``answer(["where is my order?"])`` gives an answer or a handoff per question."""

    def __init__(self, path: str | Path, batch_size: int = 64) -> None:
        from growthcurve.training.inference import Predictor

        path = Path(path)
        spec = path / "assist.json"
        if not spec.is_file():
            raise ModelError(f"'{path}' is not a finished assist run (no assist.json): run `growthcurve assist fit`")
        try:
            meta: dict[str, Any] = json.loads(spec.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"assist run '{path}' is corrupt or half-written: {exc}") from None
        if not isinstance(meta, dict) or meta.get("model_version") in (None, "", "pending"):
            # an `assist fit` of an older growthcurve wrote a placeholder first and stopped before replacing it
            raise ModelError(
                f"'{path}' holds an unfinished assist run (its assist.json has no model version): "
                "rerun `growthcurve assist fit` with --overwrite"
            )
        try:
            rows = [json.loads(x) for x in (path / "faq.jsonl").read_text(encoding="utf-8").splitlines() if x]
            vectors = np.load(path / "faq_embeddings.npy")
        except (OSError, ValueError) as exc:
            raise ModelError(f"assist run '{path}' is corrupt or half-written: {exc}") from None
        entries = [FaqEntry(r["id"], r["question"], r["answer"], r["intent"]) for r in rows]
        intent_dir = Path(meta["intent_run"])
        if not intent_dir.is_absolute():
            intent_dir = path / intent_dir
        try:
            predictor = Predictor(intent_dir, batch_size=batch_size)
        except (ModelError, DataError):
            raise
        except Exception as exc:  # transformers/safetensors raise their own types on a broken folder
            raise ModelError(f"cannot load the intent run '{intent_dir}': {type(exc).__name__}: {exc}") from None
        self._setup(path, meta, entries, vectors, predictor)

    @classmethod
    def from_parts(
        cls,
        path: Path,
        meta: dict[str, Any],
        entries: list[FaqEntry],
        vectors: np.ndarray,
        predictor: Any,
        detector: OodDetector | None = None,
    ) -> AssistRun:
        """An assistant built in memory (what `fit_assistant` scores dev with before it writes anything)."""
        run = cls.__new__(cls)
        run._setup(path, meta, entries, vectors, predictor, detector)
        return run

    def _setup(
        self,
        path: Path,
        meta: dict[str, Any],
        entries: list[FaqEntry],
        vectors: np.ndarray,
        predictor: Any,
        detector: OodDetector | None = None,
    ) -> None:
        self.path = path
        self.meta = meta
        self.entries = entries
        self.predictor = predictor
        self.labels: list[str] = list(predictor.labels)
        enc = meta["encoder"]
        self.encoder = SentenceEncoder(enc["name_or_path"], enc["max_length"], enc["batch_size"])
        ix = meta["index"]
        self.index = FaqIndex(self.entries, vectors, ix["hnsw_min_size"], ix["hnsw_m"], ix["ef_search"])
        self.temperature = float(meta["temperature"])
        self.threshold = float(meta["threshold"])
        self.handoff_intents = set(meta.get("handoff_intents", []))
        self.top_k = int(meta.get("top_k", 3))
        self.max_question_chars = int(meta.get("max_question_chars", 2000))
        self.name = str(meta.get("name") or path.name)
        self.model_version = str(meta["model_version"])
        # the out-of-scope detector whose flag hands a question over (answer.out_of_scope): the intent run's own,
        # or the kNN on the encoder's vectors kept in this folder; runs made before detectors have neither
        self.ood_source: str | None = meta.get("out_of_scope_source")
        self.detector = None
        if self.ood_source == "intent":
            self.detector = getattr(predictor, "detector", None)
            if self.detector is None:
                raise ModelError(
                    f"assist run '{path}' hands out-of-scope questions over with its intent run's detector, which "
                    f"is gone; refit it with `growthcurve ood fit {meta['intent_run']}`"
                )
        elif self.ood_source == "encoder":
            self.detector = detector if detector is not None else load_detector(path)
            if self.detector is None:
                raise ModelError(
                    f"assist run '{path}' is half-written: its out-of-scope detector (ood.json) is missing"
                )

    def scores(self, questions: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(raw intent probabilities, calibrated ones, query vectors, out-of-scope scores or None)."""
        ood = None
        if self.ood_source == "intent" and self.detector is not None:
            probs, logits, feats = self.predictor.kind.function("scores")(
                self.predictor.run, questions, None, self.predictor.batch_size
            )
            raw = np.asarray(probs, dtype=float)
            ood = self.detector.score(logits, feats)
        else:
            raw = np.asarray(self.predictor.predict_proba(questions), dtype=float)
        vecs = self.encoder.encode(questions)
        if self.ood_source == "encoder" and self.detector is not None:  # the retrieval vectors are its features
            ood = self.detector.score(np.log(np.clip(raw, 1e-12, 1.0)), vecs)
        return raw, apply_temperature(raw, self.temperature), vecs, ood

    def rank(self, cal: np.ndarray, vec: np.ndarray, k: int) -> tuple[list[tuple[int, float]], str]:
        """Top-k FAQ entries for one question: within the predicted intent first, then the next likeliest
        intents; global retrieval when the predicted intent has no FAQ entry."""
        order = np.argsort(-cal)
        top = self.labels[int(order[0])]
        if top not in self.index.by_intent:
            return self.index.search(vec[None], k)[0], "global"
        hits: list[tuple[int, float]] = []
        for i in order:
            lab = self.labels[int(i)]
            if lab in self.index.by_intent:
                hits += self.index.search(vec[None], k - len(hits), lab)[0]
                if len(hits) >= k:
                    break
        return hits, "intent"

    def answer(self, questions: list[str], top_k: int | None = None) -> list[dict[str, Any]]:
        """One result per question: ``outcome`` "answer" (with answer, confidence, candidates) or "handoff"
        (with ``reason``), never an answer below the calibrated-confidence threshold."""
        for q in questions:
            check_question(q, self.max_question_chars)
        if not questions:
            return []
        _, cal, vecs, ood = self.scores(questions)
        return [
            self._result(c, v, top_k or self.top_k, _at(ood, i)) for i, (c, v) in enumerate(zip(cal, vecs, strict=True))
        ]

    def _result(self, cal: np.ndarray, vec: np.ndarray, k: int, ood_score: float | None = None) -> dict[str, Any]:
        hits, how = self.rank(cal, vec, k)
        top = int(np.argmax(cal))
        intent = self.labels[top]
        best = self.entries[hits[0][0]] if hits else None
        conf_idx = self.labels.index(best.intent) if best is not None and best.intent in self.labels else top
        confidence = round(float(cal[conf_idx]), 6)  # compared as stored and shown
        candidates = [
            {
                "faq_id": fid,
                "question": self.entries[fid].question,
                "answer": self.entries[fid].answer,
                "intent": self.entries[fid].intent,
                "similarity": round(sim, 6),
            }
            for fid, sim in hits
        ]
        out: dict[str, Any] = {
            "intent": intent,
            "confidence": confidence,
            "threshold": self.threshold,
            "retrieval": how,
            "candidates": candidates,
            "label": intent,  # the predictions table's summary; /feedback corrects it with "label"
            "score": confidence,
        }
        out_of_scope = self.detector is not None and ood_score is not None and ood_score > self.detector.threshold
        if self.detector is not None and ood_score is not None:
            out["out_of_scope"] = bool(out_of_scope)
            out["ood_score"] = round(float(ood_score), 6)
        if out_of_scope:
            assert self.detector is not None and ood_score is not None
            reason = "out_of_scope"
            msg = (
                f"the question is unlike what the assistant was trained on ({self.detector.detector} out-of-scope "
                f"score {ood_score:.4g} above the threshold {self.detector.threshold:.4g})"
            )
        elif intent in self.handoff_intents:
            reason = "requested_human"
            msg = "the customer asked for a person"
        elif best is None:
            reason, msg = "no_faq_entry", "the FAQ has no entry to answer with"
        elif confidence < self.threshold:
            reason = "low_confidence"
            msg = f"calibrated confidence {confidence:.3f} is below the threshold {self.threshold:.3f}"
        else:
            reason = ""
            msg = ""
        if reason:
            out.update(outcome="handoff", reason=reason, message=msg, answer=None, faq_id=None)
        else:
            assert best is not None
            out.update(outcome="answer", reason=None, message=None, answer=best.answer, faq_id=best.id)
        return out


def _at(values: np.ndarray | None, i: int) -> float | None:
    return None if values is None else float(values[i])


def check_question(q: Any, limit: int) -> str:
    """A question must be a non-empty string of at most ``limit`` characters (DataError otherwise)."""
    if not isinstance(q, str):
        raise DataError(f"the question must be a string, got {type(q).__name__}")
    if not q.strip():
        raise DataError("the question is empty: type what the customer asked")
    if len(q) > limit:
        raise DataError(f"the question has {len(q)} characters, the limit is {limit} (answer.max_question_chars)")
    return q


# ---- evaluation -------------------------------------------------------------------------------------------


def evaluate_assistant(
    run: AssistRun, texts: list[str], gold: list[int], plot: Path | None = None, title: str = ""
) -> dict[str, Any]:
    """Intent accuracy, answer hit@1/hit@3, ECE before/after temperature scaling, handoff rate, answered
    accuracy and coverage at the run's threshold, and the coverage-vs-accuracy curve (PNG when ``plot``)."""
    from growthcurve.training.modelcard import expected_calibration_error

    y = np.asarray(gold, dtype=int)
    raw, cal, results, conf, hit1, hit3 = _score_rows(run, texts, y)
    answered = np.array([r["outcome"] == "answer" for r in results])
    t, cov, acc = coverage_curve(conf, hit1)
    keep = t >= 0
    summary = {
        "rows": len(texts),
        "intent_accuracy": float((cal.argmax(1) == y).mean()),
        "hit@1": float(hit1.mean()),
        "hit@3": float(hit3.mean()),
        "ece_before": expected_calibration_error(raw, y),
        "ece_after": expected_calibration_error(cal, y),
        "threshold": run.threshold,
        "handoff_rate": float(1 - answered.mean()),
        "coverage": float(answered.mean()),
        "answered_accuracy": float(hit1[answered].mean()) if answered.any() else None,
        "handoff_reasons": {
            k: int(sum(r["reason"] == k for r in results))
            for k in sorted({r["reason"] for r in results if r["reason"]})
        },
        "curve": {"threshold": t[keep].tolist(), "coverage": cov[keep].tolist(), "accuracy": acc[keep].tolist()},
    }
    if plot is not None:
        plot_curve(summary, plot, title)
    return summary


def plot_curve(summary: dict[str, Any], path: Path, title: str) -> None:
    """Coverage (x) against answered accuracy (y), the run's operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = summary["curve"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(c["coverage"], c["accuracy"], lw=1.8, label="answer if confidence ≥ t")
    if summary["answered_accuracy"] is not None:
        ax.scatter(
            [summary["coverage"]],
            [summary["answered_accuracy"]],
            color="C3",
            zorder=3,
            label=f"threshold {summary['threshold']:.3f}",
        )
    ax.set_xlabel("coverage (share answered, rest handed to a human)")
    ax.set_ylabel("accuracy of the answered part")
    ax.set_xlim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title or "coverage vs answered accuracy")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# ---- fitting ----------------------------------------------------------------------------------------------


def _intent_config(cfg: AssistConfig, out: Path, train: str, dev: str | None, test: str | None) -> Any:
    """The finetune config of the intent model `assist fit` trains into ``RUN/intent`` (checked, not run)."""
    from growthcurve.config import load_finetune_config

    sets = [
        f"data.train={train}",
        f"data.text_column={cfg.data.text_column}",
        f"data.label_column={cfg.data.label_column}",
        f"output_dir={out / 'intent'}",
        f"train.seed={cfg.seed}",
    ]
    if dev:
        sets.append(f"data.dev={dev}")
    if test:
        sets.append(f"data.test={test}")
    ft = load_finetune_config(None, [*sets, *cfg.intent.overrides])
    if ft.task != "text-classification" or ft.data.multi_label:
        raise ConfigError("the intent model must be single-label text-classification (intent.overrides)")
    if cfg.answer.out_of_scope == "intent" and ft.ood.detector == "none":
        raise ConfigError(
            "intent.overrides sets ood.detector=none but answer.out_of_scope=intent hands out-of-scope questions "
            "over with that detector; drop the override or choose answer.out_of_scope=encoder/off"
        )
    return ft


def _expected_labels(cfg: AssistConfig, train: str, ft: Any) -> list[str]:
    """The labels the intent model has (intent.run) or will have (the training file's), read before training."""
    from growthcurve.data.text import load_text_splits
    from growthcurve.training.runfolder import read_meta

    if cfg.intent.run is not None:
        run = Path(cfg.intent.run)
        if not (run / "model").is_dir():
            raise ConfigError(f"intent.run '{run}' is not a run folder (no model/ in it)")
        _, meta, labels = read_meta(run)
        if meta.get("task", "text-classification") != "text-classification" or meta.get("multi_label"):
            raise ConfigError(f"intent.run '{run}' must be a single-label text-classification run")
        return labels
    # the recipe's own reading of train/dev/test: unknown dev/test labels and bad rows fail here, before training
    return load_text_splits(ft.data, seed=ft.train.seed, label_names=ft.data.labels).labels


def _ood_source(cfg: AssistConfig, ft: Any) -> str | None:
    """Which detector hands out-of-scope questions over: "intent", "encoder" or None (answer.out_of_scope)."""
    choice = cfg.answer.out_of_scope
    if choice == "off":
        return None
    if choice != "auto":
        return choice
    if ft is not None:
        model_type = ft.model.type
    else:
        from growthcurve.training.runfolder import read_meta

        assert cfg.intent.run is not None  # ft is None only when the config names an intent run
        model_type = read_meta(cfg.intent.run)[1].get("model_type", "transformer")
    return "intent" if model_type == "transformer" else "encoder"


def _check_inputs(cfg: AssistConfig, faq_path: str, labels: list[str], dev: str, test: str | None) -> list[str]:
    """Everything `assist fit` reads, checked against the intent labels before minutes of training: the FAQ's
    intents, the handoff intents, and the dev/test labels. Returns the handoff intents."""
    read_faq(faq_path, labels)
    handoff = cfg.answer.handoff_intents
    if handoff is None:
        handoff = [HANDOFF_DEFAULT] if HANDOFF_DEFAULT in labels else []
    unknown = [h for h in handoff if h not in labels]
    if unknown:
        raise ConfigError(f"answer.handoff_intents {unknown} are not labels of the intent model")
    for path in (dev, test):
        if path:
            read_labelled(path, cfg.data.text_column, cfg.data.label_column, labels)
    if cfg.intent.run is not None and cfg.answer.out_of_scope == "intent":
        from growthcurve.training.ood import require_detector

        require_detector(cfg.intent.run)  # a run made before detectors: the line names `growthcurve ood fit`
    return handoff


def _version(intent_dir: Path, blobs: list[bytes], settings: dict[str, Any]) -> str:
    """12 hex over the intent model's version, the FAQ and its vectors (the bytes written), and the settings."""
    from growthcurve.training.runfolder import model_version

    h = hashlib.sha256(model_version(intent_dir / "model").encode())
    for b in blobs:
        h.update(b)
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:12]


def fit_assistant(
    cfg: AssistConfig, overwrite: bool = False, progress: bool = True, log: Callable[[str], None] = print
) -> Path:
    """Train (or take) the intent model, embed and index the FAQ, calibrate on dev, choose the threshold.

    Every input is checked before the intent model trains; the assistant is built and scored in memory and
    its files are written at the end, ``assist.json`` last: a run that stops midway has no ``assist.json``.
    """
    import io

    from growthcurve.apps.assist.config import BUNDLED
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import Predictor
    from growthcurve.training.modelcard import expected_calibration_error

    out = Path(cfg.output_dir)
    if (out / "assist.json").exists() and not overwrite:
        raise ConfigError(f"'{out}' already holds an assist run: pass --overwrite or set output_dir")
    train, dev, test = data_paths(cfg)
    if dev is None:
        raise ConfigError("set data.dev: temperature scaling and the threshold are fitted on a dev split")
    faq_path = cfg.faq or str(BUNDLED / "faq.csv")
    ft = _intent_config(cfg, out, train, dev, test) if cfg.intent.run is None else None
    handoff = _check_inputs(cfg, faq_path, _expected_labels(cfg, train, ft), dev, test)
    source = _ood_source(cfg, ft)
    if source == "intent" and cfg.intent.run is not None:
        from growthcurve.training.ood import require_detector

        require_detector(cfg.intent.run)
    intent_dir = Path(str(cfg.intent.run)) if ft is None else Path(run_finetune(ft, progress=progress).run_dir)
    predictor = Predictor(intent_dir)
    labels = list(predictor.labels)
    entries = read_faq(faq_path, labels)
    log(f"embedding {len(entries)} FAQ questions with {cfg.encoder.name_or_path}")
    encoder = SentenceEncoder(cfg.encoder.name_or_path, cfg.encoder.max_length, cfg.encoder.batch_size)
    vectors = encoder.encode([e.question for e in entries]).astype(np.float32)
    faq_text = "".join(json.dumps(e.__dict__, ensure_ascii=False) + "\n" for e in entries)
    buf = io.BytesIO()
    np.save(buf, vectors)
    dev_texts, dev_y = read_labelled(dev, cfg.data.text_column, cfg.data.label_column, labels)
    raw_dev = predictor.predict_proba(dev_texts)
    temperature = fit_temperature(raw_dev, np.asarray(dev_y))
    log(f"temperature {temperature:.3f} fitted on {len(dev_texts)} dev rows")
    settings = {
        "temperature": temperature,
        "handoff_intents": handoff,
        "top_k": cfg.answer.top_k,
        "max_question_chars": cfg.answer.max_question_chars,
        "encoder": cfg.encoder.model_dump(),
        "index": cfg.index.model_dump(),
        "out_of_scope_source": source,
    }
    try:
        rel = intent_dir.resolve().relative_to(out.resolve())
        intent_ref = str(rel)
    except ValueError:
        intent_ref = str(intent_dir.resolve())
    meta: dict[str, Any] = {
        "name": cfg.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "intent_run": intent_ref,
        "intent_model_type": predictor.run.meta.get("model_type"),
        "faq_source": str(faq_path),
        "faq_entries": len(entries),
        "threshold": 0.0,  # chosen below from the dev answers of this in-memory assistant
        **settings,
        "model_version": "",  # set below, once the threshold is known
    }
    encoder_detector = None
    if source == "encoder":  # kNN on the encoder's vectors of the training questions, threshold on dev
        tr_texts, tr_y = read_labelled(train, cfg.data.text_column, cfg.data.label_column, labels)
        log(f"out-of-scope detector: kNN (k={cfg.answer.ood_k}) on {len(tr_texts)} training questions")
        encoder_detector = fit_detector(
            encoder.encode(tr_texts), np.asarray(tr_y), len(labels), np.log(np.clip(raw_dev, 1e-12, 1.0)),
            encoder.encode(dev_texts), detector="knn", in_scope_recall=cfg.answer.ood_in_scope_recall,
            k=cfg.answer.ood_k, seed=cfg.seed,
        )  # fmt: skip
        encoder_detector.info["features"] = f"FAQ encoder {cfg.encoder.name_or_path} (mean-pooled, normalised)"
    elif source == "intent" and predictor.detector is None:
        from growthcurve.training.ood import missing_detector

        raise missing_detector(intent_dir)
    run = AssistRun.from_parts(out, meta, entries, vectors, predictor, encoder_detector)
    if run.detector is not None:
        det = run.detector
        log(f"out-of-scope questions are handed over: {det.detector} detector, threshold {det.threshold:.4g}")
    raw, cal, _, conf, dev_hit, _ = _score_rows(run, dev_texts, np.asarray(dev_y))
    if cfg.answer.threshold is not None:
        threshold, reached = cfg.answer.threshold, None
    else:
        threshold, cov, acc, reached = choose_threshold(
            conf, dev_hit, cfg.answer.target_accuracy, cfg.answer.accuracy_bound
        )
        threshold = max(threshold, 0.0)  # -1 marks rows handed over anyway: "answer all the others" is 0
        note = "" if reached else " (target not reached: the best answered accuracy instead)"
        log(f"threshold {threshold:.4f} on dev: answered accuracy {acc:.3f}, coverage {cov:.3f}{note}")
    meta.update(
        threshold=float(threshold),
        target_accuracy=cfg.answer.target_accuracy,
        accuracy_bound=cfg.answer.accuracy_bound,
        target_reached_on_dev=reached,
        ece_dev_before=expected_calibration_error(raw, np.asarray(dev_y)),
        ece_dev_after=expected_calibration_error(cal, np.asarray(dev_y)),
        out_of_scope_detector=None if run.detector is None else run.detector.detector,
        out_of_scope_threshold=None if run.detector is None else run.detector.threshold,
    )
    meta["model_version"] = _version(
        intent_dir,
        [faq_text.encode("utf-8"), buf.getvalue()],
        {**settings, "threshold": float(threshold), "ood_threshold": meta["out_of_scope_threshold"]},
    )
    run.threshold = float(threshold)
    run.model_version = meta["model_version"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "assist.json").unlink(missing_ok=True)  # --overwrite: the old spec never describes the new files
    metrics: dict[str, Any] = {"dev": evaluate_assistant(run, dev_texts, dev_y, out / "coverage_dev.png", "dev")}
    if test:
        tt, ty = read_labelled(test, cfg.data.text_column, cfg.data.label_column, labels)
        metrics["test"] = evaluate_assistant(run, tt, ty, out / "coverage_test.png", "test")
    meta["metrics"] = {s: {k: v for k, v in m.items() if k != "curve"} for s, m in metrics.items()}
    if encoder_detector is not None:
        encoder_detector.save(out)
    write_text(out / "faq.jsonl", faq_text)
    with atomic_path(out / "faq_embeddings.npy") as tmp:
        tmp.write_bytes(buf.getvalue())
    write_json(out / "metrics.json", metrics)
    write_json(out / "assist.json", meta)  # last, once: its presence marks the run as complete
    return out


def _score_rows(
    run: AssistRun, texts: list[str], y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray, np.ndarray, np.ndarray]:
    """(raw probs, calibrated probs, results, answerable confidence, hit@1, hit@3) of labelled questions.

    Rows that are never answered (a handoff intent, nothing retrieved, out of scope) get confidence -1, so no
    threshold in [0, 1] answers them and the coverage curve counts them as handed over."""
    raw, cal, vecs, ood = run.scores(texts)
    k = max(3, run.top_k)
    results = [run._result(c, v, k, _at(ood, i)) for i, (c, v) in enumerate(zip(cal, vecs, strict=True))]
    gold = [run.labels[i] for i in y]
    found = [[c["intent"] for c in r["candidates"]] for r in results]
    hit1 = np.array([g in f[:1] for g, f in zip(gold, found, strict=True)], dtype=bool)
    hit3 = np.array([g in f[:3] for g, f in zip(gold, found, strict=True)], dtype=bool)
    never = [r["intent"] in run.handoff_intents or not r["candidates"] or r.get("out_of_scope") for r in results]
    conf = np.array([-1.0 if n else r["confidence"] for n, r in zip(never, results, strict=True)])
    return raw, cal, results, conf, hit1, hit3


# ---- conversation log -------------------------------------------------------------------------------------


def new_session_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex


def log_turn(
    engine: Any,
    session_id: str,
    channel: str,
    run: AssistRun,
    question: str,
    result: dict[str, Any],
    request_id: str | None = None,
) -> int:
    """Append one turn (answer or handoff) of ``session_id`` and return its turn number (1-based)."""
    import sqlalchemy as sa

    from growthcurve.store.schema import assist_turns

    if not isinstance(session_id, str) or not 1 <= len(session_id) <= 128:
        raise DataError("the session id must be a string of 1-128 characters")
    try:
        with engine.begin() as conn:
            q = sa.select(sa.func.coalesce(sa.func.max(assist_turns.c.turn), 0)).where(
                assist_turns.c.session_id == session_id
            )
            turn = int(conn.execute(q).scalar_one()) + 1
            conn.execute(
                assist_turns.insert().values(
                    session_id=session_id,
                    turn=turn,
                    ts=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    channel=channel,
                    model_name=run.name,
                    model_version=run.model_version,
                    request_id=request_id,
                    question=question,
                    intent=result.get("intent"),
                    confidence=result.get("confidence"),
                    outcome=result["outcome"],
                    reason=result.get("reason"),
                    faq_id=result.get("faq_id"),
                    answer=result.get("answer"),
                )
            )
    except sa.exc.OperationalError as exc:
        raise DataError(f"cannot log the turn to {engine.url!r}: {exc.orig}") from None
    return turn


def session_turns(engine: Any, session_id: str) -> list[dict[str, Any]]:
    """The logged turns of one conversation, in order."""
    import sqlalchemy as sa

    from growthcurve.store.schema import assist_turns

    q = sa.select(assist_turns).where(assist_turns.c.session_id == session_id).order_by(assist_turns.c.turn)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
