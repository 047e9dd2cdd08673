"""Character coverage of a tokenizer's vocabulary, and extension with the missing characters.

English WordPiece vocabularies (MiniLM, BERT uncased) hold only about a quarter of common Chinese
characters; every other character becomes [UNK], so the model cannot tell most Chinese texts apart.
`extend_vocab` adds the characters of the training text that the vocabulary misses as new tokens;
`VocabExtension.resize` then grows the embedding table and initialises the new rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

AUTO_THRESHOLD = 0.9  # model.extend_vocab=null extends when distinct-character coverage is below this


@dataclass
class CharCoverage:
    """How much of a text collection's (normalised) characters the vocabulary represents without [UNK]."""

    distinct: float  # share of distinct characters covered
    occurrences: float  # share of character occurrences covered
    n_distinct: int
    missing: list[str]  # distinct characters that become [UNK], most frequent first


def _normalise(tokenizer: Any, text: str) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    norm = backend.normalizer if backend is not None else None
    return norm.normalize_str(text) if norm is not None else text


def char_coverage(tokenizer: Any, texts: Iterable[str], chunk: int = 4096) -> CharCoverage:
    """Coverage of the non-space characters of ``texts`` after the tokenizer's own normalisation.

    A character counts as covered when tokenising it alone gives no [UNK]; characters the normaliser
    drops (control characters) are not counted.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(c for c in _normalise(tokenizer, text) if not c.isspace())
    chars = sorted(counts)
    unk = tokenizer.unk_token_id
    missing: list[str] = []
    counted: list[str] = []
    for start in range(0, len(chars), chunk):
        part = chars[start : start + chunk]
        ids = tokenizer(part, add_special_tokens=False)["input_ids"]
        for c, row in zip(part, ids, strict=True):
            if not row:
                continue
            counted.append(c)
            if unk is not None and unk in row:
                missing.append(c)
    total = sum(counts[c] for c in counted)
    miss_occ = sum(counts[c] for c in missing)
    missing.sort(key=lambda c: (-counts[c], c))
    return CharCoverage(
        distinct=1.0 - len(missing) / max(len(counted), 1),
        occurrences=1.0 - miss_occ / max(total, 1),
        n_distinct=len(counted),
        missing=missing,
    )


@dataclass
class VocabExtension:
    """What `extend_vocab` found and did; call `resize(model)` once the model is built."""

    before: CharCoverage
    after: CharCoverage | None
    added: list[str] = field(default_factory=list)
    old_size: int = 0
    new_size: int = 0
    init_noise: float = 1.0
    seed: int = 0
    init: str = "mean_noise"  # "mean_noise" | "pieces" (see `resize`)
    pieces: dict[str, list[int]] = field(default_factory=dict)  # old-vocabulary ids of each added character

    @property
    def extended(self) -> bool:
        """Whether tokens were added."""
        return bool(self.added)

    def message(self) -> str:
        """One line for the console and the run's warnings."""
        cov = (
            f"character coverage of the training text {self.before.distinct:.1%} of {self.before.n_distinct} "
            f"distinct characters ({self.before.occurrences:.1%} of occurrences)"
        )
        if self.extended and self.after is not None:
            shown = "".join(self.added[:12]) + ("..." if len(self.added) > 12 else "")
            return f"vocabulary: {cov}; added {len(self.added)} characters ({shown}) -> {self.after.distinct:.1%}"
        if self.before.missing:
            n = len(self.before.missing)
            return f"vocabulary: {cov}; {n} characters become [UNK] (model.extend_vocab=true adds them)"
        return f"vocabulary: {cov}"

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers for run.json / metrics.json."""
        return {
            "coverage_before": round(self.before.distinct, 6),
            "occurrence_coverage_before": round(self.before.occurrences, 6),
            "coverage_after": round((self.after or self.before).distinct, 6),
            "distinct_characters": self.before.n_distinct,
            "added_tokens": len(self.added),
            "vocab_size": self.new_size or self.old_size,
        }

    def resize(self, model: Any) -> None:
        """Grow the input embeddings to the tokenizer's size and initialise the new rows (``init``).

        ``mean_noise``: mean of the old rows plus noise with ``init_noise`` times their per-dimension standard
        deviation, so new characters start as distinct as ordinary tokens while sitting in the centre of the
        embedding distribution (Hewitt 2021, "Initializing new word embeddings for pretrained LMs").
        ``pieces``: the mean of the rows of the non-[UNK] pieces the old tokenizer split the character into,
        and the plain mean of the old rows for a character it made [UNK] (docs/chinese.md compares the two).
        """
        if not self.extended or not hasattr(model, "resize_token_embeddings"):
            return
        old = model.get_input_embeddings().weight
        if old.shape[0] >= self.new_size:
            return
        n_old = old.shape[0]
        model.resize_token_embeddings(self.new_size, mean_resizing=False)
        weight = model.get_input_embeddings().weight
        with torch.no_grad():
            base = weight[:n_old].float()
            mean, std = base.mean(0), base.std(0)
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(self.new_size - n_old, base.shape[1], generator=gen) * std * self.init_noise
            rows = mean + noise
            if self.init == "pieces":
                for i, c in enumerate(self.added):
                    ids = self.pieces.get(c, [])
                    rows[i] = base[ids].mean(0) if ids else mean
            weight[n_old:] = rows.to(weight.dtype)


def extend_vocab(
    mode: bool | None,
    tokenizer: Any,
    texts: Iterable[str],
    threshold: float = AUTO_THRESHOLD,
    seed: int = 0,
    init_noise: float = 1.0,
    init: str = "mean_noise",
) -> VocabExtension:
    """Measure coverage on ``texts`` and add the missing characters to ``tokenizer`` when ``mode`` says so.

    ``mode``: True always extends, False never, None extends when distinct-character coverage is
    below ``threshold``. Characters are added as normalised tokens, so they match after the tokenizer's
    lower-casing / CJK spacing exactly as the coverage check saw them.
    """
    texts = list(texts)
    before = char_coverage(tokenizer, texts)
    if init not in ("mean_noise", "pieces"):
        raise ValueError(f"unknown new-row initialisation '{init}' (mean_noise or pieces)")
    ext = VocabExtension(before, None, old_size=len(tokenizer), init_noise=init_noise, seed=seed, init=init)
    do = mode if mode is not None else before.distinct < threshold
    if do and before.missing:
        from tokenizers import AddedToken

        # what the old vocabulary made of each character, before the new tokens exist
        unk, chars = tokenizer.unk_token_id, sorted(before.missing)
        old_ids = tokenizer(chars, add_special_tokens=False)["input_ids"]
        ext.pieces = {c: [i for i in ids if i != unk] for c, ids in zip(chars, old_ids, strict=True)}

        tokenizer.add_tokens([AddedToken(c, normalized=True) for c in sorted(before.missing)])
        ext.added = sorted(before.missing)
        ext.new_size = len(tokenizer)
        ext.after = char_coverage(tokenizer, texts)
    log.info(ext.message())
    return ext


def extend_vocab_for(cfg: Any, tokenizer: Any, texts: Iterable[str], echo: bool = True) -> VocabExtension:
    """`extend_vocab` as a finetune config asks (``model.extend_vocab``), printing the coverage line.

    The same for every method: parameter-efficient ones train and save the new rows with their adapter
    (peft's trainable tokens, `growthcurve.models.peft_methods.apply_method`).
    """
    mode = cfg.model.extend_vocab
    ext = extend_vocab(mode, tokenizer, texts, seed=cfg.train.seed, init=cfg.model.new_rows_init)
    if echo:
        from tqdm.auto import tqdm

        tqdm.write(ext.message())
    return ext
