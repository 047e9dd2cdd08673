"""Token classification (NER) fine-tuning, read top to bottom: encode → model → fit → evaluate → predict.

Words (or characters, for character-level corpora) are tokenised with ``is_split_into_words``; each
word's tag goes on its first sub-token and the other sub-tokens get -100, so they count neither in the
loss nor in the metrics. Predictions are read at first sub-tokens, decoded with the scheme's allowed
transitions (constrained Viterbi) and scored per word with seqeval's strict mode. A BiLSTM tagger
(``model.type=rnn``) with a WordPiece vocabulary learnt from the training words is the from-scratch
baseline. The shared optimisation loop is `growthcurve.training.loop.fit`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from growthcurve.config import DataConfig, FinetuneConfig
from growthcurve.data.tokens import TokenExamples, TokenSplits, load_token_splits, read_labelled
from growthcurve.errors import ModelError
from growthcurve.evaluation.classification import plot_training_curves
from growthcurve.evaluation.ner import allowed_transitions, constrained_decode, entities, ner_scores, write_ner_reports
from growthcurve.io import write_json
from growthcurve.models.baselines import (
    ARCH_FILE,
    WEIGHTS_FILE,
    BiRNNModel,
    ClassifierOutput,
    WordTokenizer,
)
from growthcurve.models.build import count_parameters, with_method
from growthcurve.models.hf import load_pretrained, load_tokenizer, resolve_model_path
from growthcurve.models.peft_methods import task_specific_bytes, with_method_defaults
from growthcurve.models.vocab import VocabExtension, extend_vocab_for
from growthcurve.training.batching import Encoded, collate, eval_batches
from growthcurve.training.hardware import peak_rss_mb, resolve_precision
from growthcurve.training.loop import fit, load_checkpoint, seed_everything
from growthcurve.training.runfolder import LoadedRun, save_model_dir, write_config
from growthcurve.training.text import RunResult

__all__ = ["BiRNNTagger", "TokenEncoded", "encode_words", "finetune_tokens", "predict_entities", "evaluate_token_run"]

IGNORE = -100


# ----------------------------------------------------------------------------------------------
# encoding and batching


@dataclass
class TokenEncoded(Encoded):
    """Sub-token ids per sentence, per-sub-token targets (-100 where ignored) and word positions.

    ``first_index[i][w]`` is the sub-token position of word ``w``'s first piece, or -1 when the word
    produced no piece (whitespace) or was cut by ``max_length``; predictions map back through it.
    """

    first_index: list[np.ndarray] = field(default_factory=list)
    truncated: int = 0


def _object_array(rows: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    for i, r in enumerate(rows):
        out[i] = r
    return out


def encode_words(
    tokenizer: Any,
    sentences: list[list[str]],
    tag_ids: list[list[int]] | None,
    max_length: int,
    desc: str = "tokenise",
    progress: bool = True,
    chunk: int = 1024,
) -> TokenEncoded:
    """Tokenise pre-split sentences; the tag of each word goes on its first sub-token, -100 elsewhere."""
    ids: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    firsts: list[np.ndarray] = []
    truncated = 0
    backend = tokenizer.tokenizer_ if isinstance(tokenizer, WordTokenizer) else None
    if backend is None and not getattr(tokenizer, "is_fast", False):
        raise ModelError("token classification needs a fast (Rust) tokenizer to map sub-tokens to words")
    unk = tokenizer.tokenizer_.token_to_id(WordTokenizer.UNK) if backend is not None else None
    with tqdm(total=len(sentences), desc=desc, unit="sent", disable=not progress, leave=False) as bar:
        for start in range(0, len(sentences), chunk):
            part = sentences[start : start + chunk]
            if backend is not None:
                backend.enable_truncation(max_length)
                encs = backend.encode_batch(part, is_pretokenized=True)
                batch_ids = [e.ids for e in encs]
                batch_words = [e.word_ids for e in encs]
            else:
                out = tokenizer(
                    part, is_split_into_words=True, truncation=True, max_length=max_length, return_attention_mask=False
                )
                batch_ids = out["input_ids"]
                batch_words = [out.word_ids(i) for i in range(len(part))]
            for k, (row_ids, words) in enumerate(zip(batch_ids, batch_words, strict=True)):
                n_words = len(part[k])
                if not row_ids:  # the BiLSTM vocabulary gives nothing for whitespace-only input
                    row_ids, words = [unk], [None]
                first = np.full(n_words, -1, dtype=np.int64)
                lab = np.full(len(row_ids), IGNORE, dtype=np.int64)
                prev = None
                for j, w in enumerate(words):
                    if w is not None and w != prev:
                        first[w] = j
                        if tag_ids is not None:
                            lab[j] = tag_ids[start + k][w]
                    prev = w
                seen = [w for w in words if w is not None]
                if seen and max(seen) < n_words - 1 and len(row_ids) >= max_length:
                    truncated += 1
                ids.append(np.asarray(row_ids, dtype=np.int64))
                labels.append(lab)
                firsts.append(first)
            bar.update(len(part))
    return TokenEncoded(ids, None, _object_array(labels), firsts, truncated)


def collate_tokens(data: Encoded, rows: np.ndarray, pad_id: int, with_labels: bool = True) -> dict[str, torch.Tensor]:
    """`collate` plus per-sub-token labels padded with -100."""
    batch = collate(data, rows, pad_id, with_labels=False)
    if with_labels:
        width = batch["input_ids"].shape[1]
        lab = np.full((len(rows), width), IGNORE, dtype=np.int64)
        for r, i in enumerate(rows):
            y = data.labels[i]
            lab[r, : len(y)] = y
        batch["labels"] = torch.from_numpy(lab)
    return batch


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labelled sub-tokens only (first piece of each word)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


# ----------------------------------------------------------------------------------------------
# the BiLSTM baseline


class BiRNNTagger(BiRNNModel):
    """BiLSTM/GRU tagger: `BiRNNEncoder` states, dropout and a linear layer per token."""

    head_inputs = 1

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """Logits ``[batch, time, num_labels]``; ``token_type_ids`` is accepted and ignored."""
        return ClassifierOutput(self.classifier(self.dropout(self.encoder(input_ids, attention_mask))))


def load_tagger(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """Model and tokenizer of a finished token-classification run (transformer or BiLSTM)."""
    model_dir = Path(model_dir)
    if meta.get("model_type") == "rnn":
        arch_file = model_dir / ARCH_FILE
        if not arch_file.is_file():
            raise ModelError(f"'{model_dir}' has no {ARCH_FILE}; the run folder is incomplete")
        from safetensors.torch import load_model

        arch = json.loads(arch_file.read_text(encoding="utf-8"))
        model = BiRNNTagger(**arch["kwargs"])
        load_model(model, str(model_dir / WEIGHTS_FILE))
        return model, WordTokenizer.from_pretrained(model_dir)
    if meta.get("method", "full") != "full":  # PEFT: base model + the run's task-specific weights
        from growthcurve.models.peft_methods import load_method_model

        return load_method_model(model_dir, meta), load_tokenizer(str(model_dir))
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    return (
        load_pretrained(AutoModelForTokenClassification, str(model_dir)),
        load_pretrained(AutoTokenizer, str(model_dir)),
    )


def build_token_model(cfg: FinetuneConfig, model_path: str, tags: list[str]) -> Any:
    """AutoModelForTokenClassification on the pretrained encoder, with our tag map (new head)."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = load_pretrained(AutoConfig, model_path)
    config.num_labels = len(tags)
    config.id2label = dict(enumerate(tags))
    config.label2id = {t: i for i, t in enumerate(tags)}
    if cfg.model.dropout is not None:
        for key in ("hidden_dropout_prob", "classifier_dropout", "dropout"):
            if hasattr(config, key):
                setattr(config, key, cfg.model.dropout)
    return load_pretrained(AutoModelForTokenClassification, model_path, config=config)


# ----------------------------------------------------------------------------------------------
# inference and evaluation


@torch.inference_mode()
def word_log_probs(
    model: torch.nn.Module,
    data: TokenEncoded,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    device: torch.device,
    num_labels: int,
    desc: str = "evaluate",
    progress: bool = True,
) -> tuple[list[np.ndarray], float]:
    """Per-word log-probabilities ``[n_words, K]`` per sentence (read at first sub-tokens) and the mean loss.

    A word without a sub-token (whitespace, or cut by max_length) gets probability 1 for ``O`` (index 0).
    """
    model.eval()
    out: list[np.ndarray | None] = [None] * len(data)
    loss_sum, n = 0.0, 0
    has_labels = data.labels is not None and len(data.labels) == len(data)
    with tqdm(total=len(data), desc=desc, unit="sent", disable=not progress, leave=False) as bar:
        for rows in eval_batches(data.lengths, batch_size):
            batch = collate_tokens(data, rows, pad_id, with_labels=has_labels)
            labels = batch.pop("labels", None)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**batch).logits.float()
            lp = torch.log_softmax(logits, dim=-1).cpu().numpy()
            if labels is not None:
                labels = labels.to(device)
                mask = labels != IGNORE
                if bool(mask.any()):
                    loss_sum += float(F.cross_entropy(logits[mask], labels[mask], reduction="sum"))
                    n += int(mask.sum())
            for r, i in enumerate(rows):
                first = data.first_index[i]
                words = np.full((len(first), num_labels), -1e4, dtype=np.float32)
                words[:, 0] = 0.0
                ok = first >= 0
                words[ok] = lp[r, first[ok]]
                out[i] = words
            bar.update(len(rows))
    return [o for o in out if o is not None], (loss_sum / n if n else float("nan"))


def decode(log_probs: list[np.ndarray], tags: list[str], scheme: str) -> list[list[str]]:
    """Best valid tag sequence per sentence."""
    masks = allowed_transitions(tags, scheme)
    return [[tags[k] for k in constrained_decode(lp, masks)] for lp in log_probs]


def evaluate_tokens(
    model: torch.nn.Module,
    data: TokenEncoded,
    examples: TokenExamples,
    tags: list[str],
    scheme: str,
    pad_id: int,
    batch_size: int,
    bf16: bool,
    device: torch.device,
    desc: str = "evaluate",
    progress: bool = True,
) -> tuple[dict[str, float], list[list[str]]]:
    """Entity-level (strict) metrics, token accuracy and loss on one labelled split, and the predicted tags."""
    lps, loss = word_log_probs(model, data, pad_id, batch_size, bf16, device, len(tags), desc, progress)
    pred = decode(lps, tags, scheme)
    metrics = ner_scores(examples.tags, pred, scheme).as_dict()
    metrics["loss"] = loss
    return metrics, pred


# ----------------------------------------------------------------------------------------------
# the recipe


def _defaults(cfg: FinetuneConfig) -> FinetuneConfig:
    """Entity F1 for early stopping / model selection unless set; from-scratch defaults for the BiLSTM, the
    PEFT method's learning rate."""
    if cfg.model.type == "rnn":
        from growthcurve.training.baseline import with_scratch_defaults

        cfg = with_scratch_defaults(cfg)
    cfg = with_method_defaults(cfg)
    if "early_stopping_metric" not in cfg.train.model_fields_set:
        train = cfg.train.model_copy(update={"early_stopping_metric": "entity_f1"})
        train.model_fields_set.discard("early_stopping_metric")
        cfg = cfg.model_copy(update={"train": train})
    return cfg


def finetune_tokens(cfg: FinetuneConfig, progress: bool = True, stop_after_steps: int | None = None) -> RunResult:
    """Train a tagger (transformer or BiLSTM) as ``cfg`` says and leave a complete run folder."""
    from accelerate import Accelerator

    cfg = _defaults(cfg)
    if cfg.model.type not in ("transformer", "rnn"):
        raise ModelError(f"task=token-classification supports model.type transformer or rnn, not {cfg.model.type}")
    rnn = cfg.model.type == "rnn"

    # ---- setup
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no")
    device, main = accelerator.device, accelerator.is_main_process
    progress = progress and main
    precision = "fp32" if rnn else resolve_precision(cfg.train.precision, device)
    bf16 = precision == "bf16"
    run_dir = Path(cfg.output_dir)
    seed_everything(cfg.train.seed)

    # ---- data and tokenizer
    splits: TokenSplits = load_token_splits(cfg.data, seed=cfg.train.seed)
    state = load_checkpoint(cfg)  # after the data checks, so a data error is reported first
    vocab: VocabExtension | None = None
    if rnn:
        tokenizer: Any = WordTokenizer().fit(splits.train.texts)
        model_path = ""
    else:
        model_path = resolve_model_path(cfg.model.name_or_path)
        tokenizer = load_tokenizer(model_path)
        vocab = extend_vocab_for(cfg, tokenizer, splits.train.texts, echo=main)
    for w in splits.warnings:
        if main:
            tqdm.write(f"warning: {w}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    index = {t: i for i, t in enumerate(splits.tags)}
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    enc: dict[str, TokenEncoded] = {}
    for name, ex in parts.items():
        if ex is None:
            continue
        tag_ids = [[index[t] for t in sent] for sent in ex.tags]
        enc[name] = encode_words(tokenizer, ex.tokens, tag_ids, cfg.model.max_length, f"tokenise {name}", progress)
        if enc[name].truncated:
            splits.warnings.append(
                f"{name}: {enc[name].truncated} sentences are longer than model.max_length={cfg.model.max_length} "
                "sub-tokens; their last words are predicted O (raise model.max_length)"
            )

    # ---- model
    if rnn:
        dropout = 0.3 if cfg.model.dropout is None else cfg.model.dropout
        model: Any = BiRNNTagger(
            len(tokenizer), len(splits.tags), 128, cfg.model.hidden_size, cfg.model.rnn_cell, dropout, pad_id
        )
    else:
        model = with_method(build_token_model(cfg, model_path, splits.tags), cfg, model_path)
        assert vocab is not None
        vocab.resize(model)
    trainable, total = count_parameters(model)
    meta = {
        "task": cfg.task,
        "method": cfg.method,
        "model_type": cfg.model.type,
        "base_model": cfg.model.name_or_path if not rnn else "bilstm",
        "multi_label": False,
        "max_length": cfg.model.max_length,
        "precision": precision,
        "tag_scheme": splits.scheme,
        "char_level": splits.train.char_level,
        "vocab": vocab.summary() if vocab is not None else None,
    }
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg)

    def evaluate(m: torch.nn.Module, split: str, desc: str) -> tuple[dict[str, float], list[list[str]]]:
        ex = parts[split]
        assert ex is not None
        return evaluate_tokens(
            m,
            enc[split],
            ex,
            splits.tags,
            splits.scheme,
            pad_id,
            cfg.train.eval_batch_size,
            bf16,
            device,
            desc,
            progress,
        )

    def validate(m: torch.nn.Module) -> dict[str, float] | None:
        return evaluate(m, "dev", "dev")[0] if "dev" in enc else None

    def save_best(m: torch.nn.Module) -> None:
        save_model_dir(run_dir, accelerator.unwrap_model(m), tokenizer, splits.tags, meta)

    # ---- fit
    outcome = fit(
        cfg,
        accelerator,
        model,
        enc["train"],
        pad_id,
        token_loss,
        validate,
        save_best,
        state,
        bf16,
        progress,
        stop_after_steps,
        collate_tokens,
    )

    # ---- final reports with the best model
    from growthcurve.training.runfolder import load_run

    results: dict[str, dict[str, float]] = {}
    if main:
        best = load_run(run_dir).model.to(device)
        for split in ("dev", "test"):
            if split not in enc:
                continue
            metrics, pred = evaluate(best, split, f"{split} (best model)")
            ex = parts[split]
            assert ex is not None
            write_ner_reports(run_dir, split, ex.tags, pred, splits.scheme, ex.tokens)
            results[split] = metrics
        plot_training_curves(outcome.history, run_dir / "training_curves.png")
        write_json(
            run_dir / "metrics.json",
            {
                "epochs": outcome.history,
                "best_epoch": outcome.best_epoch,
                "dev": results.get("dev", {}),
                "test": results.get("test"),
                "train": {
                    "seconds": outcome.train_seconds,
                    "samples_per_s": outcome.samples_per_s,
                    "steps": outcome.global_step,
                    "precision": precision,
                    "trainable_params": trainable,
                    "total_params": total,
                    "task_specific_bytes": task_specific_bytes(run_dir / "model"),  # weights a run adds to its base
                    "peak_rss_mb": peak_rss_mb(),
                    "sparse_embeddings": outcome.sparse_embeddings,
                },
                "labels": splits.tags,
                "tag_scheme": splits.scheme,
                "vocab": meta["vocab"],
                "warnings": splits.warnings,
            },
        )
    return RunResult(
        run_dir,
        splits.tags,
        outcome.best_epoch,
        results.get("dev", {}),
        results.get("test"),
        outcome.history,
        outcome.train_seconds,
        outcome.samples_per_s,
        precision,
        trainable,
        total,
        peak_rss_mb(),
        splits.warnings,
    )


# ----------------------------------------------------------------------------------------------
# using a finished run


# URLs, @mentions/#hashtags, words (with inner - or .), clitics like 's, then single symbols:
# close to how CoNLL/WNUT corpora are tokenised, so words at prediction time look like training words.
_WORD = re.compile(r"https?://\S+|www\.\S+|[@#]?\w+(?:[-.]\w+)*|'\w+|[^\w\s]")


def split_words(text: str, char_level: bool) -> tuple[list[str], list[tuple[int, int]]]:
    """Words (characters for character-level runs) of ``text`` with their character offsets."""
    if char_level:
        return list(text), [(i, i + 1) for i in range(len(text))]
    found = list(_WORD.finditer(text))
    return [m.group() for m in found], [m.span() for m in found]


def predict_entities(run: LoadedRun, inputs: list[str] | list[list[str]], batch_size: int = 64) -> list[dict[str, Any]]:
    """Entity spans with character offsets for raw texts (or pre-split word lists) from a token run.

    Each result: ``{"text", "entities": [{"type", "text", "start", "end", "score"}], "tokens", "tags"}``;
    ``score`` is the mean probability of the entity's tags. A word list is joined with single spaces.
    """
    meta, tags = run.meta, run.labels
    char_level = bool(meta.get("char_level"))
    texts: list[str] = []
    words: list[list[str]] = []
    spans: list[list[tuple[int, int]]] = []
    for item in inputs:
        if isinstance(item, str):
            w, s = split_words(item, char_level)
            text = item
        else:
            w = [str(x) for x in item]
            sep = "" if char_level else " "
            text = sep.join(w)
            s, pos = [], 0
            for x in w:
                s.append((pos, pos + len(x)))
                pos += len(x) + len(sep)
        texts.append(text)
        words.append(w)
        spans.append(s)
    if not texts:
        return []
    enc = encode_words(run.tokenizer, words, None, meta["max_length"], progress=False)
    enc.labels = None  # type: ignore[assignment]
    pad_id = run.tokenizer.pad_token_id or 0
    lps, _ = word_log_probs(
        run.model,
        enc,
        pad_id,
        batch_size,
        meta.get("precision") == "bf16",
        torch.device("cpu"),
        len(tags),
        progress=False,
    )
    pred = decode(lps, tags, meta["tag_scheme"])
    index = {t: i for i, t in enumerate(tags)}
    out = []
    for text, w, s, p, lp in zip(texts, words, spans, pred, lps, strict=True):
        ents = []
        for etype, a, b in entities(p, meta["tag_scheme"]):
            start, end = s[a][0], s[b - 1][1]
            score = float(np.mean([np.exp(lp[i, index[p[i]]]) for i in range(a, b)]))
            ents.append({"type": etype, "text": text[start:end], "start": start, "end": end, "score": round(score, 6)})
        out.append({"text": text, "entities": ents, "tokens": w, "tags": p})
    return out


def evaluate_token_run(
    run: LoadedRun, data: DataConfig, data_path: str | Path, out: Path, progress: bool = True
) -> dict[str, Any]:
    """Entity-level metrics and reports of a token run's best model on a labelled file."""
    ex, warnings = read_labelled(data_path, data, run.labels, run.meta["tag_scheme"])
    index = {t: i for i, t in enumerate(run.labels)}
    tag_ids = [[index[t] for t in sent] for sent in ex.tags]
    enc = encode_words(run.tokenizer, ex.tokens, tag_ids, run.meta["max_length"], "tokenise", progress)
    metrics, pred = evaluate_tokens(
        run.model,
        enc,
        ex,
        run.labels,
        run.meta["tag_scheme"],
        run.tokenizer.pad_token_id or 0,
        64,
        run.meta.get("precision") == "bf16",
        torch.device("cpu"),
        "evaluate",
        progress,
    )
    out.mkdir(parents=True, exist_ok=True)
    report = write_ner_reports(out, "eval", ex.tags, pred, run.meta["tag_scheme"], ex.tokens)
    write_json(out / "metrics.json", {"data": str(data_path), "metrics": metrics, "warnings": warnings})
    return {"metrics": metrics, "report": report, "out_dir": str(out), "warnings": warnings}
