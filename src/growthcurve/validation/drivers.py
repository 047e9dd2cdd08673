"""Satisfaction drivers: which survey items (answer quality, speed, tone, ...) move the overall score.

The overall score is fitted on the item scores (θᵀx with θ fitted): ordinary least squares on z-scored
data gives standardised coefficients (statsmodels, with a seeded percentile bootstrap for the CIs), an
ordinal logit (statsmodels ``OrderedModel``) when the overall score is a 1–5 / 0–10 scale, and relative
importance by dominance analysis. Dominance analysis (Budescu 1993; Azen & Budescu 2003) has no
maintained Python package that works with this stack, so the few lines are written out here: general
dominance is the average incremental R² of an item over all subsets of the other items, averaged over
subset sizes (equal to the Shapley value of R²); every R² comes from the correlation matrix, so all 2^p
subsets are cheap up to 12 items, and sampled permutations (seeded) estimate it beyond.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np
import pandas as pd

from growthcurve.errors import DataError
from growthcurve.validation.analysis import clean_json_dict

MAX_EXACT_ITEMS = 12  # 2^12 = 4,096 subsets: still well under a second from the correlation matrix
COLLINEAR_TOL = 1e-8  # |r| above 1 - this is a perfectly collinear pair (rounding of identical columns)


# ---------------------------------------------------------------------------------------------- pure functions


def zscore(a: np.ndarray) -> np.ndarray:
    """Centre and scale each column to unit sample standard deviation (ddof=1)."""
    a = np.asarray(a, dtype=float)
    return np.asarray((a - a.mean(axis=0)) / a.std(axis=0, ddof=1))


def standardized_ols(X: np.ndarray, y: np.ndarray) -> Any:
    """statsmodels OLS of z-scored ``y`` on z-scored ``X`` (with a constant): the fit's params[1:] are the
    standardised coefficients β_j·sd(x_j)/sd(y)."""
    import statsmodels.api as sm

    return sm.OLS(zscore(y), sm.add_constant(zscore(X), has_constant="add")).fit()


def bootstrap_standardized_coefs(
    X: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, chunk: int = 250
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap CI (lo, hi per item) of the standardised coefficients, resampling answers.

    A resample is a vector of counts (how often each answer was drawn), so its sufficient statistics (Σx,
    Σxxᵀ, Σxy, Σy, Σy²) are one matrix product of the counts with the per-answer products, and each
    resample's normal equations are solved with numpy. Refitting statsmodels OLS per resample gives the
    same numbers ~100x slower, which would make a 1,000-resample CI of a big survey wait for seconds.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n, p = X.shape
    # Centre first: the sums of squares then stay well conditioned whatever the items' offsets.
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    iu = np.triu_indices(p)
    per_answer = np.column_stack([Xc, yc, Xc[:, iu[0]] * Xc[:, iu[1]], Xc * yc[:, None], yc * yc])
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, p))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        dtype = np.int32 if b * n < 2**31 else np.int64  # int32 draws are ~2x faster
        idx = rng.integers(0, n, size=(b, n), dtype=dtype) + n * np.arange(b, dtype=dtype)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        sums = counts @ per_answer / n  # (b, k): every resample's means of the per-answer products
        mx, my = sums[:, :p], sums[:, p]
        m_xx = np.zeros((b, p, p))
        m_xx[:, iu[0], iu[1]] = sums[:, p + 1 : p + 1 + len(iu[0])]
        m_xx[:, iu[1], iu[0]] = m_xx[:, iu[0], iu[1]]
        m_xy = sums[:, p + 1 + len(iu[0]) : -1]
        cov_xx = m_xx - mx[:, :, None] * mx[:, None, :]
        cov_xy = m_xy - mx * my[:, None]
        var_y = sums[:, -1] - my * my
        beta = np.linalg.solve(cov_xx, cov_xy[..., None])[..., 0]
        sx = np.sqrt(np.diagonal(cov_xx, axis1=1, axis2=2))
        draws[start : start + b] = beta * sx / np.sqrt(var_y)[:, None]
    return np.quantile(draws, alpha / 2, axis=0), np.quantile(draws, 1 - alpha / 2, axis=0)


def subset_r2(corr: np.ndarray, subset: Sequence[int]) -> float:
    """R² of the overall score on the items in ``subset``, from the correlation matrix (overall = last)."""
    if not subset:
        return 0.0
    s = list(subset)
    r = corr[s, -1]
    return float(r @ np.linalg.solve(corr[np.ix_(s, s)], r))


def dominance_analysis(
    X: np.ndarray, y: np.ndarray, max_exact: int = MAX_EXACT_ITEMS, n_permutations: int = 2000, seed: int = 0
) -> tuple[np.ndarray, str]:
    """General dominance of each item (sums to the full R²) and how it was computed ("exact ..."/"sampled ...").

    Exact: for every size k, the mean of R²(S ∪ {j}) − R²(S) over subsets S of size k without j, then the
    mean over k. Beyond ``max_exact`` items: the mean incremental R² over ``n_permutations`` random orderings.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    p = X.shape[1]
    corr = np.corrcoef(np.column_stack([X, y]), rowvar=False)
    cache: dict[frozenset[int], float] = {}

    def r2(s: frozenset[int]) -> float:
        if s not in cache:
            cache[s] = subset_r2(corr, sorted(s))
        return cache[s]

    gd = np.zeros(p)
    if p <= max_exact:
        for j in range(p):
            others = [i for i in range(p) if i != j]
            for k in range(p):
                incs = [r2(frozenset(s) | {j}) - r2(frozenset(s)) for s in combinations(others, k)]
                gd[j] += float(np.mean(incs)) / p
        return gd, f"exact over all {2**p} subsets"
    rng = np.random.default_rng(seed)
    for _ in range(n_permutations):
        seen: frozenset[int] = frozenset()
        for j in rng.permutation(p):
            nxt = seen | {int(j)}
            gd[j] += r2(nxt) - r2(seen)
            seen = nxt
    return gd / n_permutations, f"sampled over {n_permutations} random orderings (seed {seed})"


def vif(X: np.ndarray) -> np.ndarray:
    """Variance inflation factor of each item (statsmodels, with a constant in the design)."""
    import statsmodels.api as sm
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    design = sm.add_constant(np.asarray(X, dtype=float), has_constant="add")
    return np.array([variance_inflation_factor(design, j + 1) for j in range(design.shape[1] - 1)])


def rating_scale(y: np.ndarray) -> tuple[int, int] | None:
    """The rating scale (1–5 or 0–10) the overall score lies on, or None when it is not integer on one."""
    y = np.asarray(y, dtype=float)
    if not np.all(np.equal(np.mod(y, 1), 0)) or len(np.unique(y)) < 3:
        return None
    lo, hi = float(y.min()), float(y.max())
    if lo >= 1 and hi <= 5:
        return (1, 5)
    if lo >= 0 and hi <= 10:
        return (0, 10)
    return None


def ordinal_fit(X: np.ndarray, y: np.ndarray) -> Any:
    """statsmodels ``OrderedModel`` (logit) of the overall score's levels on z-scored items."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    levels = pd.Categorical(np.asarray(y, dtype=float), ordered=True)
    return OrderedModel(levels, zscore(X), distr="logit").fit(method="bfgs", disp=False, maxiter=2000)


def check_design(X: np.ndarray, items: Sequence[str], where: str = "") -> list[int]:
    """Indices of the items to keep; zero-variance items are dropped (the caller warns). A perfectly collinear
    pair, or too few answers for the items kept, is a DataError naming them."""
    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    keep = [j for j in range(X.shape[1]) if np.ptp(X[:, j]) > 0]
    if not keep:
        raise DataError(f"every item has the same answer everywhere{where}: nothing can drive the overall score")
    if n < len(keep) + 2:
        raise DataError(
            f"{n} answers{where} for {len(keep)} items: at least items + 2 = {len(keep) + 2} are needed to fit"
        )
    corr = np.corrcoef(X[:, keep], rowvar=False).reshape(len(keep), len(keep))
    for a, b in combinations(range(len(keep)), 2):
        if abs(corr[a, b]) > 1 - COLLINEAR_TOL:
            i, j = items[keep[a]], items[keep[b]]
            raise DataError(
                f"items '{i}' and '{j}' are perfectly collinear{where} (r = {corr[a, b]:+.4f}): drop one of them"
            )
    if np.linalg.matrix_rank(zscore(X[:, keep])) < len(keep):
        raise DataError(
            f"items {[items[k] for k in keep]} are linearly dependent{where} (one is a sum of others): drop one"
        )
    return keep


# ---------------------------------------------------------------------------------------------- results


@dataclass
class DriverItem:
    """One item's part in the overall score: effect (standardised and ordinal), importance, performance."""

    item: str
    mean: float
    sd: float
    std_coef: float
    ci: tuple[float, float]
    p_value: float
    vif: float
    dominance: float
    dominance_share: float
    ordinal_coef: float | None = None
    ordinal_p_value: float | None = None
    priority: bool = False


@dataclass
class DriversFit:
    """The drivers of one group of answers (all answers, or one variant)."""

    group: str
    n: int
    r2: float
    adj_r2: float
    items: list[DriverItem]
    dominance_method: str
    ordinal: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class DriversResult:
    """Every fitted group, with the column names and the settings that make it reproducible."""

    overall: str
    variant_column: str | None
    n_boot: int
    alpha: float
    seed: int
    fits: list[DriversFit]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return clean_json_dict(asdict(self))


# ---------------------------------------------------------------------------------------------- estimator


class DriverAnalysis:
    """Key-driver analysis of an overall score on item scores (sklearn shape: ``fit(X, y, groups)``)."""

    def __init__(
        self,
        n_boot: int = 1000,
        alpha: float = 0.05,
        seed: int = 0,
        ordinal: Literal["auto", "never"] = "auto",
        max_exact: int = MAX_EXACT_ITEMS,
        n_permutations: int = 2000,
    ) -> None:
        self.n_boot = n_boot
        self.alpha = alpha
        self.seed = seed
        self.ordinal = ordinal
        self.max_exact = max_exact
        self.n_permutations = n_permutations

    def fit(self, X: pd.DataFrame, y: pd.Series, groups: pd.Series | None = None) -> DriverAnalysis:
        """Fit all answers and, when ``groups`` (variants) is given, each group on its own."""
        X = X.astype(float)
        y = pd.Series(np.asarray(y, dtype=float), index=X.index, name=getattr(y, "name", "overall"))
        fits = [self._fit_one(X, y, "all")]
        if groups is not None:
            for g in sorted(pd.unique(groups.astype(str))):
                mask = (groups.astype(str) == g).to_numpy()
                fits.append(self._fit_one(X[mask], y[mask], str(g)))
        warnings = [f"{f.group}: {w}" for f in fits for w in f.warnings]
        self.result_ = DriversResult(
            str(y.name),
            None if groups is None else str(groups.name),
            self.n_boot,
            self.alpha,
            self.seed,
            fits,
            warnings,
        )
        return self

    def _fit_one(self, X: pd.DataFrame, y: pd.Series, group: str) -> DriversFit:
        where = "" if group == "all" else f" in variant '{group}'"
        names = list(X.columns)
        Xa, ya = X.to_numpy(dtype=float), y.to_numpy(dtype=float)
        if len(ya) < 3:
            raise DataError(f"{len(ya)} answers{where}: at least items + 2 = {X.shape[1] + 2} are needed to fit")
        if np.ptp(ya) == 0:
            raise DataError(f"the overall score is the same in every answer{where}: there is nothing to explain")
        keep = check_design(Xa, names, where)
        warnings = [
            f"item '{names[j]}' has the same answer everywhere{where}: dropped from the fit"
            for j in range(len(names))
            if j not in keep
        ]
        names, Xa = [names[j] for j in keep], Xa[:, keep]
        ols = standardized_ols(Xa, ya)
        lo, hi = bootstrap_standardized_coefs(Xa, ya, self.n_boot, self.seed, self.alpha)
        gd, method = dominance_analysis(Xa, ya, self.max_exact, self.n_permutations, self.seed)
        vifs = vif(Xa)
        share = gd / gd.sum() if gd.sum() > 0 else np.full(len(gd), math.nan)
        means, sds = Xa.mean(axis=0), Xa.std(axis=0, ddof=1)
        items = [
            DriverItem(
                n,
                float(means[j]),
                float(sds[j]),
                float(ols.params[j + 1]),
                (float(lo[j]), float(hi[j])),
                float(ols.pvalues[j + 1]),
                float(vifs[j]),
                float(gd[j]),
                float(share[j]),
            )
            for j, n in enumerate(names)
        ]
        # Priorities: above-average importance and below-average performance (the matrix's top-left quadrant).
        mean_share, mean_perf = float(np.mean(share)), float(np.mean(means))
        for it in items:
            it.priority = it.dominance_share > mean_share and it.mean < mean_perf
        for it in items:
            if it.vif >= 10:
                warnings.append(f"item '{it.item}' has VIF {it.vif:.1f}{where}: its coefficient is unstable")
        ordinal = None
        scale = rating_scale(ya)
        if self.ordinal == "auto" and scale is not None:
            ordinal = self._ordinal(Xa, ya, items, scale, warnings, where)
        return DriversFit(
            group, len(ya), float(ols.rsquared), float(ols.rsquared_adj), items, method, ordinal, warnings
        )

    def _ordinal(
        self,
        X: np.ndarray,
        y: np.ndarray,
        items: list[DriverItem],
        scale: tuple[int, int],
        warnings: list[str],
        where: str,
    ) -> dict[str, Any] | None:
        import warnings as pywarnings

        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always")
            res = ordinal_fit(X, y)
        converged = bool(res.mle_retvals.get("converged", True))
        if not converged or any("converge" in str(w.message).lower() for w in caught):
            warnings.append(f"the ordinal model did not converge{where}: its coefficients are left out")
            return None
        p = len(items)
        for j, it in enumerate(items):
            it.ordinal_coef = float(res.params[j])
            it.ordinal_p_value = float(res.pvalues[j])
        return {
            "model": "ordered logit (statsmodels OrderedModel) on z-scored items",
            "scale": list(scale),
            "levels": sorted(float(v) for v in np.unique(y)),
            "thresholds": [float(t) for t in res.model.transform_threshold_params(res.params)[1:-1]],
            "llf": float(res.llf),
            "aic": float(res.aic),
            "coefs": {it.item: float(res.params[j]) for j, it in enumerate(items[:p])},
        }


# ---------------------------------------------------------------------------------------------- input


def numeric_columns(
    df: pd.DataFrame, columns: Sequence[str], locate: Callable[[int], str]
) -> tuple[pd.DataFrame, list[str]]:
    """The ``columns`` as floats; a value that is not a number is a DataError at ``locate(row)``.

    Rows with an empty value are dropped with a warning naming how many and where the first was, rather than
    silently (survey answers often skip an item; a fit needs every value).
    """
    out = pd.DataFrame(index=df.index)
    for col in columns:
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna()
        if bool(bad.any()):
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{locate(pos)}: column '{col}' holds '{raw.iloc[pos]}', not a number: fix or remove it")
        if np.isinf(num.to_numpy(dtype=float, na_value=np.nan)).any():
            pos = int(np.flatnonzero(np.isinf(num.to_numpy(dtype=float, na_value=np.nan)))[0])
            raise DataError(f"{locate(pos)}: column '{col}' holds an infinite value: fix or remove it")
        out[col] = num.astype(float)
    empty = out.isna().any(axis=1).to_numpy()
    warnings: list[str] = []
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        warnings.append(
            f"{int(empty.sum())} answers with an empty overall or item score were left out (first at {locate(first)})"
        )
    return out[~empty], warnings


def plot_priority_matrix(result: DriversResult, path: Any) -> None:
    """Importance (dominance share) against performance (mean item score), one panel per fitted group; the
    quadrant lines sit at the means and the high-importance / low-score items are labelled as priorities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from growthcurve.atomic import atomic_path

    fits = result.fits
    fig, axes = plt.subplots(1, len(fits), figsize=(5.2 * len(fits), 4.4), squeeze=False)
    for ax, f in zip(axes[0], fits, strict=True):
        perf = np.array([it.mean for it in f.items])
        imp = np.array([100 * it.dominance_share for it in f.items])
        ax.axvline(perf.mean(), color="grey", lw=0.8, ls="--")
        ax.axhline(imp.mean(), color="grey", lw=0.8, ls="--")
        colors = ["#c0392b" if it.priority else "#1f5fa8" for it in f.items]
        ax.scatter(perf, imp, c=colors, s=50, zorder=3)
        for it, x, yv in zip(f.items, perf, imp, strict=True):
            label = f"{it.item} (priority)" if it.priority else it.item
            ax.annotate(label, (x, yv), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("performance: mean item score")
        ax.set_ylabel("importance: share of R² (dominance, %)")
        ax.set_title(f"{f.group} (n={f.n}, R²={f.r2:.2f})", fontsize=10)
        ax.text(0.02, 0.97, "priorities", transform=ax.transAxes, va="top", fontsize=8, color="#c0392b")
    fig.suptitle(f"What drives '{result.overall}': improve the red items first", fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
