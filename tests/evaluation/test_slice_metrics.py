"""Slice metrics: point estimates per slice, intervals against an independent seeded bootstrap, the gap flag,
small slices reported (not dropped), and one value refused."""

from __future__ import annotations

import numpy as np
import pytest

from growthcurve.errors import DataError
from growthcurve.evaluation.slices import slice_metrics


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice 'en' (300 rows, ~90% right), 'zh' (200 rows, ~60% right), 'fr' (12 rows)."""
    rng = np.random.default_rng(seed)
    groups = np.array(["en"] * 300 + ["zh"] * 200 + ["fr"] * 12)
    y = rng.integers(0, 3, len(groups))
    right = rng.random(len(groups)) < np.where(groups == "en", 0.9, 0.6)
    pred = np.where(right, y, (y + 1) % 3)
    return y, pred, groups


def _numpy_bootstrap(y: np.ndarray, p: np.ndarray, n: int, seed: int) -> tuple[float, float]:
    """An independent percentile bootstrap of accuracy (numpy only)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n, len(y)))
    stats = (y[idx] == p[idx]).mean(axis=1)
    return float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))


def test_slices_against_a_seeded_bootstrap() -> None:
    y, p, g = _data()
    res = slice_metrics(y, p, g, "language", min_rows=30, n_boot=4000, seed=3)
    by = {r["value"]: r for r in res["slices"]}
    assert [r["value"] for r in res["slices"]] == ["en", "zh", "fr"]  # largest first
    for v in ("en", "zh"):
        m = g == v
        assert by[v]["rows"] == int(m.sum())
        assert by[v]["accuracy"] == pytest.approx(float((y[m] == p[m]).mean()))
        lo, hi = _numpy_bootstrap(y[m], p[m], 4000, 11)
        assert by[v]["accuracy_ci"][0] == pytest.approx(lo, abs=0.012)
        assert by[v]["accuracy_ci"][1] == pytest.approx(hi, abs=0.012)
        assert by[v]["macro_f1_ci"][0] <= by[v]["macro_f1"] <= by[v]["macro_f1_ci"][1]
    # the small slice is reported with its point estimate, no interval, and kept out of the gap
    assert "accuracy_ci" not in by["fr"] and "fewer than 30" in by["fr"]["note"] and res["too_small"] == ["fr"]
    gap = res["gaps"]["accuracy"]
    assert (gap["best"], gap["worst"]) == ("en", "zh")
    assert gap["gap"] == pytest.approx(by["en"]["accuracy"] - by["zh"]["accuracy"])
    assert gap["ci"][0] > 0 and gap["flagged"]  # a 30-point gap on hundreds of rows excludes 0
    # the same seed gives the same intervals
    again = slice_metrics(y, p, g, "language", min_rows=30, n_boot=4000, seed=3)
    assert again["slices"] == res["slices"] and again["gaps"] == res["gaps"]


def test_no_real_gap_is_not_flagged() -> None:
    rng = np.random.default_rng(1)
    g = np.array(["a"] * 150 + ["b"] * 150)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.8, y, 1 - y)  # the same 80% everywhere
    res = slice_metrics(y, p, g, "channel", n_boot=500)
    assert not res["gaps"]["accuracy"]["flagged"] and res["gaps"]["accuracy"]["ci"][0] <= 0


def test_one_value_is_refused() -> None:
    with pytest.raises(DataError, match="slices need two or more values"):
        slice_metrics(np.zeros(5), np.zeros(5), ["x"] * 5, "segment")


def test_vectorised_macro_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    from growthcurve.evaluation.slices import _macro_f1

    rng = np.random.default_rng(2)
    ys, ps = rng.integers(0, 5, (20, 40)), rng.integers(0, 6, (20, 40))
    ys[0] = 2  # one class only in the gold labels of a resample
    got = _macro_f1(ys, ps)
    for i in range(20):
        assert got[i] == pytest.approx(f1_score(ys[i], ps[i], average="macro", zero_division=0))
