"""Text classification fine-tuning, read top to bottom: setup → fit → validate → save.

Speed levers measured on a 2-core AMX CPU (see benchmarks/train_throughput.py): length-bucketed
batches padded per batch, bf16 autocast, fused AdamW, and lazy (sparse) Adam updates for the
word-embedding matrix. The loop itself (resume, checkpoints, early stopping, accelerate) is
`growthcurve.training.loop.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from growthcurve.config import FinetuneConfig
from growthcurve.data.text import TextSplits, load_text_splits
from growthcurve.evaluation.classification import classification_metrics, plot_training_curves, write_reports
from growthcurve.io import write_json
from growthcurve.models.build import build_model, count_parameters
from growthcurve.models.hf import load_tokenizer, resolve_model_path
from growthcurve.models.peft_methods import task_specific_bytes, with_method_defaults
from growthcurve.models.vocab import extend_vocab_for
from growthcurve.training.batching import Encoded, collate, encode_texts, eval_batches
from growthcurve.training.hardware import peak_rss_mb, resolve_precision
from growthcurve.training.loop import Interrupted, fit, load_checkpoint, seed_everything
from growthcurve.training.runfolder import save_model_dir, write_config

__all__ = ["RunResult", "Interrupted", "finetune_text", "predict_probs", "evaluate_split"]


@dataclass
class RunResult:
    """What a finetune recipe returns: where the run is and how it went."""

    run_dir: Path
    labels: list[str]
    best_epoch: int
    dev: dict[str, float]
    test: dict[str, float] | None
    history: list[dict[str, Any]]
    train_seconds: float
    train_samples_per_s: float
    precision: str
    trainable_params: int
    total_params: int
    peak_rss_mb: float
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# inference


@torch.inference_mode()
def predict_probs(
    model: torch.nn.Module,
    data: Encoded,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    multi_label: bool,
    device: torch.device,
    desc: str = "evaluate",
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """Class probabilities for every row (original order) and the mean loss when labels are known."""
    model.eval()
    lengths = data.lengths
    out: np.ndarray | None = None
    loss_sum, n = 0.0, 0
    has_labels = data.labels is not None and len(data.labels) == len(data)
    with tqdm(total=len(data), desc=desc, unit="text", disable=not progress, leave=False) as bar:
        for rows in eval_batches(lengths, batch_size):
            batch = collate(data, rows, pad_id, with_labels=has_labels)
            labels = batch.pop("labels", None)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**batch).logits.float()
            probs = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
            if out is None:
                out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
            out[rows] = probs.cpu().numpy()
            if labels is not None:
                labels = labels.to(device)
                loss = (
                    F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum") / logits.shape[1]
                    if multi_label
                    else F.cross_entropy(logits, labels, reduction="sum")
                )
                loss_sum += float(loss)
                n += len(rows)
            bar.update(len(rows))
    assert out is not None
    return out, (loss_sum / n if n else float("nan"))


def evaluate_split(
    model: torch.nn.Module,
    data: Encoded,
    pad_id: int,
    cfg: FinetuneConfig,
    bf16: bool,
    multi_label: bool,
    device: torch.device,
    desc: str,
    progress: bool,
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics (loss, accuracy, F1s) and probabilities for one labelled split."""
    probs, loss = predict_probs(
        model, data, pad_id, cfg.train.eval_batch_size, bf16, multi_label, device, desc, progress
    )
    metrics = classification_metrics(data.labels, probs, multi_label)
    metrics["loss"] = loss
    return metrics, probs


# ----------------------------------------------------------------------------------------------
# the recipe


def finetune_text(cfg: FinetuneConfig, progress: bool = True, stop_after_steps: int | None = None) -> RunResult:
    """Fine-tune a text classifier as ``cfg`` says and leave a complete run folder.

    ``stop_after_steps`` simulates an interruption after that many optimiser steps (tests of resume).
    """
    from accelerate import Accelerator

    cfg = with_method_defaults(cfg)  # e.g. LoRA's learning rate unless one was given

    # ---- setup
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
    device, main = accelerator.device, accelerator.is_main_process
    progress = progress and main
    precision = resolve_precision(cfg.train.precision, device)
    bf16 = precision == "bf16"
    run_dir = Path(cfg.output_dir)
    seed_everything(cfg.train.seed)

    # ---- data
    splits: TextSplits = load_text_splits(cfg.data, seed=cfg.train.seed)
    state = load_checkpoint(cfg)  # after the data checks, so a data error is reported first
    for w in splits.warnings:
        if main:
            tqdm.write(f"warning: {w}")
    model_path = resolve_model_path(cfg.model.name_or_path)
    tokenizer = load_tokenizer(model_path)
    vocab = extend_vocab_for(cfg, tokenizer, splits.train.texts + (splits.train.pairs or []), echo=main)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    enc = {
        name: encode_texts(tokenizer, ex.texts, ex.pairs, ex.labels, cfg.model.max_length, f"tokenise {name}", progress)
        for name, ex in (("train", splits.train), ("dev", splits.dev), ("test", splits.test))
        if ex is not None
    }

    # ---- model
    model = build_model(cfg, model_path, splits.labels, splits.multi_label)
    vocab.resize(model)
    trainable, total = count_parameters(model)
    class_weight = _class_weights(cfg, splits, device)
    meta = {
        "task": cfg.task,
        "method": cfg.method,
        "model_type": cfg.model.type,
        "base_model": cfg.model.name_or_path,
        "multi_label": splits.multi_label,
        "max_length": cfg.model.max_length,
        "precision": precision,
        "text_pair": cfg.data.text_pair_column is not None,
        "vocab": vocab.summary(),
    }
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg)

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if splits.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=class_weight)
        return F.cross_entropy(logits, labels, weight=class_weight)

    def validate(m: torch.nn.Module) -> dict[str, float] | None:
        if "dev" not in enc:
            return None
        return evaluate_split(m, enc["dev"], pad_id, cfg, bf16, splits.multi_label, device, "dev", progress)[0]

    def save_best(m: torch.nn.Module) -> None:
        save_model_dir(run_dir, accelerator.unwrap_model(m), tokenizer, splits.labels, meta)

    # ---- fit
    outcome = fit(
        cfg,
        accelerator,
        model,
        enc["train"],
        pad_id,
        loss_fn,
        validate,
        save_best,
        state,
        bf16,
        progress,
        stop_after_steps,
        collate,
    )

    # ---- final reports with the best model
    from growthcurve.training.runfolder import load_run

    result_dev: dict[str, float] = {}
    result_test: dict[str, float] | None = None
    if main:
        best_model = load_run(run_dir).model.to(device)
        for split in ("dev", "test"):
            if split not in enc:
                continue
            metrics, probs = evaluate_split(
                best_model, enc[split], pad_id, cfg, bf16, splits.multi_label, device, f"{split} (best model)", progress
            )
            write_reports(run_dir, split, enc[split].labels, probs, splits.labels, splits.multi_label)
            if split == "dev":
                result_dev = metrics
            else:
                result_test = metrics
        plot_training_curves(outcome.history, run_dir / "training_curves.png")
        summary = {
            "epochs": outcome.history,
            "best_epoch": outcome.best_epoch,
            "dev": result_dev,
            "test": result_test,
            "train": {
                "seconds": outcome.train_seconds,
                "samples_per_s": outcome.samples_per_s,
                "steps": outcome.global_step,
                "precision": precision,
                "trainable_params": trainable,
                "total_params": total,
                "peak_rss_mb": peak_rss_mb(),
                "task_specific_bytes": task_specific_bytes(run_dir / "model"),  # weights a run adds to its base
                "sparse_embeddings": outcome.sparse_embeddings,
            },
            "labels": splits.labels,
            "warnings": splits.warnings,
        }
        write_json(run_dir / "metrics.json", summary)
    return RunResult(
        run_dir,
        splits.labels,
        outcome.best_epoch,
        result_dev,
        result_test,
        outcome.history,
        outcome.train_seconds,
        outcome.samples_per_s,
        precision,
        trainable,
        total,
        peak_rss_mb(),
        splits.warnings,
    )


def _class_weights(cfg: FinetuneConfig, splits: TextSplits, device: torch.device) -> torch.Tensor | None:
    """'balanced' weights n/(k·n_c) (scikit-learn's formula); negatives/positives ratio for multi-label."""
    if cfg.train.class_weights == "none":
        return None
    y = splits.train.labels
    if splits.multi_label:
        pos = y.sum(axis=0)
        w = (len(y) - pos) / np.maximum(pos, 1)
    else:
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        w = np.ones(len(splits.labels))
        w[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.tensor(w, dtype=torch.float32, device=device)
