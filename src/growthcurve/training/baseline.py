"""Baselines without pretrained weights: ``model.type`` rnn (BiLSTM/GRU), textcnn and tfidf.

Read top to bottom: defaults → data → tokenizer → model → fit (the shared loop of ``training.loop``,
so resume, early stopping and checkpoints behave as for transformers) → reports (``finish_run``, shared
with image classification). The run folder matches the transformer recipe's, so
``growthcurve evaluate`` / ``predict`` and ``load_run`` work on it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from growthcurve.config import FinetuneConfig
from growthcurve.data.text import TextExamples, load_text_splits
from growthcurve.errors import ConfigError
from growthcurve.evaluation.classification import classification_metrics, plot_training_curves, write_reports
from growthcurve.io import write_json
from growthcurve.training.hardware import peak_rss_mb
from growthcurve.training.loop import FitOutcome, fit, load_checkpoint, seed_everything
from growthcurve.training.runfolder import save_model_dir, write_config
from growthcurve.training.text import RunResult

TEXT_BASELINES = ("rnn", "textcnn", "tfidf")

# Recipe defaults for models trained from scratch. They replace the transformer-oriented defaults of
# TrainConfig only where the user did not set the key (a 1e-4 learning rate for 3 epochs suits fine-tuning,
# not random initialisation); the effective values are written to the run's config.yaml.
SCRATCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "rnn": {"epochs": 10.0, "learning_rate": 2e-3},
    "textcnn": {"epochs": 10.0, "learning_rate": 1e-3},
    "cnn": {"epochs": 20.0, "learning_rate": 3e-3},
    "vision": {"epochs": 20.0, "learning_rate": 1e-3},
}


def with_scratch_defaults(cfg: FinetuneConfig) -> FinetuneConfig:
    """``cfg`` with the from-scratch recipe defaults for train keys the user left unset."""
    defaults = SCRATCH_DEFAULTS.get(cfg.model.type, {})
    update = {k: v for k, v in defaults.items() if k not in cfg.train.model_fields_set}
    if not update:
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})


def probs_loss(y: np.ndarray, probs: np.ndarray, multi_label: bool) -> float:
    """Mean cross-entropy (binary cross-entropy per label for multi-label) of predicted probabilities."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    if multi_label:
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def balanced_class_weights(y: np.ndarray, num_labels: int, multi_label: bool) -> np.ndarray:
    """'balanced' weights n/(k·n_c) (scikit-learn's formula); negatives/positives ratio for multi-label."""
    if multi_label:
        pos = y.sum(axis=0)
        return (len(y) - pos) / np.maximum(pos, 1)
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    w = np.ones(num_labels)
    w[present] = compute_class_weight("balanced", classes=present, y=y)
    return w


# ----------------------------------------------------------------------------------------------
# reports shared by every model trained from scratch


def make_accelerator() -> Any:
    """The accelerate handle the shared loop runs on (GPU when there is one; no mixed precision)."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")


def loss_function(
    multi_label: bool, class_weight: torch.Tensor | None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy (or per-label BCE for multi-label) with optional class weights."""

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=class_weight)
        return F.cross_entropy(logits, labels, weight=class_weight)

    return loss_fn


def finish_run(
    run_dir: Path,
    labels: list[str],
    multi_label: bool,
    evaluate_best: Callable[[str], tuple[dict[str, float], np.ndarray, np.ndarray] | None],
    outcome: FitOutcome,
    params: tuple[int, int],
    warnings: list[str],
    extra_train: dict[str, Any] | None = None,
    curves: bool = True,
) -> RunResult:
    """Evaluate the saved best model on dev/test, write reports, curves and metrics.json; the RunResult."""
    results: dict[str, dict[str, float] | None] = {"dev": None, "test": None}
    for split in ("dev", "test"):
        got = evaluate_best(split)
        if got is None:
            continue
        metrics, probs, y = got
        write_reports(run_dir, split, y, probs, labels, multi_label)
        results[split] = metrics
    if curves and outcome.history:
        plot_training_curves(outcome.history, run_dir / "training_curves.png")
    rate = outcome.samples_seen / max(outcome.train_seconds, 1e-9)
    summary = {
        "epochs": outcome.history,
        "best_epoch": outcome.best_epoch,
        "dev": results["dev"] or {},
        "test": results["test"],
        "train": {
            "seconds": outcome.train_seconds,
            "samples_per_s": rate,
            "steps": outcome.global_step,
            "precision": "fp32",
            "trainable_params": params[0],
            "total_params": params[1],
            "peak_rss_mb": peak_rss_mb(),
            **(extra_train or {}),
        },
        "labels": labels,
        "warnings": warnings,
    }
    write_json(run_dir / "metrics.json", summary)
    return RunResult(
        run_dir,
        labels,
        outcome.best_epoch,
        results["dev"] or {},
        results["test"],
        outcome.history,
        outcome.train_seconds,
        rate,
        "fp32",
        params[0],
        params[1],
        peak_rss_mb(),
        warnings,
    )


# ----------------------------------------------------------------------------------------------
# the text baselines


def _join_pairs(ex: TextExamples) -> list[str]:
    """TF-IDF reads one string: a text pair is joined with a separator."""
    if ex.pairs is None:
        return ex.texts
    return [f"{a} | {b}" for a, b in zip(ex.texts, ex.pairs, strict=True)]


def tfidf_texts(texts: list[str], pairs: list[str] | None) -> list[str]:
    """The strings a TF-IDF run scores (pairs joined as in training)."""
    return _join_pairs(TextExamples(texts, pairs, np.zeros(len(texts))))


def finetune_baseline(cfg: FinetuneConfig, progress: bool = True) -> RunResult:
    """Train an rnn, textcnn or tfidf text classifier as ``cfg`` says and leave a complete run folder."""
    if cfg.model.type not in TEXT_BASELINES:
        raise ConfigError(f"model.type={cfg.model.type} is not a text baseline; use one of {', '.join(TEXT_BASELINES)}")
    cfg = with_scratch_defaults(cfg)
    seed_everything(cfg.train.seed)
    splits = load_text_splits(cfg.data, seed=cfg.train.seed)
    if progress:
        for w in splits.warnings:
            tqdm.write(f"warning: {w}")
    run_dir = Path(cfg.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, cfg)
    meta: dict[str, Any] = {
        "task": cfg.task,
        "method": "full",
        "model_type": cfg.model.type,
        "base_model": None,
        "multi_label": splits.multi_label,
        "max_length": cfg.model.max_length,
        "precision": "fp32",
        "text_pair": cfg.data.text_pair_column is not None,
    }
    if cfg.model.type == "tfidf":
        return _fit_tfidf(cfg, splits, run_dir, meta, progress)

    from growthcurve.models.baselines import WordTokenizer, build_text_baseline
    from growthcurve.models.build import count_parameters
    from growthcurve.training.batching import encode_texts
    from growthcurve.training.text import evaluate_split

    accelerator = make_accelerator()
    device = accelerator.device
    state = load_checkpoint(cfg)
    t0 = time.perf_counter()
    tokenizer = WordTokenizer().fit(splits.train.texts + (splits.train.pairs or []))
    enc = {
        name: encode_texts(tokenizer, ex.texts, ex.pairs, ex.labels, cfg.model.max_length, f"tokenise {name}", progress)
        for name, ex in (("train", splits.train), ("dev", splits.dev), ("test", splits.test))
        if ex is not None
    }
    tokenize_seconds = time.perf_counter() - t0
    pad_id = tokenizer.pad_token_id
    model = build_text_baseline(
        cfg.model.type,
        len(tokenizer),
        len(splits.labels),
        cfg.model.hidden_size,
        cfg.model.rnn_cell,
        cfg.model.dropout,
        pad_id,
    )
    meta["architecture"] = model.architecture
    params = count_parameters(model)
    weight = None
    if cfg.train.class_weights == "balanced":
        w = balanced_class_weights(splits.train.labels, len(splits.labels), splits.multi_label)
        weight = torch.tensor(w, dtype=torch.float32, device=device)

    def evaluate(m: torch.nn.Module, split: str, desc: str) -> tuple[dict[str, float], np.ndarray]:
        return evaluate_split(m, enc[split], pad_id, cfg, False, splits.multi_label, device, desc, progress)

    outcome = fit(
        cfg,
        accelerator,
        model,
        enc["train"],
        pad_id,
        loss_function(splits.multi_label, weight),
        lambda m: evaluate(m, "dev", "dev")[0] if "dev" in enc else None,
        lambda m: save_model_dir(run_dir, accelerator.unwrap_model(m), tokenizer, splits.labels, meta),
        state,
        False,
        progress,
    )
    from growthcurve.training.runfolder import load_run

    best = load_run(run_dir).model.to(device)

    def evaluate_best(split: str) -> tuple[dict[str, float], np.ndarray, np.ndarray] | None:
        if split not in enc:
            return None
        metrics, probs = evaluate(best, split, f"{split} (best model)")
        return metrics, probs, enc[split].labels

    return finish_run(
        run_dir,
        splits.labels,
        splits.multi_label,
        evaluate_best,
        outcome,
        params,
        splits.warnings,
        {"tokenize_seconds": tokenize_seconds, "vocab_size": len(tokenizer), "model_type": cfg.model.type},
    )


def _fit_tfidf(cfg: FinetuneConfig, splits: Any, run_dir: Path, meta: dict[str, Any], progress: bool) -> RunResult:
    """One fit of the TF-IDF + logistic-regression pipeline; the 'epoch' is the whole fit."""
    from growthcurve.models.baselines import NullTokenizer, TfidfClassifier

    if progress:
        tqdm.write(f"fitting TF-IDF + logistic regression on {len(splits.train)} texts")
    t0 = time.perf_counter()
    clf = TfidfClassifier(multi_label=splits.multi_label, seed=cfg.train.seed).fit(
        _join_pairs(splits.train), splits.train.labels
    )
    seconds = time.perf_counter() - t0
    save_model_dir(run_dir, clf, NullTokenizer(), splits.labels, meta)

    def evaluate_best(split: str) -> tuple[dict[str, float], np.ndarray, np.ndarray] | None:
        ex = getattr(splits, split)
        if ex is None:
            return None
        probs = clf.predict_proba(_join_pairs(ex))
        metrics = classification_metrics(ex.labels, probs, splits.multi_label)
        metrics["loss"] = probs_loss(ex.labels, probs, splits.multi_label)
        return metrics, probs, ex.labels

    entry: dict[str, Any] = {
        "epoch": 1,
        "step": 1,
        "train_loss": float("nan"),
        "samples_per_s": len(splits.train) / seconds,
    }
    dev = evaluate_best("dev")
    if dev is not None:
        entry["dev"] = dev[0]
    entry["train_loss"] = probs_loss(
        splits.train.labels, clf.predict_proba(_join_pairs(splits.train)), splits.multi_label
    )
    outcome = FitOutcome([entry], 1, 1, seconds, len(splits.train))
    n = clf.n_parameters_
    return finish_run(
        run_dir,
        splits.labels,
        splits.multi_label,
        evaluate_best,
        outcome,
        (n, n),
        splits.warnings,
        {"model_type": "tfidf"},
        curves=False,
    )


def evaluate_tfidf(run: Any, ex: TextExamples) -> tuple[dict[str, float], np.ndarray]:
    """Metrics (with loss) and probabilities of a loaded TF-IDF run on one labelled split."""
    probs = run.model.predict_proba(_join_pairs(ex))
    metrics = classification_metrics(ex.labels, probs, run.meta["multi_label"])
    metrics["loss"] = probs_loss(ex.labels, probs, run.meta["multi_label"])
    return metrics, probs
