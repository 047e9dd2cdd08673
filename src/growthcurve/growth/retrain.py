"""`growthcurve retrain`: the continual-learning step. Feedback on the served model version becomes new training
rows; the served run is fine-tuned further on them plus a rehearsal sample of its original training rows (so it
learns the new data without forgetting the old); old and new models are compared side by side on the original
test split (retention) and on held-out feedback rows (gain); the new run is registered as the candidate B.

Read top to bottom: collect feedback → split off a hold-out → rehearsal sample → fine-tune → compare → record.
The fine-tuning is the ordinary `run_finetune` with the served run's config, its model folder as the base and
the label list pinned (``data.labels``), so the classifier head carries over even when the new rows lack labels.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
import yaml

from growthcurve.atomic import atomic_open, write_json, write_text
from growthcurve.config import FinetuneConfig, load_finetune_config
from growthcurve.data.splits import stratified_indices
from growthcurve.data.text import load_text_splits
from growthcurve.errors import ConfigError, DataError, GrowthcurveError, ModelError
from growthcurve.store import get_engine, masked_url
from growthcurve.store.schema import feedback, predictions
from growthcurve.training.runfolder import model_version, read_meta, run_artefacts

# Why a feedback request gives no training row (counted per request, reported to the user).
NO_TEXT = "no input text stored (served with --no-log-text?)"
UNKNOWN_LABEL = "corrected label not in the run's labels"
THUMBS_DOWN = "thumbs down without a corrected label"
CONTRADICTING = "contradicting feedback on one prediction"
CONTRADICTING_DUPLICATES = "same text with different labels across requests"
DUPLICATE = "duplicate text (kept once)"
NO_LABEL_KIND = "no label feedback (rating/click only)"
IN_TEST_SPLIT = "text in the test split retention is scored on (--drop-test-overlap)"


@dataclass
class FeedbackRows:
    """Training rows made from one model version's feedback, and why the other requests gave none."""

    version: str
    texts: list[str]
    labels: list[str]
    sources: list[str]  # "corrected" (the user's label) or "confirmed" (thumbs up on the served label)
    requests: int  # predictions of this version with any feedback
    feedback_rows: int
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """'N request(s) with feedback, K usable; skipped: reason (n), ...' for messages."""
        skipped = ", ".join(f"{k} ({v})" for k, v in sorted(self.skipped.items(), key=lambda kv: -kv[1])) or "none"
        return (
            f"{self.requests} prediction(s) with {self.feedback_rows} feedback row(s), {len(self.texts)} usable; "
            f"skipped: {skipped}"
        )


@dataclass
class RetrainResult:
    """What `retrain` made: the new run folder, the side-by-side report (also in ``retrain.json``), the ids."""

    run_dir: Path
    report: dict[str, Any]
    registry_id: str | None
    serve_command: str
    warnings: list[str]


def served_version(run_dir: str | Path) -> str:
    """The model version `growthcurve serve` (torch backend) tags this run's predictions with."""
    model_dir, _meta, _labels = read_meta(run_dir)
    return model_version(model_dir)


def _read_engine(url: str) -> sa.Engine:
    """An engine on an existing store; reading never creates an empty SQLite file, and a corrupt or
    unreachable store is one line naming it."""
    from growthcurve.store import open_existing

    engine = get_engine(url)
    db = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and db not in (None, "", ":memory:") and not Path(db).is_file():
        raise DataError(
            f"feedback store '{url}' does not exist (no file '{db}'); give the --store URL the service used"
        )
    engine.dispose()
    return open_existing(url)


def collect_feedback(url: str, version: str, labels: Sequence[str]) -> FeedbackRows:
    """Feedback joined to its predictions for ``version``: corrected labels and thumbs-up confirmations become
    (text, label) rows; contradicting, label-less, text-less or unknown-label requests are counted and skipped."""
    engine = _read_engine(url)
    p, f = predictions.c, feedback.c
    joined = feedback.join(predictions, f.request_id == p.request_id)
    q = (
        sa.select(f.request_id, f.kind, f.value, f.label, p.input_text, p.label.label("served"))
        .select_from(joined)
        .where(p.model_version == version)
        .order_by(f.id)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(q).all()
            others = (
                conn.execute(
                    sa.select(p.model_version, sa.func.count())
                    .select_from(joined)
                    .where(p.model_version != version)
                    .group_by(p.model_version)
                ).all()
                if not rows
                else []
            )
    except sa.exc.OperationalError as exc:
        raise DataError(f"cannot read feedback from '{url}': {exc.orig} (is it the store the service wrote?)") from None
    finally:
        engine.dispose()
    if not rows:
        seen = ", ".join(f"{v} ({n})" for v, n in others) or "none"
        raise DataError(
            f"no feedback for model version {version} in '{url}' (feedback rows of other versions: {seen}); "
            "is this the run that was served, and the store it wrote to?"
        )
    by_request: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_request[r.request_id].append(r)
    known = set(labels)
    skipped: Counter[str] = Counter()
    resolved: list[tuple[str, str, str]] = []  # text, label, source
    for group in by_request.values():
        text, served = group[0].input_text, group[0].served
        corrected = {r.label for r in group if r.kind == "correct" and r.label}
        thumbs = {r.value for r in group if r.kind == "thumbs" and r.value is not None}
        if not corrected and not thumbs:
            skipped[NO_LABEL_KIND] += 1
            continue
        if text is None or not text.strip():
            skipped[NO_TEXT] += 1
            continue
        if len(corrected) > 1 or thumbs == {0.0, 1.0} or (1.0 in thumbs and corrected and corrected != {served}):
            skipped[CONTRADICTING] += 1
            continue
        if corrected:
            label, source = next(iter(corrected)), "corrected"
        elif 1.0 in thumbs:
            label, source = served, "confirmed"
        else:
            skipped[THUMBS_DOWN] += 1
            continue
        if label not in known:
            skipped[UNKNOWN_LABEL] += 1
            continue
        resolved.append((text, label, source))
    by_text: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for row in resolved:
        by_text[row[0].strip()].append(row)
    texts, out_labels, sources = [], [], []
    for same in by_text.values():
        if len({lab for _, lab, _ in same}) > 1:
            skipped[CONTRADICTING_DUPLICATES] += len(same)
            continue
        skipped[DUPLICATE] += len(same) - 1
        texts.append(same[0][0])
        out_labels.append(same[0][1])
        sources.append(same[0][2])
    skipped = Counter({k: v for k, v in skipped.items() if v})
    return FeedbackRows(version, texts, out_labels, sources, len(by_request), len(rows), dict(skipped))


def _test_overlap(rows: FeedbackRows, test_texts: Sequence[str]) -> list[int]:
    """Indices of usable feedback rows whose text (trimmed) is in the retention test split."""
    test = {t.strip() for t in test_texts}
    return [i for i, t in enumerate(rows.texts) if t.strip() in test]


def _without(rows: FeedbackRows, drop: Sequence[int], reason: str) -> FeedbackRows:
    """``rows`` without the rows at ``drop``, counted under ``reason``."""
    gone = set(drop)
    keep = [i for i in range(len(rows.texts)) if i not in gone]
    skipped = dict(rows.skipped)
    skipped[reason] = skipped.get(reason, 0) + len(gone)
    return FeedbackRows(
        rows.version,
        [rows.texts[i] for i in keep],
        [rows.labels[i] for i in keep],
        [rows.sources[i] for i in keep],
        rows.requests,
        rows.feedback_rows,
        skipped,
    )


def _check_run(run: Path) -> tuple[Path, dict[str, Any], list[str], FinetuneConfig]:
    """The served run must be a full fine-tuning of a transformer text classifier with its config.yaml."""
    model_dir, meta, labels = read_meta(run)
    if meta.get("task") != "text-classification" or meta.get("multi_label"):
        raise ModelError(f"'{run}' is a {meta.get('task')} run: retrain continues single-label text classifiers")
    if meta.get("model_type") != "transformer":
        raise ModelError(
            f"'{run}' is a {meta.get('model_type')} run: retrain fine-tunes from a transformer run's weights "
            "(train the baseline again on the new rows with `growthcurve finetune` instead)"
        )
    if meta.get("method", "full") != "full":
        raise ModelError(
            f"'{run}' is a {meta['method']} run: merge it into a plain model first (growthcurve merge {run}) "
            "and serve/retrain the merged folder"
        )
    cfg_file = run / "config.yaml"
    if not cfg_file.is_file():
        raise ModelError(f"'{run}' has no config.yaml: retrain needs the run's config to find its data")
    cfg = load_finetune_config(cfg_file)
    if cfg.data.text_pair_column:
        raise ModelError(f"'{run}' classifies text pairs; served feedback holds single texts")
    return model_dir, meta, labels, cfg


def _write_rows(path: Path, header: tuple[str, str], texts: Sequence[str], labels: Sequence[str]) -> Path:
    with atomic_open(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(zip(texts, labels, strict=True))
    return path


def _scores(predicted: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    present = sorted(set(y.tolist()) | set(predicted.tolist()))
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, average="macro", labels=present, zero_division=0)),
        "n": int(len(y)),
    }


def _predict(run_dir: Path, texts: list[str]) -> np.ndarray:
    from growthcurve.training.inference import Predictor

    probs = Predictor(run_dir, batch_size=128).predict_proba(texts)
    return probs.argmax(axis=1)


def retrain(
    run: str | Path,
    feedback_url: str | None = None,
    out: str | Path | None = None,
    rehearsal: float | None = 0.3,
    rehearsal_rows: int | None = None,
    method: str = "full",
    holdout: float = 0.2,
    seed: int = 0,
    overrides: Sequence[str] = (),
    progress: bool = True,
    drop_test_overlap: bool = False,
    reviewed: str | None = None,
    review_weight: int = 2,
) -> RetrainResult:
    """Fine-tune the served run ``run`` on its feedback in the store ``feedback_url`` (None: the workspace store)
    (+ rehearsal) into ``out``, which becomes the next version of the same model.

    ``rehearsal``: fraction of the original training rows mixed in (None/0: none); ``rehearsal_rows`` a count
    instead; ``holdout``: fraction of the usable feedback rows kept out of training to measure the gain;
    ``overrides``: ``key=value`` settings for the new fine-tuning (e.g. ``train.epochs=2``); ``reviewed``: a review
    queue in the same store whose decided labels join the rows, each trained ``review_weight`` times. Feedback
    texts that are also in the test split retention is scored on are refused (``drop_test_overlap``: dropped and
    counted), since a score on texts the new model trained on says nothing about retention.
    """
    from growthcurve.store import store_url

    given = feedback_url or store_url(None)  # as the user wrote it, for messages about reading it
    feedback_url = store_url(feedback_url)  # absolute: what the records and suggested commands name
    run = Path(run)
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"--holdout must be in [0, 1) (got {holdout})")
    if rehearsal is not None and not 0.0 <= rehearsal <= 1.0:
        raise ConfigError(f"--rehearsal must be a fraction in [0, 1] (got {rehearsal})")
    if rehearsal_rows is not None and rehearsal_rows < 0:
        raise ConfigError(f"--rehearsal-rows must be >= 0 (got {rehearsal_rows})")
    if method not in ("full", "lora"):
        raise ConfigError(f"--method must be full or lora (got '{method}')")
    model_dir, meta, labels, base_cfg = _check_run(run)
    version = served_version(run)
    try:
        rows = collect_feedback(given, version, labels)
    except DataError:
        if reviewed is None:
            raise
        rows = FeedbackRows(version, [], [], [], 0, 0, {})  # reviewed labels alone are enough
    if reviewed is not None:
        rows = _add_reviewed(rows, feedback_url, reviewed, labels, review_weight)
    if not rows.texts:
        raise DataError(f"no usable feedback rows for model version {version} of '{run}': {rows.summary()}")
    warnings: list[str] = []

    # ---- rehearsal: a stratified sample of the rows the served run was trained on (never its dev/test)
    splits = load_text_splits(base_cfg.data, seed=base_cfg.train.seed, label_names=labels)
    n_train = len(splits.train.texts)
    n_reh = rehearsal_rows if rehearsal_rows is not None else int(round((rehearsal or 0.0) * n_train))
    if n_reh > n_train:
        raise ConfigError(f"--rehearsal-rows {n_reh} is more than the {n_train} original training rows")
    if n_reh == n_train:
        reh_idx = np.arange(n_train)
    elif n_reh == 0:
        reh_idx = np.arange(0)
    else:
        _, reh_idx = stratified_indices(splits.train.labels, n_reh / n_train, seed)
    test = splits.test if splits.test is not None else splits.dev
    if test is None:
        raise DataError(f"'{run}' has neither a test file nor a dev split to measure retention on")
    if splits.test is None:
        warnings.append("the served run has no test file: retention is measured on its dev split")
    overlap = _test_overlap(rows, test.texts)
    if overlap and not drop_test_overlap:
        shown = rows.texts[overlap[0]][:60]
        raise DataError(
            f"{len(overlap)} of the {len(rows.texts)} usable feedback texts are also in the test split that retention "
            f"is scored on (e.g. '{shown}'): the new model would be scored on texts it trained on. Replay other "
            "texts, or pass --drop-test-overlap to drop them (they are counted in retrain.json)"
        )
    if overlap:
        rows = _without(rows, overlap, IN_TEST_SPLIT)
        if not rows.texts:
            raise DataError(f"every usable feedback text of '{run}' is in its test split: {rows.summary()}")
        warnings.append(f"dropped {len(overlap)} feedback text(s) that are in the test split retention is scored on")

    # ---- hold out part of the feedback: the gain is measured on rows the new model never trained on
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows.texts))
    n_hold = int(round(holdout * len(order)))
    if n_hold >= len(order):
        n_hold = len(order) - 1
    if holdout > 0 and n_hold == 0:
        warnings.append(f"only {len(order)} usable feedback row(s): none held out, the gain is not measured")
    held, used = np.sort(order[:n_hold]), np.sort(order[n_hold:])

    # ---- the new run folder: refuse a finished run there before writing anything
    out = Path(out) if out else run.parent / f"{run.name}-retrain-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if run_artefacts(out):
        raise ConfigError(f"'{out}' already holds a run; give another --out")
    data_dir = out / "retrain_data"
    header = (base_cfg.data.text_column, base_cfg.data.label_column)
    # a reviewed row counts review_weight times (repeated: the training loop has no per-row loss weight)
    reps = [review_weight if rows.sources[i] == "reviewed" else 1 for i in used]
    train_texts = [rows.texts[i] for i, k in zip(used, reps, strict=True) for _ in range(k)]
    train_labels = [rows.labels[i] for i, k in zip(used, reps, strict=True) for _ in range(k)]
    train_texts += [splits.train.texts[i] for i in reh_idx]
    train_labels += [labels[int(splits.train.labels[i])] for i in reh_idx]
    train_file = _write_rows(data_dir / "train.csv", header, train_texts, train_labels)
    held_texts, held_labels = [rows.texts[i] for i in held], [rows.labels[i] for i in held]
    held_file = _write_rows(data_dir / "feedback_heldout.csv", header, held_texts, held_labels) if n_hold else None
    test_file = _write_rows(data_dir / "test.csv", header, test.texts, [labels[int(i)] for i in test.labels])
    resolved = base_cfg.model_dump(mode="json")
    # absolute: base.yaml's paths are read against its own folder
    train_abs, test_abs = str(train_file.absolute()), str(test_file.absolute())
    resolved["data"].update(train=train_abs, dev=None, test=test_abs, labels=list(labels))
    resolved["data"]["dev_fraction"] = resolved["data"]["dev_fraction"] or 0.1  # the best epoch on the new mix
    resolved["model"].update(name_or_path=str(model_dir), extend_vocab=False, adapt="none")
    lineage = _lineage(run, model_dir, base_cfg, feedback_url)
    resolved.update(method=method, output_dir=str(out), resume=False, name=lineage.model, registry=False)
    if method == "full":
        resolved["peft"] = base_cfg.peft.model_dump(mode="json")
    write_text(data_dir / "base.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    cfg = load_finetune_config(data_dir / "base.yaml", list(overrides))

    # ---- record, fine-tune, compare
    options = {
        "served_run": str(run),
        "served_version": version,
        "feedback_store": masked_url(feedback_url),
        "rehearsal_rows": int(len(reh_idx)),
        "holdout": holdout,
        "method": method,
        "seed": seed,
        "overrides": list(overrides),
        "reviewed": reviewed,
        "review_weight": review_weight if reviewed else None,
    }
    parent = lineage.run_id
    # one registry row for the whole retrain (the fine-tuning inside records none of its own): it becomes the
    # next version of the served model, with the served version as its parent
    rid = _registry(
        lambda: _start("retrain", out, cfg, options, [train_file, held_file, test_file], parent, feedback_url),
        warnings,
    )
    from growthcurve.training.dispatch import run_finetune

    try:
        result = run_finetune(cfg, progress=progress)
        old_test, new_test = _predict(run, list(test.texts)), _predict(out, list(test.texts))
        report: dict[str, Any] = {
            "served_run": str(run),
            "served_version": version,
            "served_ref": lineage.ref,
            "served_registry_id": parent,
            "new_run": str(out),
            "registry_id": rid,
            "method": method,
            "feedback": {
                "store": masked_url(feedback_url),
                "requests": rows.requests,
                "feedback_rows": rows.feedback_rows,
                "usable": len(rows.texts),
                "corrected": rows.sources.count("corrected"),
                "confirmed": rows.sources.count("confirmed"),
                "reviewed": rows.sources.count("reviewed"),
                "review_weight": review_weight if reviewed else None,
                "trained_on": int(len(used)),
                "held_out": int(n_hold),
                "skipped": rows.skipped,
                "dropped_in_test_split": len(overlap),
            },
            "rehearsal": {"rows": int(len(reh_idx)), "of": n_train, "fraction": len(reh_idx) / max(n_train, 1)},
            "train_rows": len(train_texts),
            "best_epoch": result.best_epoch,
            "retention": _side_by_side(old_test, new_test, np.asarray(test.labels), labels),
            "per_label_test": _per_label(old_test, new_test, np.asarray(test.labels), labels),
            "warnings": warnings,
        }
        if n_hold:
            y = np.asarray([labels.index(lab) for lab in held_labels])
            report["gain"] = _side_by_side(_predict(run, held_texts), _predict(out, held_texts), y, labels)
        else:
            report["gain"] = None
    except BaseException as exc:
        status = (
            "interrupted" if isinstance(exc, KeyboardInterrupt) or getattr(exc, "exit_code", 0) == 130 else "failed"
        )
        if rid:
            _registry(lambda: _finish(rid, status, {}, url=feedback_url), warnings)
        raise
    report["worse_on"] = [
        name for name, key in (("original test split", "retention"), ("held-out feedback", "gain"))
        if report.get(key) is not None and report[key]["delta_points"] < 0
    ]  # fmt: skip
    new_ref = None
    if rid:
        summary = {
            "dev": result.dev,
            **({"test": result.test} if result.test else {}),
            "best_epoch": result.best_epoch,
            **{k: report[k] for k in ("retention", "gain", "feedback", "rehearsal", "worse_on")},
        }
        version = _registry(lambda: _finish(rid, "finished", summary, out, feedback_url), warnings)
        new_ref = f"{lineage.model}@v{version}" if version else None
    report["new_ref"] = new_ref
    old_name, new_name = lineage.ref or str(run), new_ref or str(out)
    exp = f"retrain-{new_ref or out.name}".replace("@", "-")[:64]
    store_opt = "" if feedback_url == store_url(None) else f" --store {masked_url(feedback_url)}"
    report["serve_command"] = (
        None if report["worse_on"] else f"growthcurve serve {old_name} {new_name} --experiment {exp}{store_opt}"
    )
    write_json(out / "retrain.json", report)
    return RetrainResult(out, report, rid, report["serve_command"], warnings)


def _add_reviewed(rows: FeedbackRows, url: str, queue: str, labels: Sequence[str], weight: int) -> FeedbackRows:
    """The decided labels of review queue ``queue`` added to the feedback rows; where a reviewer and a user
    labelled the same (near-duplicate) text, the reviewer's label wins."""
    from growthcurve.review.queue import reviewed_rows
    from growthcurve.review.sampling import dedupe_key

    if weight < 1:
        raise ConfigError(f"--review-weight must be an integer >= 1 (got {weight})")
    rev = reviewed_rows(url, queue, labels, float(weight))
    if not rev.texts:
        raise DataError(f"review queue '{queue}' has no decided label yet ({rev.skipped or 'no answers'})")
    mine = {dedupe_key(t) for t in rev.texts}
    keep = [i for i, t in enumerate(rows.texts) if dedupe_key(t) not in mine]
    skipped = dict(rows.skipped)
    if len(keep) < len(rows.texts):
        skipped["feedback on a text a reviewer labelled"] = len(rows.texts) - len(keep)
    for reason, n in rev.skipped.items():
        skipped[f"review: {reason}"] = n
    return FeedbackRows(
        rows.version,
        [rows.texts[i] for i in keep] + rev.texts,
        [rows.labels[i] for i in keep] + rev.labels,
        [rows.sources[i] for i in keep] + ["reviewed"] * len(rev.texts),
        rows.requests,
        rows.feedback_rows,
        skipped,
    )


def _side_by_side(old: np.ndarray, new: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    o, n = _scores(old, y, labels), _scores(new, y, labels)
    return {"old": o, "new": n, "delta_points": round(100 * (n["accuracy"] - o["accuracy"]), 4), "n": int(len(y))}


def _per_label(old: np.ndarray, new: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per true label: rows, and how many the old and the new model got right (group accuracies add up)."""
    out = {}
    for i, name in enumerate(labels):
        mask = y == i
        if mask.any():
            out[name] = {
                "support": int(mask.sum()),
                "old_correct": int((old[mask] == i).sum()),
                "new_correct": int((new[mask] == i).sum()),
            }
    return out


# ---- the run registry (store/registry.py): a store that fails only warns, the run folder is the result


def _registry(call: Any, warnings: list[str]) -> Any:
    try:
        return call()
    except GrowthcurveError as exc:
        warnings.append(f"the run registry did not record this retrain ({exc}); the run folder is complete")
        return None


@dataclass
class _Lineage:
    """The served version a retrain continues: its model name, registry id and name (None when unknown)."""

    model: str
    run_id: str | None
    ref: str | None


def _lineage(run: Path, model_dir: Path, cfg: FinetuneConfig, url: str) -> _Lineage:
    """The served run's version in the store (by folder and weights; a finished folder the store does not know
    is registered, as `serve` does); its config's model name when the store cannot be written."""
    from growthcurve.serving.versions import served_version as version_in_store

    try:
        rec = version_in_store(run, url).record
    except GrowthcurveError:
        return _Lineage(cfg.model_name, None, None)
    return _Lineage(rec.model or cfg.model_name, rec.id, rec.ref)


def _start(
    kind: str,
    out: Path,
    cfg: FinetuneConfig,
    options: dict[str, Any],
    files: list[Path | None],
    parent: str | None,
    url: str,
) -> str:
    from growthcurve.store.registry import start_run

    config = {"retrain": options, "finetune": cfg.model_dump(mode="json")}
    return start_run(
        kind,
        name=out.name,
        task=cfg.task,
        config=config,
        data_files=files,
        artefact=out,
        parent=parent,
        model=cfg.model_name,
        url=url,
    )


def _finish(rid: str, status: str, metrics: dict[str, Any], out: Path | None = None, url: str | None = None) -> Any:
    from growthcurve.store.registry import finish_run
    from growthcurve.training.runfolder import MODEL_DIR

    fingerprint = model_version(out / MODEL_DIR) if out is not None and status == "finished" else None
    return finish_run(rid, status, metrics=metrics, fingerprint=fingerprint, url=url)


__all__ = ["FeedbackRows", "RetrainResult", "collect_feedback", "retrain", "served_version"]
