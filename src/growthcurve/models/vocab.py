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

import numpy as np
import torch

log = logging.getLogger(__name__)

AUTO_THRESHOLD = 0.9  # model.extend_vocab=null extends when distinct-character coverage is below this
INITS = ("mean_noise", "pieces", "cooc")
COOC_SHARE = 0.75  # init="cooc": share of a new row's variance from its distributional vector (rest: noise)
COOC_WINDOW = 2  # characters either side that count as context
COOC_DIM = 64


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


def cooc_vectors(texts: list[str], chars: list[str], window: int = COOC_WINDOW, dim: int = COOC_DIM, seed: int = 0):
    """One distributional vector per character of ``chars``: truncated SVD of its positive PMI with the
    characters within ``window`` positions in ``texts`` (Levy & Goldberg 2014; context counts smoothed to
    the power 0.75), weighted by the square root of the singular values and scaled to unit variance on
    average over the columns. A character never seen gets a zero vector.

    Hand-written counting because no library in our stack builds a character co-occurrence matrix; the
    matrix algebra is scipy's and the SVD scikit-learn's.
    """
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD

    row_of = {c: i for i, c in enumerate(chars)}
    ctx_of: dict[str, int] = {}
    # every text's characters in one array of context ids, texts separated by `window` -1s (no pair crosses)
    flat: list[int] = []
    for text in texts:
        flat.extend(ctx_of.setdefault(c, len(ctx_of)) for c in text if not c.isspace())
        flat.extend([-1] * window)
    ids = np.asarray(flat, dtype=np.int64)
    inv = {i: c for c, i in ctx_of.items()}
    row_ids = np.asarray([row_of.get(inv.get(int(i), ""), -1) for i in range(len(ctx_of))] + [-1], dtype=np.int64)
    rows_of_pos = row_ids[ids]  # -1 indexes the trailing -1: separators and unknown characters are no row
    rows_parts, cols_parts = [], []
    for off in range(1, window + 1):
        for a, b in ((rows_of_pos[:-off], ids[off:]), (rows_of_pos[off:], ids[:-off])):
            ok = (a >= 0) & (b >= 0)
            rows_parts.append(a[ok])
            cols_parts.append(b[ok])
    rows_i = np.concatenate(rows_parts) if rows_parts else np.zeros(0, dtype=np.int64)
    cols_i = np.concatenate(cols_parts) if cols_parts else np.zeros(0, dtype=np.int64)
    out = np.zeros((len(chars), min(dim, max(1, len(chars) - 1))), dtype=np.float32)
    if not len(rows_i) or len(chars) < 3:
        return out
    m = sp.coo_matrix(
        (np.ones(len(rows_i), dtype=np.float64), (rows_i, cols_i)), shape=(len(chars), len(ctx_of))
    ).tocsr()
    m.sum_duplicates()
    total = m.sum()
    row_p = np.asarray(m.sum(1)).ravel() / total
    ctx_w = np.asarray(m.sum(0)).ravel() ** 0.75
    ctx_p = ctx_w / ctx_w.sum()
    coo = m.tocoo()
    pmi = np.log(coo.data / total / (row_p[coo.row] * ctx_p[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
    k = min(out.shape[1], min(ppmi.shape) - 1)
    if k < 1 or ppmi.nnz == 0:
        return out
    svd = TruncatedSVD(n_components=k, random_state=seed)
    z = svd.fit_transform(ppmi) / np.sqrt(np.maximum(svd.singular_values_, 1e-12))  # U * sqrt(S)
    # one scale for all columns (not per column, which would blow weak, noisy directions up to full size)
    z = (z - z.mean(0)) / max(float(np.sqrt(z.var(0).mean())), 1e-8)
    seen = np.asarray(m.sum(1)).ravel() > 0
    out[:, :k] = np.where(seen[:, None], z, 0.0)
    return out


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
    init: str = "mean_noise"  # "mean_noise" | "pieces" | "cooc" (see `resize`)
    pieces: dict[str, list[int]] = field(default_factory=dict)  # old-vocabulary ids of each added character
    cooc: np.ndarray | None = None  # init="cooc": one distributional vector per added character (`cooc_vectors`)

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
            **({"new_rows_init": self.init} if self.added else {}),
        }

    def resize(self, model: Any) -> None:
        """Grow the input embeddings to the tokenizer's size and initialise the new rows (``init``).

        ``mean_noise``: mean of the old rows plus noise with ``init_noise`` times their per-dimension standard
        deviation, so new characters start as distinct as ordinary tokens while sitting in the centre of the
        embedding distribution (Hewitt 2021, "Initializing new word embeddings for pretrained LMs").
        ``pieces``: the mean of the rows of the non-[UNK] pieces the old tokenizer split the character into,
        and the plain mean of the old rows for a character it made [UNK] (docs/chinese.md compares them).
        ``cooc``: mean plus the character's distributional vector (`cooc_vectors`) mapped into the embedding
        space by a seeded random orthogonal projection and scaled to the old rows' spread, mixed with a
        quarter of the noise: characters used alike start alike, so what the classifier learns for a
        frequent character carries over to its rare neighbours.
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
            unit = torch.randn(self.new_size - n_old, base.shape[1], generator=gen)
            if self.init == "cooc" and self.cooc is not None:
                z = torch.from_numpy(self.cooc).float()  # (added, k), unit variance per column on average
                k, d = z.shape[1], base.shape[1]
                q, _ = torch.linalg.qr(torch.randn(d, k, generator=gen))  # (d, k) orthonormal columns
                mapped = z @ q.T * (d / k) ** 0.5  # unit variance per output dimension on average
                unit = COOC_SHARE**0.5 * mapped + (1 - COOC_SHARE) ** 0.5 * unit
            rows = mean + unit * std * self.init_noise
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
    init: str = "cooc",
) -> VocabExtension:
    """Measure coverage on ``texts`` and add the missing characters to ``tokenizer`` when ``mode`` says so.

    ``mode``: True always extends, False never, None extends when distinct-character coverage is
    below ``threshold``. Characters are added as normalised tokens, so they match after the tokenizer's
    lower-casing / CJK spacing exactly as the coverage check saw them.
    """
    texts = list(texts)
    before = char_coverage(tokenizer, texts)
    if init not in INITS:
        raise ValueError(f"unknown new-row initialisation '{init}' ({', '.join(INITS)})")
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
        if init == "cooc":
            ext.cooc = cooc_vectors([_normalise(tokenizer, t) for t in texts], ext.added, seed=seed)
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
