"""A run's out-of-scope detector: fit it from the run's own model and splits, keep it in ``model/``, load it.

The scores and the threshold rules are `growthcurve.evaluation.ood`; this module feeds them the model's
logits and pooled features (the input of its classification head). Every single-label text-classification
recipe calls `fit_run_detector` at its end; ``growthcurve ood fit RUN`` (`fit_detector_for_run`) adds a
detector to a run made before detectors existed, from the training and dev files its ``config.yaml`` names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from growthcurve.config import FinetuneConfig, OodConfig, load_finetune_config
from growthcurve.data.text import TextExamples, TextSplits, load_text_splits
from growthcurve.errors import ConfigError, DataError, ModelError
from growthcurve.evaluation.ood import DETECTOR_FILE, OodDetector, fit_detector, load_detector, ood_report
from growthcurve.training.batching import encode_texts
from growthcurve.training.registry import kind_of
from growthcurve.training.runfolder import MODEL_DIR, LoadedRun, load_run, read_meta
from growthcurve.training.scoring import join_pairs, predict_logits_features

CPU = torch.device("cpu")
Scores = tuple[np.ndarray, np.ndarray, np.ndarray | None]
"""(probabilities [n, labels], logits [n, labels], pooled features [n, d] or None) of a batch of texts."""
Scorer = Callable[[TextExamples], tuple[np.ndarray, np.ndarray | None]]
"""Logits and pooled features of a split's texts (a recipe's best model, or a loaded run)."""


def probs_from_logits(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Softmax (sigmoid for multi-label) in float32 torch, the operation `scoring.predict_probs` applies."""
    t = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    return (torch.sigmoid(t) if multi_label else torch.softmax(t, dim=-1)).numpy()


def encode_examples(tokenizer: Any, texts: list[str], pairs: list[str] | None, max_length: int) -> Any:
    """Token ids of unlabelled texts, encoded as training encoded them."""
    enc = encode_texts(tokenizer, texts, pairs, np.zeros(len(texts), dtype=np.int64), max_length, progress=False)
    enc.labels = None  # type: ignore[assignment]
    return enc


def text_scores(run: LoadedRun, texts: list[str], pairs: list[str] | None, batch_size: int) -> Scores:
    """Probabilities, logits and pooled features of a run whose model reads token ids."""
    enc = encode_examples(run.tokenizer, texts, pairs, run.meta["max_length"])
    pad_id = run.tokenizer.pad_token_id or 0
    bf16 = run.meta.get("precision") == "bf16"
    logits, feats = predict_logits_features(run.model, enc, pad_id, batch_size, bf16, CPU, progress=False)
    return probs_from_logits(logits, bool(run.meta["multi_label"])), logits, feats


def tfidf_features(model: Any, texts: list[str]) -> Any:
    """A TF-IDF run's features: the sparse word and character n-gram vectors its logistic regression reads.
    (Its per-class scores as features missed "What is the capital of France?" on the bundled intents: an
    unrelated question still lands near a class in a 12-dimensional score space; its n-grams do not.)"""
    return model.pipeline_.named_steps["features"].transform(texts)


def tfidf_scores(run: LoadedRun, texts: list[str], pairs: list[str] | None, batch_size: int) -> Scores:
    """Probabilities, logits and sparse n-gram features of a TF-IDF run."""
    joined = join_pairs(texts, pairs)
    return run.model.predict_proba(joined), run.model.decision_function(joined), tfidf_features(run.model, joined)


def model_scorer(
    model: torch.nn.Module,
    tokenizer: Any,
    max_length: int,
    batch_size: int,
    bf16: bool,
    device: torch.device,
    progress: bool = False,
) -> Scorer:
    """Logits and features of a recipe's (best) token-id model for any split (`Scorer`), each split scored
    once (the detector's fit and its report share them)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seen: dict[int, tuple[TextExamples, tuple[np.ndarray, np.ndarray | None]]] = {}

    def scorer(ex: TextExamples) -> tuple[np.ndarray, np.ndarray | None]:
        if id(ex) not in seen:
            enc = encode_examples(tokenizer, ex.texts, ex.pairs, max_length)
            desc = "out-of-scope features"
            seen[id(ex)] = (ex, predict_logits_features(model, enc, pad_id, batch_size, bf16, device, desc, progress))
        return seen[id(ex)][1]

    return scorer


def tfidf_scorer(model: Any) -> Scorer:
    """Logits and sparse n-gram features of a TF-IDF model for any split (`Scorer`)."""

    def scorer(ex: TextExamples) -> tuple[np.ndarray, Any]:
        joined = join_pairs(ex.texts, ex.pairs)
        return model.decision_function(joined), tfidf_features(model, joined)

    return scorer


def run_scorer(run: LoadedRun, batch_size: int = 64, progress: bool = False) -> Scorer:
    """Logits and features of a loaded run's model for any split (`Scorer`)."""
    if kind_of(run.meta).scores is None:
        raise ModelError(f"a {run.meta.get('task')} run has no out-of-scope detector (text classification only)")
    if run.meta.get("model_type") == "tfidf":
        return tfidf_scorer(run.model)
    bf16 = run.meta.get("precision") == "bf16"
    return model_scorer(run.model, run.tokenizer, run.meta["max_length"], batch_size, bf16, CPU, progress)


def _oos_examples(splits: TextSplits, names: tuple[str, ...]) -> TextExamples | None:
    """The out-of-scope rows of ``names`` splits in one set (None when there are none)."""
    parts = [splits.oos[n] for n in names if n in splits.oos]
    if not parts:
        return None
    pairs = None if parts[0].pairs is None else [p for x in parts for p in (x.pairs or [])]
    return TextExamples([t for x in parts for t in x.texts], pairs, np.concatenate([x.labels for x in parts]))


def fit_run_detector(
    model_dir: Path,
    cfg: OodConfig,
    seed: int,
    labels: list[str],
    splits: TextSplits,
    scorer: Scorer,
) -> tuple[OodDetector | None, str | None]:
    """Fit the detector on ``splits`` (class statistics on train, threshold on dev, out-of-scope rows of train
    and dev when ``data.oos_label`` gave some) and save it into ``model_dir``.

    Returns (detector, None), or (None, why none was fitted) for a run it does not apply to.
    """
    if cfg.detector == "none":
        return None, None
    if splits.multi_label:  # no warning: nothing to act on (any label may be absent; none above 0.5 says so)
        return None, None
    if splits.dev is None or len(splits.dev) == 0:
        return None, "no dev split: no out-of-scope detector (its threshold is chosen on dev)"
    train_logits, train_feats = scorer(splits.train)  # the longest step: every training row once
    dev_logits, dev_feats = scorer(splits.dev)
    oos = _oos_examples(splits, ("train", "dev"))
    oos_logits, oos_feats = scorer(oos) if oos is not None else (None, None)
    det = fit_detector(
        train_feats,
        splits.train.labels,
        len(labels),
        dev_logits,
        dev_feats,
        oos_logits,
        oos_feats,
        detector=cfg.detector,
        in_scope_recall=cfg.in_scope_recall,
        k=cfg.knn_k,
        bank_size=cfg.bank_size,
        seed=seed,
    )
    det.info["fitted"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    det.info["feature_dim"] = None if train_feats is None else int(train_feats.shape[1])
    det.save(model_dir)
    return det, None


def split_report(det: OodDetector, scorer: Scorer, ex: TextExamples, oos: TextExamples | None) -> dict[str, Any]:
    """What the detector does on one labelled split: the in-scope rows it answers (and their accuracy) and,
    with out-of-scope rows, AUROC, FPR@95 and out-of-scope recall at its threshold (`ood_report`)."""
    logits, feats = scorer(ex)
    in_scores = det.score(logits, feats)
    correct = logits.argmax(axis=1) == ex.labels
    answered = in_scores <= det.threshold
    out: dict[str, Any] = {
        "detector": det.detector,
        "threshold": det.threshold,
        "in_scope_rows": len(ex),
        "in_scope_answered": float(answered.mean()),
        "in_scope_accuracy": float(correct.mean()),
        "in_scope_answered_accuracy": float(correct[answered].mean()) if answered.any() else None,
    }
    if oos is not None and len(oos):
        oos_logits, oos_feats = scorer(oos)
        out.update(ood_report(in_scores, det.score(oos_logits, oos_feats), det.threshold, correct))
        out["per_detector"] = {
            name: ood_report(det.score(logits, feats, name), det.score(oos_logits, oos_feats, name),
                             det.thresholds[name], correct)
            for name in det.thresholds
        }  # fmt: skip
    return out


def fit_in_recipe(
    run_dir: Path,
    cfg: FinetuneConfig,
    labels: list[str],
    splits: TextSplits,
    scorer: Scorer,
    summary: dict[str, Any],
    warnings: list[str],
    echo: Callable[[str], None] | None = None,
) -> OodDetector | None:
    """The recipes' end of run: fit and save the detector, put what it does on dev/test into ``summary["ood"]``
    (metrics.json); when the run gets none, say why in ``warnings`` (and through ``echo``)."""
    det, why = fit_run_detector(run_dir / MODEL_DIR, cfg.ood, cfg.train.seed, labels, splits, scorer)
    if det is None:
        if why:
            warnings.append(why)
            if echo is not None:
                echo(f"warning: {why}")
        return None
    report: dict[str, Any] = {"detector": det.detector, "threshold": det.threshold, **det.info}
    for split in ("dev", "test"):
        ex = getattr(splits, split)
        if ex is not None and len(ex):
            report[split] = split_report(det, scorer, ex, splits.oos.get(split))
    summary["ood"] = report
    return det


# ---- runs made before detectors: `growthcurve ood fit RUN` -------------------------------------------------


def missing_detector(run_dir: str | Path) -> ModelError:
    """The one line for a run that has no detector: what adds it."""
    return ModelError(
        f"run '{run_dir}' has no out-of-scope detector (made before detectors, or with ood.detector=none); "
        f"add one with `growthcurve ood fit {run_dir}`"
    )


def require_detector(run_dir: str | Path) -> OodDetector:
    """The run's detector, or the `missing_detector` error."""
    model_dir, _, _ = read_meta(run_dir)
    det = load_detector(model_dir)
    if det is None:
        raise missing_detector(run_dir)
    return det


def fit_detector_for_run(
    run_dir: str | Path,
    train: str | None = None,
    dev: str | None = None,
    overwrite: bool = False,
    oos_label: str | None = None,
    progress: bool = True,
) -> tuple[OodDetector, dict[str, Any]]:
    """Fit and save the detector of a finished run from the splits its config names (``train``/``dev``
    replace those files); refuses a run that has one unless ``overwrite``. Returns the detector and its
    dev/test report."""
    run_dir = Path(run_dir)
    model_dir, meta, labels = read_meta(run_dir)
    if meta.get("task", "text-classification") != "text-classification" or kind_of(meta).scores is None:
        raise ModelError(
            f"run '{run_dir}' is a {meta.get('task')} run: out-of-scope detectors are for text classifiers"
        )
    if meta.get("multi_label"):
        raise ModelError(f"run '{run_dir}' is multi-label: out-of-scope detectors are for single-label runs")
    if (model_dir / DETECTOR_FILE).exists() and not overwrite:
        raise ConfigError(f"run '{run_dir}' already has an out-of-scope detector; pass --overwrite to refit it")
    cfg_file = run_dir / "config.yaml"
    cfg = load_finetune_config(cfg_file if cfg_file.is_file() else None)
    data = cfg.data.model_copy()
    if train is not None:
        data.train = train
    if dev is not None:
        data.dev = dev
    if oos_label is not None:
        data.oos_label = oos_label
    if data.oos_label in labels:
        raise ConfigError(
            f"--oos-label '{data.oos_label}' is one of the run's labels; it cannot mark out-of-scope rows"
        )
    try:
        splits = load_text_splits(data, seed=cfg.train.seed, label_names=labels)
    except DataError as exc:
        raise DataError(f"{exc} (ood fit reads the run's training and dev files; give --train/--dev)") from None
    if splits.dev is None:
        raise ConfigError(f"run '{run_dir}' has no dev split (data.dev_fraction=0): give --dev FILE")
    run = load_run(run_dir)
    scorer = run_scorer(run, progress=progress)
    det, why = fit_run_detector(model_dir, cfg.ood.model_copy(update={"detector": _detector(cfg)}), cfg.train.seed,
                                labels, splits, scorer)  # fmt: skip
    if det is None:
        raise ModelError(f"run '{run_dir}': {why}")
    report = {split: split_report(det, scorer, getattr(splits, split), splits.oos.get(split))
              for split in ("dev", "test") if getattr(splits, split) is not None}  # fmt: skip
    return det, report


def _detector(cfg: FinetuneConfig) -> str:
    """The configured detector, ``auto`` when the run's config said none (``ood fit`` is asked for one)."""
    return "auto" if cfg.ood.detector == "none" else cfg.ood.detector
