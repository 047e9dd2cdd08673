"""Text classification fine-tuning, read top to bottom: setup → data → model → fit → finish.

Speed levers measured on a 2-core AMX CPU (see benchmarks/train_throughput.py): length-bucketed
batches padded per batch, bf16 autocast, fused AdamW, and lazy (sparse) Adam updates for the
word-embedding matrix. The loop itself (resume, checkpoints, early stopping, accelerate) is
`growthcurve.training.loop.fit`; the run bookkeeping is `growthcurve.training.recipe`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from growthcurve.config import FinetuneConfig
from growthcurve.data.text import load_text_splits
from growthcurve.evaluation.classification import write_reports
from growthcurve.models.adapt import adapted_base
from growthcurve.models.build import build_model, count_parameters
from growthcurve.models.hf import load_tokenizer, resolve_model_path
from growthcurve.models.peft_methods import task_specific_bytes, with_method_defaults
from growthcurve.models.vocab import extend_vocab_for
from growthcurve.training.batching import collate, encode_splits
from growthcurve.training.explain import write_confusion_explanations
from growthcurve.training.hardware import resolve_precision
from growthcurve.training.loop import FitHooks, fit
from growthcurve.training.ood import fit_in_recipe, model_scorer
from growthcurve.training.recipe import (
    claim_folder,
    class_weights,
    classification_loss,
    finish_run,
    keep_probabilities,
    open_folder,
    report_warnings,
    run_meta,
    saver,
    start_run,
)
from growthcurve.training.runfolder import LoadedRun, RunResult
from growthcurve.training.scoring import evaluate_split


def finetune_text(cfg: FinetuneConfig, progress: bool = True, stop_after_steps: int | None = None) -> RunResult:
    """Fine-tune a text classifier as ``cfg`` says and leave a complete run folder.

    ``stop_after_steps`` simulates an interruption after that many optimiser steps (tests of resume).
    """
    cfg = with_method_defaults(cfg)  # e.g. LoRA's learning rate unless one was given

    # ---- setup
    run = start_run(cfg, progress)
    precision = resolve_precision(cfg.train.precision, run.device)
    bf16 = precision == "bf16"

    # ---- data
    splits = load_text_splits(cfg.data, seed=cfg.train.seed, label_names=cfg.data.labels)
    state = claim_folder(cfg)  # after the data checks, so a data error leaves the folder untouched
    report_warnings(run, splits.warnings)
    model_path = resolve_model_path(cfg.model.name_or_path)
    tokenizer = load_tokenizer(model_path)
    train_texts = splits.train.texts + (splits.train.pairs or [])
    vocab = extend_vocab_for(cfg, tokenizer, train_texts, echo=run.main)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    enc = encode_splits(tokenizer, splits, cfg.model.max_length, run.progress)

    # ---- model: masked-LM adaptation of the (extended) encoder on the run's texts first, when asked
    with adapted_base(
        cfg, model_path, tokenizer, train_texts, vocab.resize, len(vocab.added), bf16, run.progress,
        resume=state is not None, echo=tqdm.write if run.main else None,
    ) as (base_path, adaptation):  # fmt: skip
        model = build_model(cfg, base_path, splits.labels, splits.multi_label, vocab)  # new rows, then the method
    params = count_parameters(model)
    adapt_info = {"adaptation": adaptation.summary()} if adaptation is not None else {}
    meta = run_meta(
        cfg,
        precision,
        multi_label=splits.multi_label,
        text_pair=cfg.data.text_pair_column is not None,
        vocab=vocab.summary(),
        **adapt_info,
    )
    open_folder(run)
    weight = class_weights(cfg, splits.train.labels, len(splits.labels), splits.multi_label, run.device)
    loss = classification_loss(splits.multi_label, weight)

    def score(m: torch.nn.Module, split: str, desc: str) -> tuple[dict[str, float], np.ndarray]:
        batch = cfg.train.eval_batch_size
        return evaluate_split(m, enc[split], pad_id, batch, bf16, splits.multi_label, run.device, desc, run.progress)

    def validate(m: torch.nn.Module) -> dict[str, float] | None:
        return score(m, "dev", "dev")[0] if "dev" in enc else None

    # ---- fit
    hooks = FitHooks(loss, validate, saver(run, tokenizer, splits.labels, meta), collate, pad_id)
    outcome = fit(cfg, run.accelerator, model, enc["train"], hooks, state, bf16, run.progress, stop_after_steps)
    splits.warnings.extend(outcome.warnings)  # e.g. "the train loss is not falling"

    # ---- finish: reports of the best model, its out-of-scope detector (metrics.json → ood)
    extra: dict[str, Any] = dict(adapt_info)  # score_best adds "ood" before finish_run writes metrics.json
    fitted: list[bool] = []

    def score_best(best: Any, split: str) -> dict[str, float] | None:
        if not fitted:  # the first split scored: fit the detector once, with the best model
            fitted.append(True)
            batch = cfg.train.eval_batch_size
            scorer = model_scorer(best, tokenizer, cfg.model.max_length, batch, bf16, run.device, run.progress)
            fit_in_recipe(run.run_dir, cfg, splits.labels, splits, scorer, extra, splits.warnings, tqdm.write)
        if split not in enc:
            return None
        metrics, probs = score(best, split, f"{split} (best model)")
        write_reports(run.run_dir, split, enc[split].labels, probs, splits.labels, splits.multi_label)
        keep_probabilities(run, split, probs, enc[split].labels)
        if split == ("test" if "test" in enc else "dev"):  # the run report explains a few worst confusions
            loaded = LoadedRun(best, tokenizer, splits.labels, meta, run.run_dir / "model")
            write_confusion_explanations(loaded, split, getattr(splits, split).texts, enc[split].labels, probs)
        return metrics

    size = {"task_specific_bytes": task_specific_bytes(run.run_dir / "model")} if run.main else {}
    return finish_run(run, outcome, splits.labels, score_best, precision, params, splits.warnings, size, extra)
