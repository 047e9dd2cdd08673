"""scikit-learn-shaped analyses: ``ABTest`` (one metric, all arms) and ``SRMCheck``, fitted on statistics.

``fit`` takes a mapping variant → :class:`SufficientStats` (from SQL or from arrays) and stores typed
results in attributes ending in ``_``. Bad input never yields a silent NaN: the result carries ``error``
(nothing could be computed) or ``warnings`` (computed, but read with care).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from growthcurve.errors import ConfigError, DataError
from growthcurve.validation.stats import (
    ArmEstimate,
    BayesianResult,
    FrequentistResult,
    MetricType,
    SequentialResult,
    SufficientStats,
    bayesian_test,
    cuped_theta,
    estimate_arm,
    frequentist_test,
    sequential_test,
)

Correction = Literal["holm", "bh", "none"]
_CORRECTION_METHOD = {"holm": "holm", "bh": "fdr_bh"}


@dataclass
class Comparison:
    """Treatment vs control on one metric: fixed-horizon, sequential and Bayesian answers side by side."""

    metric: str
    control: str
    treatment: str
    frequentist: FrequentistResult | None = None
    p_adjusted: float | None = None
    significant: bool | None = None
    sequential: SequentialResult | None = None
    bayesian: BayesianResult | None = None
    variance_reduction: float | None = None  # CUPED: 1 − Var(adjusted) / Var(unadjusted) of the lift
    scale: Literal["relative", "absolute"] = "relative"  # the one test behind effect, CI, p and star
    method: str = ""  # that test in words, e.g. "relative lift, Welch t (delta-method SE)"
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def reported(self) -> tuple[float, tuple[float, float], float] | None:
        """(effect, CI, unadjusted p) of the test this row reports; None when nothing was computed."""
        return None if self.frequentist is None else self.frequentist.on(self.scale)


@dataclass
class MetricResult:
    """All arms of one metric: per-arm estimates and one comparison per treatment."""

    metric: str
    metric_type: str
    control: str
    arms: list[ArmEstimate]
    comparisons: list[Comparison]
    cuped_theta: float | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists, no NaN)."""
        return asdict(self)


@dataclass
class SRMResult:
    """Sample-ratio mismatch: observed units per variant against the planned split (χ² test)."""

    counts: dict[str, int]
    expected_shares: dict[str, float]
    chi2: float | None
    p_value: float | None
    alpha: float
    alarm: bool
    message: str


class SRMCheck:
    """Chi-square goodness-of-fit of the unit counts against the planned split; alarm at p < ``alpha``."""

    def __init__(self, alpha: float = 0.001, weights: Mapping[str, float] | None = None) -> None:
        self.alpha = alpha
        self.weights = weights

    def fit(self, counts: Mapping[str, int]) -> SRMCheck:
        """Test ``counts`` (units per variant); the result is in ``result_``.

        Weights must be shares ≥ 0 summing to 1 (ConfigError otherwise: a NaN p-value must never read as
        "no mismatch"); an arm planned at 0% that received units is the mismatch itself and raises the alarm.
        """
        if self.weights:
            check_weights(self.weights)
        negative = sorted(k for k, v in counts.items() if int(v) < 0)
        if negative:
            raise DataError(f"unit counts cannot be negative ({', '.join(negative)}): the aggregation input is corrupt")
        counts = {k: int(v) for k, v in counts.items()}
        if self.weights:
            missing = sorted(set(self.weights) - set(counts))
            if missing:
                counts.update({k: 0 for k in missing})
            extra = sorted(set(counts) - set(self.weights))
            if extra:
                self.result_ = SRMResult(
                    counts,
                    {},
                    None,
                    None,
                    self.alpha,
                    True,
                    f"variants {extra} are not in the planned split {sorted(self.weights)}",
                )
                return self
            w = {k: float(self.weights[k]) for k in counts}
        else:
            w = {k: 1.0 for k in counts}
        total_w = sum(w.values())
        shares = {k: v / total_w for k, v in w.items()}
        total = sum(counts.values())
        if len(counts) < 2 or total == 0 or any(v < 0 for v in counts.values()):
            self.result_ = SRMResult(
                counts,
                shares,
                None,
                None,
                self.alpha,
                False,
                "SRM check needs at least two variants with non-negative unit counts",
            )
            return self
        observed = ", ".join(f"{k}={counts[k] / total:.2%}" for k in counts)
        planned = ", ".join(f"{k}={shares[k]:.2%}" for k in counts)
        unplanned = sorted(k for k in counts if shares[k] == 0 and counts[k] > 0)
        if unplanned:
            self.result_ = SRMResult(
                counts,
                shares,
                None,
                0.0,
                self.alpha,
                True,
                f"SAMPLE RATIO MISMATCH: {', '.join(unplanned)} planned at 0% but received units (observed "
                f"{observed}); assignment or logging is broken, do not trust the results below",
            )
            return self
        keys = [k for k in counts if shares[k] > 0]  # a 0% arm with no units carries no information
        chi2, p = sps.chisquare([counts[k] for k in keys], [total * shares[k] for k in keys])
        if not math.isfinite(float(p)):
            raise DataError(f"SRM check could not be computed for counts {counts} and split {shares}")
        alarm = bool(p < self.alpha)
        msg = (
            f"SAMPLE RATIO MISMATCH (p={p:.2g} < {self.alpha}): observed {observed} vs planned {planned}; "
            "assignment or logging is broken, do not trust the results below"
            if alarm
            else f"no sample ratio mismatch (p={p:.3g}): observed {observed}"
        )
        self.result_ = SRMResult(counts, shares, float(chi2), float(p), self.alpha, alarm, msg)
        return self


def check_weights(weights: Mapping[str, float]) -> None:
    """Planned split: every share finite and ≥ 0, not all 0, summing to 1; else one ConfigError line."""
    bad = sorted(k for k, w in weights.items() if not (math.isfinite(float(w)) and float(w) >= 0))
    if bad:
        raise ConfigError(
            f"analysis.weights: the share of {', '.join(bad)} is negative or not a number; "
            "set each variant's planned share, e.g. {control: 0.5, treatment: 0.5}"
        )
    total = sum(float(w) for w in weights.values())
    if not math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-6):
        raise ConfigError(
            f"analysis.weights sum to {total:g}, not 1; set the planned shares so they add up to 1 "
            "(e.g. {control: 0.5, treatment: 0.5})"
        )


class ABTest:
    """Analyse one metric over all arms against a control (sklearn shape: ``fit`` on sufficient statistics).

    Parameters mirror the YAML ``analysis`` section; ``fit(stats)`` sets ``result_`` (a MetricResult),
    ``arms_`` (variant → ArmEstimate) and ``theta_`` (the CUPED coefficient, or None).
    """

    def __init__(
        self,
        metric: str = "metric",
        metric_type: MetricType = "mean",
        control: str | None = None,
        alpha: float = 0.05,
        test: Literal["auto", "welch", "z"] = "auto",
        cuped: bool = False,
        sequential: bool = True,
        n_star: float = 5000.0,
        bayesian: bool = True,
        relative: bool = True,
        prior_variance: float | None = None,
        correction: Correction = "holm",
        higher_is_better: bool = True,
    ) -> None:
        self.metric = metric
        self.metric_type = metric_type
        self.control = control
        self.alpha = alpha
        self.test = test
        self.cuped = cuped
        self.sequential = sequential
        self.n_star = n_star
        self.bayesian = bayesian
        self.relative = relative
        self.prior_variance = prior_variance
        self.correction = correction
        self.higher_is_better = higher_is_better

    def _control(self, variants: list[str]) -> str | None:
        if self.control is not None:
            return self.control
        if "control" in variants:
            return "control"
        return sorted(variants)[0] if variants else None

    def fit(self, stats: Mapping[str, SufficientStats]) -> ABTest:
        """Estimate every arm and compare each treatment with the control."""
        variants = list(stats)
        control = self._control(variants)
        self.theta_ = None
        self.arms_ = {}
        result = MetricResult(self.metric, self.metric_type, control or "", [], [])
        self.result_ = result
        if control is None or control not in stats:
            result.error = (
                f"control variant '{control}' has no data (variants seen: {sorted(variants)}); "
                "set analysis.control to one of them"
            )
            return self
        if len(variants) < 2:
            result.error = f"only one variant ('{control}') has data: nothing to compare"
            return self
        x_mean = None
        if self.cuped and self.metric_type != "ratio":
            self.theta_, x_mean, warn = cuped_theta(stats)
            if warn:
                result.warnings.append(warn)
        result.cuped_theta = self.theta_
        for v in variants:
            self.arms_[v] = estimate_arm(stats[v], v, self.metric_type, self.theta_, x_mean)
        raw = {v: estimate_arm(stats[v], v, self.metric_type) for v in variants} if self.theta_ is not None else None
        result.arms = [self.arms_[v] for v in variants]
        test = self.test if self.test != "auto" else ("welch" if self.metric_type == "mean" else "z")
        c = self.arms_[control]
        for v in variants:
            if v == control:
                continue
            t = self.arms_[v]
            comp = Comparison(self.metric, control, v)
            result.comparisons.append(comp)
            errors = [a.error for a in (c, t) if a.error]
            if errors:
                comp.error = "; ".join(errors)
                continue
            comp.warnings += c.warnings + t.warnings
            if c.var + t.var == 0:
                comp.error = (
                    f"zero variance in both '{control}' and '{v}' (every unit has the same value): "
                    "no test is possible; check that the metric column is the right one"
                )
                continue
            comp.frequentist = f = frequentist_test(c, t, self.alpha, test)
            relative = self.relative and f.rel_p_value is not None
            if self.relative and not relative:
                why = (
                    f"control mean of '{self.metric}' is {float(c.mean):g} ≤ 0: relative lift is undefined "  # type: ignore[arg-type]
                    "(or points the wrong way)"
                    if float(c.mean) <= 0  # type: ignore[arg-type]
                    else f"relative lift of '{self.metric}' has zero variance"
                )
                comp.warnings.append(f"{why}; effect, CI, p-value and chance to win are on the absolute scale")
            comp.scale = "relative" if relative else "absolute"
            name = "Welch t" if test == "welch" else "z"
            comp.method = f"relative lift, {name} (delta-method SE)" if relative else f"absolute difference, {name}"
            if self.sequential:
                comp.sequential = sequential_test(c, t, self.alpha, self.n_star)
            if self.bayesian:
                comp.bayesian = bayesian_test(c, t, self.alpha, relative, self.prior_variance, self.higher_is_better)
            if raw is not None and not raw[control].error and not raw[v].error:
                v_raw = raw[control].var + raw[v].var
                if v_raw > 0:
                    comp.variance_reduction = 1 - (c.var + t.var) / v_raw
        self._adjust(result.comparisons)
        return self

    def _adjust(self, comps: list[Comparison]) -> None:
        """Holm or Benjamini–Hochberg over the treatments of this metric (statsmodels)."""
        ok = [cp for cp in comps if cp.frequentist is not None]
        if not ok:
            return
        pvals = [cp.reported()[2] for cp in ok]  # type: ignore[index]  # the p of the reported test
        if self.correction == "none" or len(ok) == 1:
            adjusted = pvals
        else:
            adjusted = list(multipletests(pvals, alpha=self.alpha, method=_CORRECTION_METHOD[self.correction])[1])
        for cp, pa in zip(ok, adjusted, strict=True):
            cp.p_adjusted = float(pa)
            cp.significant = bool(pa < self.alpha)


def clean_json_dict(obj: dict[str, Any]) -> dict[str, Any]:
    """:func:`clean_json` of a result's ``asdict``: the same mapping with non-finite floats as None."""
    return {k: clean_json(v) for k, v in obj.items()}


def clean_json(obj: Any) -> Any:
    """Replace non-finite floats by None so results serialise as valid JSON (never a silent NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    return obj
