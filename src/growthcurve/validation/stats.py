"""Two-sample statistics on per-variant sufficient statistics (count, sums, squares, cross-products).

Everything here works from :class:`SufficientStats`, never from raw events, so the heavy part (the
aggregation) runs as SQL where the data lives and this module stays O(variants). The formulas are the
textbook ones (Welch t, z, delta method, CUPED, Gaussian posterior on lift); the always-valid confidence
sequence follows Waudby-Smith et al. (2023, "Time-uniform central limit theory", eq. 155/161), as used
by GrowthBook. scipy/statsmodels have no test that takes sufficient statistics of a ratio or CUPED metric
or a confidence sequence, which is why these few lines are written out here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
from scipy import stats as sps

MetricType = Literal["binomial", "mean", "ratio"]


@dataclass(frozen=True)
class SufficientStats:
    """Per-variant sums over units: ``y`` is the metric (numerator), ``x`` the denominator or covariate."""

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float = 0.0
    sum_x2: float = 0.0
    sum_xy: float = 0.0

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @classmethod
    def from_arrays(cls, y: np.ndarray, x: np.ndarray | None = None) -> SufficientStats:
        """The statistics of per-unit values ``y`` (and ``x``): handy in tests and simulations."""
        y = np.asarray(y, dtype=float)
        x = np.zeros_like(y) if x is None else np.asarray(x, dtype=float)
        return cls(
            int(y.size),
            float(y.sum()),
            float((y * y).sum()),
            float(x.sum()),
            float((x * x).sum()),
            float((x * y).sum()),
        )


@dataclass
class ArmEstimate:
    """One variant's estimate of the metric: the mean (or ratio), its per-unit std and standard error."""

    variant: str
    n: int
    mean: float | None = None
    std: float | None = None
    se: float | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def var(self) -> float:
        """Variance of the estimate (se²)."""
        return float(self.se) ** 2  # type: ignore[arg-type]


@dataclass
class FrequentistResult:
    """Fixed-horizon test of treatment vs control: absolute and relative lift, each with its own test.

    ``statistic``/``p_value``/``abs_ci`` test the absolute difference; ``rel_statistic``/``rel_p_value``/
    ``rel_ci`` test the relative lift (delta-method standard error) with the *same* distribution (Welch t
    with the same df, or z), so on either scale the CI excludes 0 exactly when p < alpha.
    """

    test: str
    statistic: float
    df: float | None
    p_value: float
    abs_effect: float
    abs_ci: tuple[float, float]
    rel_effect: float | None
    rel_ci: tuple[float, float] | None
    rel_statistic: float | None = None
    rel_p_value: float | None = None

    def on(self, scale: Literal["relative", "absolute"]) -> tuple[float, tuple[float, float], float]:
        """(effect, CI, p-value) of one test: the relative one or the absolute one, never mixed."""
        if scale == "relative":
            if self.rel_effect is None or self.rel_ci is None or self.rel_p_value is None:
                raise ValueError("relative lift is undefined for this comparison (control mean is 0)")
            return self.rel_effect, self.rel_ci, self.rel_p_value
        return self.abs_effect, self.abs_ci, self.p_value


@dataclass
class SequentialResult:
    """Always-valid confidence sequence (and p-value) for the absolute and relative lift."""

    n_star: float
    p_value: float
    abs_ci: tuple[float, float]
    rel_ci: tuple[float, float] | None


@dataclass
class BayesianResult:
    """Gaussian posterior on the (relative or absolute) lift: chance to win, expected loss, interval."""

    lift: Literal["relative", "absolute"]
    mean: float
    sd: float
    chance_to_win: float
    expected_loss_control: float
    expected_loss_treatment: float
    credible_interval: tuple[float, float]


# ----------------------------------------------------------------------------------------------
# Arm estimates


def _check_stats(s: SufficientStats, variant: str, metric_type: MetricType) -> str | None:
    """An actionable message when the statistics cannot describe real data, else None."""
    values = [getattr(s, f.name) for f in fields(s)]
    if any(not math.isfinite(float(v)) for v in values):
        return f"variant '{variant}' has non-finite sums (NaN/inf in the data): clean the metric column"
    if s.n < 0 or s.sum_y2 < 0 or s.sum_x2 < 0:
        return f"variant '{variant}' has negative counts (n={s.n}): the aggregation input is corrupt"
    if s.n == 0:
        return f"variant '{variant}' is empty (0 units): check the variant names and the date range"
    if s.n < 2:
        return f"variant '{variant}' has n={s.n} < 2 units: no variance can be estimated; collect more data"
    if metric_type == "binomial" and not (0 <= s.sum_y <= s.n):
        return (
            f"variant '{variant}' has {s.sum_y:g} conversions for {s.n} units: a binomial metric needs "
            "0/1 per unit (use type: mean for counts)"
        )
    if metric_type == "ratio" and s.sum_x < 0:
        return (
            f"variant '{variant}': the ratio's denominator sums to {s.sum_x:g} < 0; denominators (sessions, "
            "counts) cannot be negative: fix the data"
        )
    if metric_type == "ratio" and s.sum_x == 0:
        return (
            f"variant '{variant}': the ratio's denominator sums to 0 (all denominators are zero); "
            "pick a denominator every unit has, or use type: mean"
        )
    uses_x = metric_type == "ratio" or s.sum_x2 != 0 or s.sum_xy != 0
    for name, sum2, sum1 in (("y", s.sum_y2, s.sum_y), ("x", s.sum_x2, s.sum_x)):
        if name == "x" and not uses_x:
            continue
        if _impossible(sum2, sum1 * sum1 / s.n):
            return (
                f"variant '{variant}' has impossible sums: Σ{name}² = {sum2:.6g} < (Σ{name})²/n = "
                f"{sum1 * sum1 / s.n:.6g}, which no real data can give; recompute sum_{name}2 as the sum of "
                "the squared per-unit values"
            )
    if uses_x:
        sxx, syy = s.sum_x2 - s.sum_x**2 / s.n, s.sum_y2 - s.sum_y**2 / s.n
        sxy = s.sum_xy - s.sum_x * s.sum_y / s.n
        if _impossible(max(sxx, 0.0) * max(syy, 0.0), sxy * sxy):
            return (
                f"variant '{variant}' has impossible sums: the covariance of x and y exceeds what their "
                "variances allow (Cauchy–Schwarz); recompute sum_xy as the sum of per-unit x·y"
            )
    return None


def _impossible(big: float, small: float) -> bool:
    """True when ``big < small`` by more than float round-off (relative 1e-9): such sums are corrupt."""
    return big < small - 1e-9 * max(abs(big), abs(small), 1e-300)


def _var(sum2: float, sum1: float, n: int) -> float:
    """Sample variance from sums, clamped at 0 against round-off."""
    return max((sum2 - sum1 * sum1 / n) / (n - 1), 0.0)


def _cov(sum_xy: float, sum_x: float, sum_y: float, n: int) -> float:
    return (sum_xy - sum_x * sum_y / n) / (n - 1)


def estimate_arm(
    stats: SufficientStats,
    variant: str,
    metric_type: MetricType,
    theta: float | None = None,
    x_mean_all: float | None = None,
) -> ArmEstimate:
    """The metric's estimate for one arm; ``theta``/``x_mean_all`` switch on the CUPED adjustment."""
    err = _check_stats(stats, variant, metric_type)
    if err:
        return ArmEstimate(variant, int(stats.n), error=err)
    n = int(stats.n)
    warnings: list[str] = []
    if metric_type == "binomial":
        p = stats.sum_y / n
        mean, unit_var = p, p * (1 - p)  # Bernoulli variance, as the z test for proportions uses
        if stats.sum_y in (0, n):
            # 0 (or n) conversions make the plug-in variance p(1 − p) zero: a zero-width CI and a chance to
            # win of exactly 0 or 1, which 0 events in n never justify. GrowthBook's gbstats refuses such a
            # comparison (models/tests.py EffectMoments: ZERO_NEGATIVE_VARIANCE_MESSAGE, default output);
            # here the variance uses the Agresti–Caffo add-one estimate p̃ = (x + 1)/(n + 2), the estimate
            # statsmodels' confint_proportions_2indep(method="agresti-caffo") uses, and the result says so.
            pt = (stats.sum_y + 1) / (n + 2)
            unit_var = pt * (1 - pt)
            warnings.append(
                f"variant '{variant}' has {int(stats.sum_y)} conversions in {n} units: its variance uses the "
                "Agresti–Caffo estimate (x + 1)/(n + 2); collect more data before trusting this comparison"
            )
    else:
        mean, unit_var = stats.sum_y / n, _var(stats.sum_y2, stats.sum_y, n)
    if metric_type == "ratio":
        # delta method for sum(y)/sum(x) over units: Var ≈ (σy² − 2rσxy + r²σx²) / (n μx²)
        mx = stats.sum_x / n
        r = stats.sum_y / stats.sum_x
        vx, cxy = _var(stats.sum_x2, stats.sum_x, n), _cov(stats.sum_xy, stats.sum_x, stats.sum_y, n)
        unit_var = max(unit_var - 2 * r * cxy + r * r * vx, 0.0) / (mx * mx)
        mean = r
    elif theta is not None and x_mean_all is not None:
        vx, cxy = _var(stats.sum_x2, stats.sum_x, n), _cov(stats.sum_xy, stats.sum_x, stats.sum_y, n)
        mean = mean - theta * (stats.sum_x / n - x_mean_all)
        unit_var = max(unit_var - 2 * theta * cxy + theta * theta * vx, 0.0)
    est = ArmEstimate(variant, n, float(mean), math.sqrt(unit_var), math.sqrt(unit_var / n), warnings=warnings)
    if unit_var == 0:
        est.warnings.append(f"variant '{variant}' has zero variance (every unit has the same value)")
    return est


def cuped_theta(stats: Mapping[str, SufficientStats]) -> tuple[float | None, float, str | None]:
    """CUPED's θ = Cov(x, y) / Var(x) pooled over all arms, the pooled covariate mean, and a warning."""
    total = SufficientStats(0, 0.0, 0.0)
    for s in stats.values():
        total = total + s
    if total.n < 3:
        return None, 0.0, "too few units for CUPED: the metric is analysed unadjusted"
    vx = _var(total.sum_x2, total.sum_x, total.n)
    if vx <= 0:
        return None, 0.0, "the CUPED covariate has zero variance: the metric is analysed unadjusted"
    return _cov(total.sum_xy, total.sum_x, total.sum_y, total.n) / vx, total.sum_x / total.n, None


# ----------------------------------------------------------------------------------------------
# Comparisons of two arms


def _rel(control: ArmEstimate, treatment: ArmEstimate) -> tuple[float, float] | None:
    """Relative lift t/c − 1 and its delta-method variance; None when the control mean is ≤ 0.

    With a negative control mean t/c − 1 has the wrong sign for a higher-is-better metric (−2 → −1 is a
    gain but gives −50%), so such comparisons are made on the absolute scale only.
    """
    mc, mt = float(control.mean), float(treatment.mean)  # type: ignore[arg-type]
    if mc <= 0:
        return None
    return mt / mc - 1, treatment.var / mc**2 + mt**2 * control.var / mc**4


def frequentist_test(
    control: ArmEstimate, treatment: ArmEstimate, alpha: float = 0.05, test: Literal["welch", "z"] = "welch"
) -> FrequentistResult:
    """Welch t (means) or z (proportions, ratios) test of the absolute and of the relative lift.

    The relative lift's test uses its delta-method standard error with the same distribution as the
    absolute test (Welch t with the Welch–Satterthwaite df, or z), as GrowthBook's gbstats does
    (frequentist/tests.py TwoSidedTTest: t.ppf(1 − α/2, dof) · se on the relative point estimate).
    """
    d = float(treatment.mean) - float(control.mean)  # type: ignore[arg-type]
    v = control.var + treatment.var
    se = math.sqrt(v)
    df = None
    if test == "welch":
        denom = control.var**2 / (control.n - 1) + treatment.var**2 / (treatment.n - 1)
        df = v * v / denom if denom > 0 else float(control.n + treatment.n - 2)
        dist = sps.t(df)
    else:
        dist = sps.norm()
    stat = d / se
    p = float(2 * dist.sf(abs(stat)))
    q = float(dist.ppf(1 - alpha / 2))
    rel = _rel(control, treatment)
    rel_effect = rel_ci = rel_stat = rel_p = None
    if rel is not None and rel[1] > 0:
        rel_effect, rel_se = rel[0], math.sqrt(rel[1])
        rel_ci = (rel_effect - q * rel_se, rel_effect + q * rel_se)
        rel_stat = rel_effect / rel_se
        rel_p = float(2 * dist.sf(abs(rel_stat)))
    return FrequentistResult(test, stat, df, p, d, (d - q * se, d + q * se), rel_effect, rel_ci, rel_stat, rel_p)


def sequential_rho(alpha: float, n_star: float) -> float:
    """Mixing parameter ρ that makes the confidence sequence tightest near ``n_star`` total units."""
    la = math.log(alpha)
    return math.sqrt((-2 * la + math.log(-2 * la + 1)) / n_star)


def cs_halfwidth(unit_var: np.ndarray | float, n: np.ndarray | float, alpha: float, n_star: float) -> np.ndarray:
    """Half-width of the asymptotic confidence sequence at total sample size ``n`` (vectorised).

    ``unit_var`` is n · Var(estimate): the per-unit variance of the difference estimator.
    """
    rho2 = sequential_rho(alpha, n_star) ** 2
    n = np.asarray(n, dtype=float)
    a = n * rho2 + 1
    return np.asarray(np.sqrt(unit_var) * np.sqrt(2 * a * np.log(np.sqrt(a) / alpha) / (n * n * rho2)))


def sequential_test(
    control: ArmEstimate, treatment: ArmEstimate, alpha: float = 0.05, n_star: float = 5000
) -> SequentialResult:
    """Always-valid CS for the lift: valid however often one peeks (Waudby-Smith et al. 2023)."""
    n = control.n + treatment.n
    d = float(treatment.mean) - float(control.mean)  # type: ignore[arg-type]
    v = control.var + treatment.var
    hw = float(cs_halfwidth(n * v, n, alpha, n_star))
    rho2 = sequential_rho(alpha, n_star) ** 2
    a = n * rho2 + 1
    log_e = rho2 * (d * d / v * n) / (2 * a) - 0.5 * math.log(a) if v > 0 else math.inf
    p = 1.0 if log_e <= 0 else float(min(math.exp(-log_e), 1.0))
    rel = _rel(control, treatment)
    rel_ci = None
    if rel is not None:
        rhw = float(cs_halfwidth(n * rel[1], n, alpha, n_star))
        rel_ci = (rel[0] - rhw, rel[0] + rhw)
    return SequentialResult(n_star, p, (d - hw, d + hw), rel_ci)


def bayesian_test(
    control: ArmEstimate,
    treatment: ArmEstimate,
    alpha: float = 0.05,
    relative: bool = True,
    prior_variance: float | None = None,
    higher_is_better: bool = True,
) -> BayesianResult | None:
    """Gaussian model on the lift (delta method for relative), flat prior unless ``prior_variance``.

    This is GrowthBook's effect model: chance to win = P(lift > 0), expected loss = E[max(∓lift, 0)].
    Returns None for a relative lift when the control mean is ≤ 0 (use ``relative=False`` then).
    """
    if relative:
        rel = _rel(control, treatment)
        if rel is None:
            return None
        mean, var = rel
    else:
        mean = float(treatment.mean) - float(control.mean)  # type: ignore[arg-type]
        var = control.var + treatment.var
    if prior_variance is not None and prior_variance > 0 and var > 0:
        post_var = 1.0 / (1.0 / var + 1.0 / prior_variance)
        mean, var = post_var * mean / var, post_var
    sd = math.sqrt(var)
    if sd == 0:
        ctw = 0.5 if mean == 0 else float(mean > 0)
        gain, loss = max(mean, 0.0), max(-mean, 0.0)
    else:
        z = mean / sd
        ctw = float(sps.norm.cdf(z))
        gain = float(mean * sps.norm.cdf(z) + sd * sps.norm.pdf(z))  # E[max(X, 0)]
        loss = gain - mean  # E[max(-X, 0)]
    if not higher_is_better:
        ctw, gain, loss = 1 - ctw, loss, gain
    q = float(sps.norm.ppf(1 - alpha / 2))
    return BayesianResult(
        "relative" if relative else "absolute", mean, sd, ctw, gain, loss, (mean - q * sd, mean + q * sd)
    )
