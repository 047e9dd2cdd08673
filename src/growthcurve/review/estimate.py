"""How good the served model really is, from reviewers' labels: a Wilson interval on the random stream, and an
importance-weighted (Hájek) estimate from every reviewed item that corrects for the non-random strategies.

Each stream of the queue is a priority sample (``sampling.priority_keys``): its items are reviewed in ascending
key order, and the answered prefix of a stream, cut at its first unanswered item, is a sample in which item i
was included with probability min(1, w_i * tau) (tau = the first key not taken; Duffield, Lund & Thorup 2007).
Streams draw their keys independently, so an item is in the union of the prefixes with probability
1 - prod_s (1 - pi_is). The accuracy of one model version is a ratio over its requests,
R = sum m_i y_i / sum m_i (m_i: the version's requests of item i, y_i: the share of them served right), and
its Hájek estimate weights each reviewed item by m_i / pi_i. The interval is Wilson's at the design's
effective sample size (R(1-R) / Var), the usual way to give a weighted proportion an interval that stays
inside [0, 1] and behaves at small n; statsmodels computes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A proportion with its (1 - alpha) interval and what it rests on."""

    estimate: float
    low: float
    high: float
    n: int  # reviewed items it uses
    n_eff: float  # effective sample size (n for a simple random sample)
    method: str

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval (inclusive)."""
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "n_eff": round(self.n_eff, 2),
            "method": self.method,
        }


def wilson(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson's score interval for ``successes`` out of ``n`` (statsmodels; fractional counts allowed)."""
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def random_stream_interval(y: Sequence[float], alpha: float = 0.05) -> Interval | None:
    """The accuracy on a uniform sample of requests (the random stream): Wilson on the correct share."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.size == 0:
        return None
    k = float(arr.sum())
    lo, hi = wilson(k, arr.size, alpha)
    return Interval(k / arr.size, lo, hi, int(arr.size), float(arr.size), "wilson")


def prefix_inclusion(
    keys: np.ndarray, weights: np.ndarray, answered: np.ndarray, next_key: float = np.inf
) -> tuple[np.ndarray, np.ndarray]:
    """The answered prefix of one stream and each of its items' inclusion probability.

    ``keys``/``weights``/``answered``: the stream's items; ``next_key``: the smallest key the queue did not list
    (inf when it listed the whole pool). Returns (positions into the inputs, probabilities).
    """
    keys = np.asarray(keys, dtype=np.float64)
    order = np.argsort(keys, kind="stable")
    ans = np.asarray(answered, dtype=bool)[order]
    first_open = int(np.argmin(ans)) if not ans.all() else len(ans)
    tau = float(keys[order[first_open]]) if first_open < len(ans) else float(next_key)
    taken = order[:first_open]
    pi = np.minimum(1.0, np.asarray(weights, dtype=np.float64)[taken] * tau)
    return taken, pi


def weighted_interval(
    y: Sequence[float] | np.ndarray,
    m: Sequence[float] | np.ndarray,
    pi: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
    method: str = "hajek-wilson",
) -> Interval | None:
    """Hájek estimate of sum m y / sum m from a sample with inclusion probabilities ``pi``, with Wilson's
    interval at the effective sample size R(1-R)/Var (Kish's n_eff when the variance estimate is 0)."""
    y_, m_, p_ = (np.asarray(a, dtype=np.float64) for a in (y, m, pi))
    keep = m_ > 0
    y_, m_, p_ = y_[keep], m_[keep], p_[keep]
    if y_.size == 0:
        return None
    if (p_ <= 0).any() or (p_ > 1).any():
        raise ValueError("inclusion probabilities must be in (0, 1]")
    w = m_ / p_
    total = w.sum()
    r = float((w * y_).sum() / total)
    # linearised variance of the ratio under Poisson-like sampling (priority sampling's conditional design)
    var = float(((1.0 - p_) * (w * (y_ - r)) ** 2).sum() / total**2)
    kish = float(w.sum() ** 2 / (w**2).sum())
    if (p_ >= 1.0).all():  # every item of the population was reviewed: the ratio is known exactly
        return Interval(r, r, r, int(y_.size), float("inf"), method)
    n_eff = r * (1.0 - r) / var if var > 0 and 0.0 < r < 1.0 else kish
    lo, hi = wilson(r * n_eff, n_eff, alpha)
    return Interval(r, lo, hi, int(y_.size), n_eff, method)


def union_inclusion(per_stream: Sequence[np.ndarray]) -> np.ndarray:
    """Probability of being in at least one of independent streams' prefixes: 1 - prod (1 - pi_s)."""
    miss = np.ones_like(np.asarray(per_stream[0], dtype=np.float64))
    for p in per_stream:
        miss *= 1.0 - np.asarray(p, dtype=np.float64)
    return 1.0 - miss


__all__ = [
    "Interval",
    "prefix_inclusion",
    "random_stream_interval",
    "union_inclusion",
    "weighted_interval",
    "wilson",
]
