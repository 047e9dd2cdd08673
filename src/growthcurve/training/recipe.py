"""What every training recipe shares: start a run, hand the loop its hooks, finish the run.

A recipe (`text`, `token`, `image`, `baseline`) reads top to bottom — setup → data → model → fit →
finish — and calls these helpers for the bookkeeping that must be the same everywhere: one accelerator
set-up, data warnings printed once by the main process (``-q`` hides progress bars, never warnings), the
config and the model written by the main process only under ``accelerate launch``, and one layout of
``metrics.json`` and of the reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from growthcurve.atomic import atomic_path, write_json
from growthcurve.config import FinetuneConfig
from growthcurve.errors import ConfigError
from growthcurve.evaluation.classification import plot_training_curves
from growthcurve.training.hardware import compute_report, peak_rss_mb
from growthcurve.training.loop import CHECKPOINT, FitOutcome, load_checkpoint, seed_everything
from growthcurve.training.modelcard import write_model_card
from growthcurve.training.runfolder import (
    MODEL_DIR,
    RunResult,
    clear_run,
    load_run,
    run_artefacts,
    save_model_dir,
    write_config,
)
from growthcurve.training.tracking import finish_tracking, make_trackers, start_tracking

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


@dataclass
class RunContext:
    """The process's view of a run being trained: where it goes and who writes it."""

    cfg: FinetuneConfig
    accelerator: Any
    device: torch.device
    main: bool
    progress: bool
    run_dir: Path


def start_run(cfg: FinetuneConfig, progress: bool) -> RunContext:
    """Accelerator (a GPU when there is one; mixed precision is the loop's autocast), seeds, run folder path."""
    from accelerate import Accelerator

    trackers = make_trackers(cfg)  # a tracker that is not installed fails here, before any data is read
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(), mixed_precision="no", log_with=trackers or None, project_dir=cfg.output_dir
    )
    main = accelerator.is_main_process
    seed_everything(cfg.train.seed)
    return RunContext(cfg, accelerator, accelerator.device, main, progress and main, Path(cfg.output_dir))


def claim_folder(cfg: FinetuneConfig) -> dict[str, Any] | None:
    """Decide, before anything is written, what ``output_dir`` becomes: a resumed run (its checkpoint is
    returned), a new run (None) or an error. A finished run folder is never rewritten nor mixed with another
    run: it is refused unless ``resume=false``, which removes the old run's artefacts first.

    Under ``accelerate launch`` the main process alone decides (and clears); the others wait for it, then
    read the checkpoint it resumes from: no rank clears a folder another has started writing."""
    from accelerate import PartialState

    procs = PartialState()
    if procs.num_processes == 1:
        return _claim(cfg)
    decided = _claim(cfg) if procs.is_main_process else None
    procs.wait_for_everyone()
    if procs.is_main_process:
        return decided
    path = Path(cfg.output_dir) / CHECKPOINT  # present now only when the main process resumes from it
    return torch.load(path, map_location="cpu", weights_only=False) if cfg.resume and path.exists() else None


def _claim(cfg: FinetuneConfig) -> dict[str, Any] | None:
    run_dir = Path(cfg.output_dir)
    _check_writable(run_dir)
    old = run_artefacts(run_dir)
    if not old:
        return None
    if not cfg.resume:
        clear_run(run_dir)
        return None
    state = load_checkpoint(cfg)  # refuses a checkpoint of another config or other data
    if state is None:
        names = ", ".join(p.name for p in old[:3]) + (", ..." if len(old) > 3 else "")
        if not (run_dir / "metrics.json").exists() and not (run_dir / MODEL_DIR).exists():
            # e.g. a run stopped by an error before its first checkpoint: nothing to resume, nothing finished
            raise ConfigError(
                f"'{run_dir}' holds a run that stopped before its first checkpoint ({names}); set resume=false to "
                "start over there, or pick another output_dir"
            )
        raise ConfigError(
            f"'{run_dir}' holds a finished run ({names}) with no checkpoint to resume; pick another output_dir, "
            "or set resume=false to replace that run"
        )
    return state


def _check_writable(path: Path) -> None:
    """output_dir must be a folder we can create or write into; say which path is in the way."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output_dir '{path}' is a file; give a folder path")
    anchor = path
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ConfigError(f"output_dir '{path}' cannot be created: '{anchor}' is a file")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigError(f"output_dir '{path}': no permission to write in '{anchor}'")


def report_warnings(run: RunContext, warnings: list[str]) -> None:
    """Print the data warnings once (main process), with or without progress bars."""
    if run.main:
        for w in warnings:
            tqdm.write(f"warning: {w}")


def run_meta(cfg: FinetuneConfig, precision: str, **extra: Any) -> dict[str, Any]:
    """``run.json``: what every loader and predictor needs to know about the run, plus recipe extras."""
    meta: dict[str, Any] = {
        "task": cfg.task,
        "method": cfg.method,
        "model_type": cfg.model.type,
        "base_model": cfg.model.name_or_path,
        "multi_label": False,
        "max_length": cfg.model.max_length,
        "precision": precision,
        "first_token_only": cfg.model.first_token_only,  # loaders run the last layer as training did
    }
    meta.update(extra)
    return meta


def open_folder(run: RunContext) -> None:
    """Create the run folder and write the resolved config (main process only)."""
    if run.main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run.run_dir, run.cfg)
        start_tracking(run.cfg, run.accelerator, run.run_dir)  # trackers + a `running` row in the run registry


def saver(run: RunContext, tokenizer: Any, labels: list[str], meta: dict[str, Any]) -> Callable[[Any], None]:
    """The loop's ``save_best`` hook: write the unwrapped model into ``RUN/model`` (atomically)."""

    def save_best(model: Any) -> None:
        save_model_dir(run.run_dir, run.accelerator.unwrap_model(model), tokenizer, labels, meta)

    return save_best


def keep_probabilities(run: RunContext, split: str, probs: np.ndarray, y: np.ndarray) -> None:
    """Keep the best model's class probabilities of a split (``probabilities_<split>.npz``: ``probs``, ``y``),
    so calibration can be measured later (the model card's ECE) without reloading the model."""
    if y.ndim != 1:  # multi-label: no single top label to calibrate
        return
    with atomic_path(run.run_dir / f"probabilities_{split}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, probs=probs.astype(np.float32), y=y.astype(np.int64))


def finish_run(
    run: RunContext,
    outcome: FitOutcome,
    labels: list[str],
    score_split: Callable[[Any, str], dict[str, float] | None],
    precision: str,
    params: tuple[int, int],
    warnings: list[str],
    train_extra: dict[str, Any] | None = None,
    summary_extra: dict[str, Any] | None = None,
    curves: bool = True,
) -> RunResult:
    """Reload the saved best model, score dev and test with it (``score_split(model, split)`` writes that
    split's reports and returns its metrics, or None when the split is absent), draw the curves (``curves``:
    not for a one-shot fit), write ``metrics.json`` and the model card, and return the `RunResult`. Only the
    main process writes."""
    results: dict[str, dict[str, float]] = {}
    ref = None
    if run.main:
        best = load_run(run.run_dir).model
        if isinstance(best, torch.nn.Module):
            best = best.to(run.device)
        for split in ("dev", "test"):
            metrics = score_split(best, split)
            if metrics is not None:
                results[split] = metrics
    # after scoring: ``score_split`` may add to ``warnings`` (e.g. why the run has no out-of-scope detector)
    warnings = warnings + [w for w in outcome.warnings if w not in warnings]  # from the loop
    if run.main:
        if curves and outcome.history:
            plot_training_curves(outcome.history, run.run_dir / "training_curves.png")
        summary = {
            "epochs": outcome.history,
            "best_epoch": outcome.best_epoch,
            "dev": results.get("dev", {}),
            "test": results.get("test"),
            "train": {
                "seconds": outcome.train_seconds,
                "samples_per_s": outcome.samples_per_s,
                "steps": outcome.global_step,
                "epochs_run": outcome.epochs_run if outcome.epochs_run is not None else len(outcome.history),
                "precision": precision,
                "trainable_params": params[0],
                "total_params": params[1],
                "peak_rss_mb": peak_rss_mb(),
                **compute_report(run.device, precision),
                "sparse_embeddings": outcome.sparse_embeddings,
                # train.compile: what ran, the first (compiling) step's time (absent where no loop ran: TF-IDF)
                **({"compile": outcome.compile} if outcome.compile is not None else {}),
                **(train_extra or {}),
            },
            "labels": labels,
            **(summary_extra or {}),
            "warnings": warnings,
        }
        write_json(run.run_dir / "metrics.json", summary)
        write_model_card(run.run_dir)  # README.md: what the model is, how it was made, where it fails
        ref = finish_tracking(run.cfg, run.accelerator, run.run_dir, summary)  # test metrics; row and version
    result = RunResult(
        run_dir=run.run_dir,
        labels=labels,
        best_epoch=outcome.best_epoch,
        dev=results.get("dev", {}),
        test=results.get("test"),
        history=outcome.history,
        train_seconds=outcome.train_seconds,
        train_samples_per_s=outcome.samples_per_s,
        precision=precision,
        trainable_params=params[0],
        total_params=params[1],
        peak_rss_mb=peak_rss_mb(),
        warnings=warnings,
    )
    result.ref = ref
    return result


def class_weights(
    cfg: FinetuneConfig, y: np.ndarray, num_labels: int, multi_label: bool, device: torch.device
) -> torch.Tensor | None:
    """``train.class_weights=balanced``: n/(k·n_c) per class (scikit-learn's formula), or negatives/positives
    per label for multi-label; None otherwise."""
    if cfg.train.class_weights == "none":
        return None
    if multi_label:
        pos = y.sum(axis=0)
        w = (len(y) - pos) / np.maximum(pos, 1)
    else:
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        w = np.ones(num_labels)
        w[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.tensor(w, dtype=torch.float32, device=device)


def classification_loss(
    multi_label: bool, weight: torch.Tensor | None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy (per-label binary cross-entropy for multi-label) with optional class weights."""

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)
        return F.cross_entropy(logits, labels, weight=weight)

    return loss
