"""How the review queue picks and orders items: uncertainty scores, near-duplicate keys and priority keys.

Why not small-text or modAL: both choose the top-n items of a classifier object they call (``predict_proba``)
and return indices, deterministically. The queue works on the probabilities the served model already stored,
and it needs a *randomised* order whose inclusion probabilities are known at every stopping point, so that
every label can also enter an unbiased estimate of production accuracy (``review/estimate.py``). That order is
priority sampling (Duffield, Lund & Thorup 2007: key = U / weight, smallest first); the scores are the margin
or the entropy of the served probabilities, a few lines of numpy each.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

STRATEGIES = ("uncertainty", "disagreement", "handoff", "random")
MEASURES = ("margin", "entropy")

_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The form two near-duplicate texts share: NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    t = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", t)).strip()


def dedupe_key(text: str) -> str:
    """A short stable key of :func:`normalise` (what the queue stores to collapse a text asked twice)."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:32]


def uncertainty(probs: Sequence[Sequence[float]], measure: str = "margin") -> np.ndarray:
    """One score in [0, 1] per row of (possibly top-k only) probabilities; higher = less sure.

    ``margin``: 1 - (p1 - p2); ``entropy``: the entropy of the row (the mass the row does not list counts as
    one more outcome) divided by log(number of outcomes). A row with one probability has margin 1 - p1 (the
    second label may hold all the rest: 1 - (p1 - (1 - p1))). Empty rows score 1 (nothing known: as unsure as it gets).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    out = np.ones(len(probs), dtype=np.float64)
    for i, row in enumerate(probs):
        p = np.sort(np.clip(np.asarray(row, dtype=np.float64), 0.0, 1.0))[::-1]
        if p.size == 0:
            continue
        rest = max(0.0, 1.0 - float(p.sum()))
        if measure == "margin":
            second = p[1] if p.size > 1 else rest
            out[i] = 1.0 - (p[0] - second)
        else:
            q = np.append(p, rest) if rest > 1e-9 else p
            q = q[q > 0]
            k = max(len(q), 2)
            out[i] = float(-(q * np.log(q)).sum() / np.log(k))
    return np.clip(out, 0.0, 1.0)


def rank_percentile(scores: np.ndarray) -> np.ndarray:
    """Each score's percentile rank in (0, 1] (ties share the mean rank): scale-free, so one sharpness suits
    a 2-label and a 77-label model alike."""
    from scipy.stats import rankdata

    if len(scores) == 0:
        return np.zeros(0)
    return rankdata(scores, method="average") / len(scores)


def stream_weights(
    strategy: str,
    n: int,
    *,
    multiplicity: np.ndarray,
    uncertainty_scores: np.ndarray | None = None,
    disagree: np.ndarray | None = None,
    handoff: np.ndarray | None = None,
    floor: float = 0.03,
    sharpness: float = 8.0,
) -> np.ndarray:
    """Sampling weights of one stream over ``n`` items (all > 0, so every item can be drawn and weighted back).

    ``random``: the item's request count (a uniform sample of requests, duplicates counted); ``uncertainty``:
    floor + percentile^sharpness; ``disagreement`` / ``handoff``: floor + 1 for flagged items, floor otherwise.
    """
    if strategy == "random":
        return np.asarray(multiplicity, dtype=np.float64).copy()
    if strategy == "uncertainty":
        if uncertainty_scores is None:
            raise ValueError("uncertainty weights need the scores")
        return floor + rank_percentile(np.asarray(uncertainty_scores, dtype=np.float64)) ** sharpness
    flags = disagree if strategy == "disagreement" else handoff if strategy == "handoff" else None
    if flags is None:
        raise ValueError(f"unknown strategy {strategy!r} (or its flags are missing)")
    return floor + np.asarray(flags, dtype=np.float64)


def priority_keys(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Priority-sampling keys U / w (U uniform in (0, 1]); reviewing items in ascending key order and stopping
    anywhere leaves a sample whose inclusion probabilities are min(1, w * tau), tau the first key not taken."""
    w = np.asarray(weights, dtype=np.float64)
    if (w <= 0).any() or not np.isfinite(w).all():
        raise ValueError("priority weights must be finite and > 0")
    u = 1.0 - rng.random(len(w))  # (0, 1]: a key of exactly 0 would put an item first whatever its weight
    return u / w


__all__ = [
    "MEASURES",
    "STRATEGIES",
    "dedupe_key",
    "normalise",
    "priority_keys",
    "rank_percentile",
    "stream_weights",
    "uncertainty",
]
