"""Ranking metrics for leave-last-out evaluation (one held-out item per user), as pure functions.

With a single relevant item the ideal DCG is 1, so NDCG@k is 1/log2(rank + 1) inside the top k and 0
outside; ranks are 1-based. Ties are counted against the held-out item (pessimistic), so a model that
scores most items alike (0 for unseen items) cannot gain from the tie order.
"""

from __future__ import annotations

import numpy as np


def ranks_of_targets(scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of ``targets[u]`` in row ``u`` of ``scores``; ``exclude`` (bool, same shape) drops items.

    An excluded target (it cannot be recommended) gets rank ``inf``.
    """
    s = np.asarray(scores, dtype=np.float64)
    if exclude is not None:
        s = np.where(exclude, -np.inf, s)
    rows = np.arange(len(targets))
    target = s[rows, targets]
    greater = (s > target[:, None]).sum(axis=1)
    ties = (s == target[:, None]).sum(axis=1) - 1
    ranks = (1 + greater + ties).astype(np.float64)
    ranks[~np.isfinite(target)] = np.inf
    return ranks


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of users whose held-out item is in their top ``k``."""
    r = _nonempty(ranks)
    return float(np.mean(r <= k))


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean NDCG@k with one relevant item per user: 1/log2(rank + 1) within the top ``k``, else 0."""
    r = _nonempty(ranks)
    gain = np.where(r <= k, 1.0 / np.log2(np.minimum(r, k) + 1.0), 0.0)
    return float(np.mean(gain))


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` best items per row, best first (excluded items never appear)."""
    s = np.asarray(scores, dtype=np.float64)
    if exclude is not None:
        s = np.where(exclude, -np.inf, s)
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def catalogue_coverage(top_lists: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top-k list."""
    if n_items <= 0:
        raise ValueError("coverage needs a non-empty catalogue")
    return float(len(np.unique(np.asarray(top_lists).ravel())) / n_items)


def _nonempty(ranks: np.ndarray) -> np.ndarray:
    r = np.asarray(ranks, dtype=np.float64)
    if not len(r):
        raise ValueError("no users to evaluate: a mean over zero users is undefined")
    return r
