"""Metrics per slice of the data (language, channel, customer segment) with bootstrap confidence intervals, and
the largest gap between slices, flagged when its interval excludes 0.

The per-slice point estimates are fairlearn's ``MetricFrame``. Its own bootstrap is not used for the
intervals: it resamples the whole set (a small slice changes size between resamples, or vanishes) and its
``difference_ci`` is the interval of max − min over slices, which is ≥ 0 by construction and so can never
say whether a gap excludes 0. Instead each slice is resampled on its own (scipy's ``bootstrap``, percentile
intervals), and the gap between the best and the worst slice is a two-sample bootstrap of their difference.
A slice with fewer than ``min_rows`` rows is reported with its point estimate and no interval, and is left
out of the gap (never silently dropped).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from growthcurve.errors import DataError

__all__ = ["CONFIDENCE", "MIN_SLICE_ROWS", "N_BOOT", "SLICE_METRICS", "slice_metrics"]

MIN_SLICE_ROWS = 30  # fewer rows: the point estimate is shown, no interval, not in the gap
N_BOOT = 1000
CONFIDENCE = 0.95


def _accuracy(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Accuracy along ``axis`` (leading axes: a batch of bootstrap resamples)."""
    return np.mean(y == p, axis=axis)


def _macro_f1(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Macro-F1 along ``axis`` over the labels present in ``y`` or ``p`` (scikit-learn's default labels,
    ``zero_division=0``), for a batch of resamples at once: scikit-learn's ``f1_score`` costs about a
    millisecond of input checks per call, which made a thousand resamples per slice take minutes. A test holds
    it equal to scikit-learn's."""
    y, p = np.moveaxis(np.asarray(y), axis, -1), np.moveaxis(np.asarray(p), axis, -1)
    total = np.zeros(y.shape[:-1])
    present = np.zeros(y.shape[:-1])
    for c in np.union1d(np.unique(y), np.unique(p)):
        yc, pc = y == c, p == c
        tp = np.sum(yc & pc, axis=-1)
        denom = np.sum(yc, axis=-1) + np.sum(pc, axis=-1)  # 2tp + fp + fn
        total += np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)
        present += denom > 0
    return total / np.maximum(present, 1)


SLICE_METRICS: dict[str, Callable[..., Any]] = {"accuracy": _accuracy, "macro_f1": _macro_f1}


def _interval(
    metric: Callable[..., Any],
    samples: list[tuple[np.ndarray, np.ndarray]],
    n_boot: int,
    confidence: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` on one sample, or of metric(first) − metric(second) on two
    samples resampled independently (scipy resamples row indices, so each text keeps its gold and prediction)."""
    from scipy.stats import bootstrap

    def stat(*idx: np.ndarray, axis: int = -1) -> np.ndarray:
        vals = [metric(y[i], p[i], axis=axis) for (y, p), i in zip(samples, idx, strict=True)]
        return vals[0] - vals[1] if len(vals) == 2 else vals[0]

    data = tuple(np.arange(len(y)) for y, _ in samples)
    rows = max(len(d) for d in data)
    with warnings.catch_warnings():  # a slice that is all right (or all wrong) has a degenerate distribution
        warnings.simplefilter("ignore")
        res = bootstrap(
            data,
            stat,
            n_resamples=n_boot,
            batch=max(1, 2_000_000 // max(rows, 1)),  # resamples per vectorised call: bounded memory
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            paired=False,
            rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return lo, hi


def slice_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Sequence[Any],
    column: str = "slice",
    min_rows: int = MIN_SLICE_ROWS,
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy and macro-F1 per value of ``groups`` with bootstrap intervals, and per metric the gap between
    the best and the worst slice of at least ``min_rows`` rows (flagged when its interval excludes 0)."""
    from fairlearn.metrics import MetricFrame, count

    y, p = np.asarray(y_true), np.asarray(y_pred)
    g = np.asarray([str(v) for v in groups], dtype=object)
    if not len(y) == len(p) == len(g):
        raise DataError(f"{len(y)} gold labels, {len(p)} predictions and {len(g)} slice values: they must match")
    values = sorted(set(g.tolist()), key=lambda v: (-int((g == v).sum()), v))
    if len(values) < 2:
        raise DataError(
            f"--slice-by {column}: every row has the value '{values[0] if values else ''}'; slices need two or "
            "more values"
        )
    point = {name: (lambda a, b, fn=fn: float(fn(np.asarray(a), np.asarray(b)))) for name, fn in SLICE_METRICS.items()}
    frame = MetricFrame(metrics={**point, "rows": count}, y_true=y, y_pred=p, sensitive_features=g)
    by = frame.by_group
    rows: list[dict[str, Any]] = []
    for i, v in enumerate(values):
        n = int(by.loc[v, "rows"])
        row: dict[str, Any] = {"value": v, "rows": n}
        mask = g == v
        for name, fn in SLICE_METRICS.items():
            row[name] = float(by.loc[v, name])
            if n >= min_rows:
                row[f"{name}_ci"] = list(_interval(fn, [(y[mask], p[mask])], n_boot, confidence, seed + i))
        if n < min_rows:
            row["note"] = f"fewer than {min_rows} rows: no interval, not compared"
        rows.append(row)
    compared = [r for r in rows if r["rows"] >= min_rows]
    gaps: dict[str, Any] = {}
    for j, (name, fn) in enumerate(SLICE_METRICS.items()):
        if len(compared) < 2:
            break
        best = max(compared, key=lambda r: r[name])
        worst = min(compared, key=lambda r: r[name])
        a, b = g == best["value"], g == worst["value"]
        lo, hi = _interval(fn, [(y[a], p[a]), (y[b], p[b])], n_boot, confidence, seed + 1000 + j)
        gaps[name] = {
            "best": best["value"],
            "worst": worst["value"],
            "gap": best[name] - worst[name],
            "ci": [lo, hi],
            "flagged": bool(lo > 0),
        }
    return {
        "column": column,
        "rows": len(y),
        "overall": {name: float(frame.overall[name]) for name in SLICE_METRICS},
        "slices": rows,
        "gaps": gaps,
        "too_small": [r["value"] for r in rows if r["rows"] < min_rows],
        "min_rows": min_rows,
        "n_boot": n_boot,
        "confidence": confidence,
        "seed": seed,
        "method": "per-slice percentile bootstrap (scipy.stats.bootstrap); point estimates: fairlearn MetricFrame",
    }
