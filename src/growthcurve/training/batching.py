"""Tokenise once, then build length-bucketed batches and pad each batch only to its own longest row.

Padding strategy is the biggest CPU lever (REFERENCE.md: padding every text to 128 is ~30x slower
than grouping by length), so batches are planned from token lengths before any tensor is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm


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
    tokenizer: object,
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
