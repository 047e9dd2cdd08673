"""Stratified hold-out splits on label ids, shared by text and image data."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from growthcurve.errors import DataError


def stratified_indices(strata: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, held-out) row indices with ``fraction`` of the rows held out, class proportions kept.

    Classes with fewer than 2 rows stay in the kept part; when there are too few rows to stratify (fewer
    held-out rows than classes), the hold-out is a seeded random draw instead.
    """
    n = len(strata)
    idx = np.arange(n)
    counts = np.bincount(strata)
    rare = counts[strata] < 2
    keep, pool = idx[rare], idx[~rare]
    n_held = max(1, round(fraction * n))
    n_classes = len(np.unique(strata[pool]))
    if len(pool) < 2 or n_held < n_classes:
        perm = np.random.default_rng(seed).permutation(pool)
        held, kept = perm[:n_held], perm[n_held:]
    else:
        kept, held = train_test_split(pool, test_size=n_held, random_state=seed, stratify=strata[pool])
    kept = np.sort(np.concatenate([kept, keep]))
    if len(kept) == 0 or len(held) == 0:
        raise DataError(f"only {n} usable rows: too few to hold out a dev split; give a dev file")
    return kept, np.sort(held)
