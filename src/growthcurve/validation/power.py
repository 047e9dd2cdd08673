"""Power and sample-size planning: units per arm for a minimum detectable effect, and the duration."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from growthcurve.errors import ConfigError


@dataclass
class PowerPlan:
    """The plan: units per arm and in total, days at the given traffic, and the achieved MDE."""

    metric_type: str
    baseline: float
    sd: float
    mde_relative: float
    mde_absolute: float
    alpha: float
    power: float
    variants: int
    units_per_arm: int
    total_units: int
    daily_units: float | None
    days: int | None
    corrections: str


class PowerAnalysis:
    """Two-sided z-test power (statsmodels ``NormalIndPower``) for a conversion rate or a mean.

    With ``variants > 2`` and Bonferroni, α is divided by the number of treatments, a conservative
    stand-in for Holm at the planning stage.
    """

    def __init__(self, alpha: float = 0.05, power: float = 0.8, variants: int = 2, bonferroni: bool = True) -> None:
        self.alpha = alpha
        self.power = power
        self.variants = variants
        self.bonferroni = bonferroni

    def _check(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            raise ConfigError("alpha and power must lie strictly between 0 and 1 (e.g. --alpha 0.05 --power 0.8)")
        if self.variants < 2:
            raise ConfigError("an experiment needs at least 2 variants (--variants 2)")

    def fit(
        self,
        baseline: float,
        mde: float,
        sd: float | None = None,
        daily_units: float | None = None,
    ) -> PowerAnalysis:
        """Plan for a relative ``mde`` on a ``baseline`` rate (``sd`` None) or mean (``sd`` given)."""
        self._check()
        if mde <= 0:
            raise ConfigError(f"--mde must be a positive relative lift such as 0.05 (got {mde})")
        if sd is None:
            if not 0 < baseline < 1:
                raise ConfigError(f"a conversion baseline must lie in (0, 1) (got {baseline}); pass --sd for a mean")
            treated = baseline * (1 + mde)
            if treated > 1:
                most = (1 - baseline) / baseline
                raise ConfigError(
                    f"--mde {mde:g} on a conversion baseline of {baseline:g} asks for a rate of {treated:.4g}, "
                    f"above 1; the largest relative lift a rate of {baseline:g} can show is {most:.4g}"
                )
            sd = math.sqrt(baseline * (1 - baseline))
            kind = "binomial"
        else:
            if sd <= 0:
                raise ConfigError(f"--sd must be positive (got {sd})")
            if baseline == 0:
                raise ConfigError("a relative MDE needs a non-zero baseline mean")
            kind = "mean"
        delta = abs(baseline) * mde
        alpha = self.alpha / (self.variants - 1) if self.bonferroni and self.variants > 2 else self.alpha
        n_arm = _units_per_arm(delta / sd, alpha, self.power)
        total = n_arm * self.variants
        days = int(math.ceil(total / daily_units)) if daily_units else None
        self.result_ = PowerPlan(
            metric_type=kind,
            baseline=baseline,
            sd=sd,
            mde_relative=mde,
            mde_absolute=delta,
            alpha=self.alpha,
            power=self.power,
            variants=self.variants,
            units_per_arm=n_arm,
            total_units=total,
            daily_units=daily_units,
            days=days,
            corrections="bonferroni" if alpha != self.alpha else "none",
        )
        return self


def _units_per_arm(effect_size: float, alpha: float, power: float) -> int:
    """Units per arm for a standardised effect. statsmodels searches ``n >= 2`` and returns NaN (with a
    ConvergenceWarning) when 2 units already reach the power, as an effect several standard deviations wide
    does: the smallest two-sample test, 2 per arm, is then the answer."""
    analysis = NormalIndPower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # the root finder tries n < 0 on its way to NaN
        n = float(analysis.solve_power(effect_size=effect_size, alpha=alpha, power=power, ratio=1.0))
    if math.isfinite(n):
        return int(math.ceil(n))
    if float(analysis.power(effect_size=effect_size, nobs1=2, alpha=alpha, ratio=1.0)) >= power:
        return 2
    raise ConfigError(f"no sample size reaches power {power:g} for a standardised effect of {effect_size:.4g}")


def mde_for(n_per_arm: int, baseline: float, sd: float | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
    """The relative lift detectable with ``n_per_arm`` units per arm (two-sided z test, closed form)."""
    sd = math.sqrt(baseline * (1 - baseline)) if sd is None else sd
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    return float(z * sd * math.sqrt(2 / n_per_arm) / abs(baseline))
