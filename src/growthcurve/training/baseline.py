"""Text baselines without pretrained weights: ``model.type`` rnn (BiLSTM/GRU), textcnn and tfidf.

Read top to bottom: defaults → data → tokenizer → model → fit (the shared loop of ``training.loop``, so
resume, early stopping and checkpoints behave as for transformers) → finish (``training.recipe``). The run
folder matches the transformer recipe's, so ``growthcurve evaluate`` / ``predict`` and ``load_run`` work on
it unchanged. TF-IDF + logistic regression is one scikit-learn fit: its single "epoch" is the whole fit.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from growthcurve.config import FinetuneConfig
from growthcurve.data.text import TextSplits, load_text_splits
from growthcurve.evaluation.classification import write_reports
from growthcurve.models.baselines import NullTokenizer, TfidfClassifier, WordTokenizer, build_text_baseline
from growthcurve.models.build import count_parameters
from growthcurve.training.batching import encode_splits
from growthcurve.training.explain import write_confusion_explanations
from growthcurve.training.loop import FitHooks, FitOutcome, fit
from growthcurve.training.ood import fit_in_recipe, model_scorer, tfidf_scorer
from growthcurve.training.recipe import (
    RunContext,
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
    with_scratch_defaults,
)
from growthcurve.training.runfolder import LoadedRun, RunResult, save_model_dir
from growthcurve.training.scoring import evaluate_split, join_pairs, probs_loss, tfidf_split


def train_baseline(cfg: FinetuneConfig, progress: bool = True) -> RunResult:
    """Train an rnn, textcnn or tfidf text classifier as ``cfg`` says and leave a complete run folder."""
    cfg = with_scratch_defaults(cfg)

    # ---- setup and data
    run = start_run(cfg, progress)
    splits = load_text_splits(cfg.data, seed=cfg.train.seed)
    state = claim_folder(cfg)  # after the data checks, so a data error leaves the folder untouched
    report_warnings(run, splits.warnings)
    meta = run_meta(
        cfg,
        "fp32",
        method="full",
        base_model=None,
        multi_label=splits.multi_label,
        text_pair=cfg.data.text_pair_column is not None,
    )
    if cfg.model.type == "tfidf":
        return _fit_tfidf(run, splits, meta)

    # ---- tokenizer and model
    t0 = time.perf_counter()
    tokenizer = WordTokenizer().fit(splits.train.texts + (splits.train.pairs or []))
    enc = encode_splits(tokenizer, splits, cfg.model.max_length, run.progress)
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
    open_folder(run)
    weight = class_weights(cfg, splits.train.labels, len(splits.labels), splits.multi_label, run.device)

    def score(m: torch.nn.Module, split: str, desc: str) -> tuple[dict[str, float], np.ndarray]:
        batch = cfg.train.eval_batch_size
        return evaluate_split(m, enc[split], pad_id, batch, False, splits.multi_label, run.device, desc, run.progress)

    def validate(m: torch.nn.Module) -> dict[str, float] | None:
        return score(m, "dev", "dev")[0] if "dev" in enc else None

    # ---- fit
    loss = classification_loss(splits.multi_label, weight)
    hooks = FitHooks(loss, validate, saver(run, tokenizer, splits.labels, meta), pad_id=pad_id)
    outcome = fit(cfg, run.accelerator, model, enc["train"], hooks, state, False, run.progress)

    # ---- finish: reports of the best model, its out-of-scope detector (metrics.json → ood)
    summary: dict[str, Any] = {}  # score_best adds "ood" before finish_run writes metrics.json
    fitted: list[bool] = []

    def score_best(best: Any, split: str) -> dict[str, float] | None:
        if not fitted:  # the first split scored: fit the detector once, with the best model
            fitted.append(True)
            batch = cfg.train.eval_batch_size
            scorer = model_scorer(best, tokenizer, cfg.model.max_length, batch, False, run.device, run.progress)
            fit_in_recipe(run.run_dir, cfg, splits.labels, splits, scorer, summary, splits.warnings, tqdm.write)
        if split not in enc:
            return None
        metrics, probs = score(best, split, f"{split} (best model)")
        write_reports(run.run_dir, split, enc[split].labels, probs, splits.labels, splits.multi_label)
        keep_probabilities(run, split, probs, enc[split].labels)
        if split == ("test" if "test" in enc else "dev"):  # the run report explains a few worst confusions
            loaded = LoadedRun(best, tokenizer, splits.labels, meta, run.run_dir / "model")
            write_confusion_explanations(loaded, split, getattr(splits, split).texts, enc[split].labels, probs)
        return metrics

    extra = {"tokenize_seconds": tokenize_seconds, "vocab_size": len(tokenizer), "model_type": cfg.model.type}
    return finish_run(run, outcome, splits.labels, score_best, "fp32", params, splits.warnings, extra, summary)


def _fit_tfidf(run: RunContext, splits: TextSplits, meta: dict[str, Any]) -> RunResult:
    """One fit of the TF-IDF + logistic-regression pipeline; the 'epoch' is the whole fit."""
    cfg = run.cfg
    if cfg.train.compile != "off":
        msg = "train.compile=regions: TF-IDF + logistic regression has no torch layers to compile; fitting as usual"
        report_warnings(run, [msg])
        splits.warnings.append(msg)
    if run.progress:
        tqdm.write(f"fitting TF-IDF + logistic regression on {len(splits.train)} texts")
    t0 = time.perf_counter()
    train_texts = join_pairs(splits.train.texts, splits.train.pairs)
    clf = TfidfClassifier(multi_label=splits.multi_label, seed=cfg.train.seed)
    clf.fit(train_texts, splits.train.labels, progress=run.progress)
    seconds = time.perf_counter() - t0
    open_folder(run)
    if run.main:
        save_model_dir(run.run_dir, clf, NullTokenizer(), splits.labels, meta)

    entry: dict[str, Any] = {
        "epoch": 1,
        "step": 1,
        "train_loss": probs_loss(splits.train.labels, clf.predict_proba(train_texts), splits.multi_label),
        "samples_per_s": len(splits.train) / seconds,
    }
    if splits.dev is not None:
        entry["dev"] = tfidf_split(clf, splits.dev, splits.multi_label)[0]
    outcome = FitOutcome(
        history=[entry], best_epoch=1, global_step=1, train_seconds=seconds, samples_seen=len(splits.train)
    )

    summary: dict[str, Any] = {}  # score_best adds "ood" (the out-of-scope detector) before metrics.json
    fitted: list[bool] = []

    def score_best(best: Any, split: str) -> dict[str, float] | None:
        if not fitted:  # the first split scored: fit the detector once
            fitted.append(True)
            fit_in_recipe(run.run_dir, cfg, splits.labels, splits, tfidf_scorer(best), summary, splits.warnings,
                          tqdm.write)  # fmt: skip
        ex = getattr(splits, split)
        if ex is None:
            return None
        metrics, probs = tfidf_split(best, ex, splits.multi_label)
        write_reports(run.run_dir, split, ex.labels, probs, splits.labels, splits.multi_label)
        keep_probabilities(run, split, probs, ex.labels)
        if split == ("test" if splits.test is not None else "dev"):  # the run report explains worst confusions
            loaded = LoadedRun(best, NullTokenizer(), splits.labels, meta, run.run_dir / "model")
            write_confusion_explanations(loaded, split, ex.texts, ex.labels, probs)
        return metrics

    n = clf.n_parameters_
    train_extra = {"model_type": "tfidf"}
    return finish_run(
        run, outcome, splits.labels, score_best, "fp32", (n, n), splits.warnings, train_extra, summary, curves=False
    )
