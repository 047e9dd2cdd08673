"""Tokenise once, then build length-bucketed batches and pad each batch only to its own longest row.

Text rows (`encode_texts`, `collate`) and pre-split words for token classification (`encode_words`,
`collate_tokens`) share the planner and the padding.

Padding strategy is the biggest CPU lever (benchmarks/train_throughput.py: every text padded to 128 ran at
11.4 samples/s on BANKING77, length buckets at 95 in fp32 and 138 in bf16), so batches are planned from
token lengths before any tensor is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from growthcurve.data.text import TextSplits
from growthcurve.errors import ModelError
from growthcurve.models.baselines import WordTokenizer

IGNORE = -100
"""Target of sub-tokens that count neither in the loss nor in the metrics (PyTorch's ignore_index)."""


@dataclass
class Encoded:
    """Token ids per row (ragged), optional token-type ids, and the targets."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_texts(
    tokenizer: Any,  # a Hugging Face tokenizer or the baselines' WordTokenizer: both are called the same way
    texts: list[str],
    pairs: list[str] | None,
    labels: np.ndarray,
    max_length: int,
    desc: str = "tokenise",
    progress: bool = True,
    chunk: int = 2048,
) -> Encoded:
    """Tokenise in chunks with a progress bar; no padding (batches pad themselves)."""
    ids: list[np.ndarray] = []
    types: list[np.ndarray] | None = [] if pairs is not None else None
    with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False) as bar:
        for start in range(0, len(texts), chunk):
            a = texts[start : start + chunk]
            b = pairs[start : start + chunk] if pairs is not None else None
            out = tokenizer(a, b, truncation=True, max_length=max_length, return_attention_mask=False)
            ids.extend(np.asarray(x, dtype=np.int64) for x in out["input_ids"])
            if types is not None:
                types.extend(np.asarray(x, dtype=np.int64) for x in out["token_type_ids"])
            bar.update(len(a))
    return Encoded(ids, types, labels)


def encode_splits(tokenizer: Any, splits: TextSplits, max_length: int, progress: bool) -> dict[str, Encoded]:
    """`encode_texts` for each split the data has (train, and dev/test when present)."""
    return {
        name: encode_texts(tokenizer, ex.texts, ex.pairs, ex.labels, max_length, f"tokenise {name}", progress)
        for name, ex in (("train", splits.train), ("dev", splits.dev), ("test", splits.test))
        if ex is not None
    }


def plan_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, strategy: str = "bucket", multiplier: int = 50
) -> list[np.ndarray]:
    """Row indices per batch for one epoch; deterministic in (seed, epoch) so a resumed run replays it.

    ``bucket``: shuffle, cut into mega-batches of ``batch_size * multiplier`` rows, sort each by length,
    cut into batches and shuffle the batch order (the same idea as Trainer's group_by_length).
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    if strategy == "random":
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    mega = batch_size * multiplier
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), mega):
        block = perm[start : start + mega]
        block = block[np.argsort(-lengths[block], kind="stable")]
        batches.extend(block[i : i + batch_size] for i in range(0, len(block), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Length-sorted batches for inference (order is restored by the caller)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(data: Encoded, rows: np.ndarray, pad_id: int, with_labels: bool = True) -> dict[str, torch.Tensor]:
    """Pad ``rows`` to their longest member and build the attention mask."""
    seqs = [data.input_ids[i] for i in rows]
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if data.token_type_ids is not None:
        tt = np.zeros((len(seqs), width), dtype=np.int64)
        for r, i in enumerate(rows):
            t = data.token_type_ids[i]
            tt[r, : len(t)] = t
        batch["token_type_ids"] = torch.from_numpy(tt)
    if with_labels:
        batch["labels"] = torch.from_numpy(np.ascontiguousarray(data.labels[rows]))
    return batch


# ----------------------------------------------------------------------------------------------
# words for token classification


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
                    assert unk is not None  # a Hugging Face tokenizer always adds [CLS]/[SEP]
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
