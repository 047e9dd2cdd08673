"""Token classification (NER) fine-tuning, read top to bottom: setup → data → model → fit → finish.

Words (or characters, for character-level corpora) are tokenised with ``is_split_into_words``; each
word's tag goes on its first sub-token and the other sub-tokens get -100, so they count neither in the
loss nor in the metrics (`growthcurve.training.batching.encode_words`). Predictions are read at first
sub-tokens, decoded with the scheme's allowed transitions (constrained Viterbi) and scored per word with
seqeval's strict mode (`growthcurve.training.scoring.evaluate_tokens`). A BiLSTM tagger
(``model.type=rnn``) with a WordPiece vocabulary learnt from the training words is the from-scratch
baseline.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from growthcurve.config import FinetuneConfig
from growthcurve.data.tokens import load_token_splits
from growthcurve.evaluation.ner import write_ner_reports
from growthcurve.models.adapt import AdaptResult, adapted_base
from growthcurve.models.baselines import BiRNNTagger, WordTokenizer
from growthcurve.models.build import build_token_model, count_parameters
from growthcurve.models.hf import load_tokenizer, resolve_model_path
from growthcurve.models.peft_methods import task_specific_bytes, with_method_defaults
from growthcurve.models.vocab import VocabExtension, extend_vocab_for
from growthcurve.training.batching import IGNORE, TokenEncoded, collate_tokens, encode_words
from growthcurve.training.hardware import resolve_precision
from growthcurve.training.loop import FitHooks, fit
from growthcurve.training.recipe import (
    claim_folder,
    finish_run,
    open_folder,
    report_warnings,
    run_meta,
    saver,
    start_run,
    with_scratch_defaults,
)
from growthcurve.training.runfolder import RunResult
from growthcurve.training.scoring import evaluate_tokens


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labelled sub-tokens only (first piece of each word)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


def _defaults(cfg: FinetuneConfig) -> FinetuneConfig:
    """Entity F1 for early stopping / model selection unless set; from-scratch defaults for the BiLSTM, the
    PEFT method's learning rate."""
    if cfg.model.type == "rnn":
        cfg = with_scratch_defaults(cfg)
    cfg = with_method_defaults(cfg)
    if "early_stopping_metric" not in cfg.train.model_fields_set:
        train = cfg.train.model_copy(update={"early_stopping_metric": "entity_f1"})
        train.model_fields_set.discard("early_stopping_metric")
        cfg = cfg.model_copy(update={"train": train})
    return cfg


def finetune_tokens(cfg: FinetuneConfig, progress: bool = True, stop_after_steps: int | None = None) -> RunResult:
    """Train a tagger (transformer or BiLSTM) as ``cfg`` says and leave a complete run folder."""
    cfg = _defaults(cfg)
    rnn = cfg.model.type == "rnn"

    # ---- setup
    run = start_run(cfg, progress)
    precision = "fp32" if rnn else resolve_precision(cfg.train.precision, run.device)
    bf16 = precision == "bf16"

    # ---- data and tokenizer
    splits = load_token_splits(cfg.data, seed=cfg.train.seed)
    state = claim_folder(cfg)  # after the data checks, so a data error leaves the folder untouched
    vocab: VocabExtension | None = None
    adaptation: AdaptResult | None = None
    if rnn:
        tokenizer: Any = WordTokenizer().fit(splits.train.texts)
        model_path = ""
    else:
        model_path = resolve_model_path(cfg.model.name_or_path)
        tokenizer = load_tokenizer(model_path)
        vocab = extend_vocab_for(cfg, tokenizer, splits.train.texts, echo=run.main)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    index = {t: i for i, t in enumerate(splits.tags)}
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    enc: dict[str, TokenEncoded] = {}
    for name, ex in parts.items():
        if ex is None:
            continue
        tag_ids = [[index[t] for t in sent] for sent in ex.tags]
        enc[name] = encode_words(tokenizer, ex.tokens, tag_ids, cfg.model.max_length, f"tokenise {name}", run.progress)
        if enc[name].truncated:
            splits.warnings.append(
                f"{name}: {enc[name].truncated} sentences are longer than model.max_length={cfg.model.max_length} "
                "sub-tokens; their last words are predicted O (raise model.max_length)"
            )
    report_warnings(run, splits.warnings)

    # ---- model
    if rnn:
        dropout = 0.3 if cfg.model.dropout is None else cfg.model.dropout
        model: Any = BiRNNTagger(
            len(tokenizer), len(splits.tags), 128, cfg.model.hidden_size, cfg.model.rnn_cell, dropout, pad_id
        )
    else:
        assert vocab is not None
        # masked-LM adaptation of the (extended) encoder on the training sentences first, when asked
        sentences = ["".join(t) if splits.train.char_level else " ".join(t) for t in splits.train.tokens]
        with adapted_base(
            cfg, model_path, tokenizer, sentences, vocab.resize, len(vocab.added), bf16, run.progress,
            resume=state is not None, echo=tqdm.write if run.main else None,
        ) as (base_path, adaptation):  # fmt: skip
            model = build_token_model(cfg, base_path, splits.tags, vocab)  # new rows, then the method
    params = count_parameters(model)
    meta = run_meta(
        cfg,
        precision,
        base_model="bilstm" if rnn else cfg.model.name_or_path,
        tag_scheme=splits.scheme,
        char_level=splits.train.char_level,
        vocab=vocab.summary() if vocab is not None else None,
        **({"adaptation": adaptation.summary()} if adaptation is not None else {}),
    )
    open_folder(run)

    def score(m: torch.nn.Module, split: str, desc: str) -> tuple[dict[str, float], list[list[str]]]:
        ex = parts[split]
        assert ex is not None
        batch = cfg.train.eval_batch_size
        return evaluate_tokens(
            m, enc[split], ex, splits.tags, splits.scheme, pad_id, batch, bf16, run.device, desc, run.progress
        )

    def validate(m: torch.nn.Module) -> dict[str, float] | None:
        return score(m, "dev", "dev")[0] if "dev" in enc else None

    # ---- fit
    hooks = FitHooks(token_loss, validate, saver(run, tokenizer, splits.tags, meta), collate_tokens, pad_id)
    outcome = fit(cfg, run.accelerator, model, enc["train"], hooks, state, bf16, run.progress, stop_after_steps)
    splits.warnings.extend(outcome.warnings)  # e.g. "the train loss is not falling"

    # ---- finish: reports of the best model
    def score_best(best: Any, split: str) -> dict[str, float] | None:
        ex = parts[split]
        if ex is None:
            return None
        metrics, pred = score(best, split, f"{split} (best model)")
        write_ner_reports(run.run_dir, split, ex.tags, pred, splits.scheme, ex.tokens)
        return metrics

    size = {"task_specific_bytes": task_specific_bytes(run.run_dir / "model")} if run.main else {}
    extra = {
        "tag_scheme": splits.scheme,
        "vocab": meta["vocab"],
        **({"adaptation": meta["adaptation"]} if adaptation else {}),
    }
    return finish_run(run, outcome, splits.tags, score_best, precision, params, splits.warnings, size, extra)
