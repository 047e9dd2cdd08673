"""Monte Carlo risk of a plan: sampled project outcomes, P10/P50/P90, probability of hitting a target."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from growthcurve.errors import ConfigError

if TYPE_CHECKING:
    from growthcurve.planning.portfolio import Portfolio


def sample_outcomes(pf: Portfolio, n: int, seed: int = 0) -> np.ndarray:
    """Sampled gain per funded level, shape (n, projects): success ~ Bernoulli(p) times the gain draw."""
    if n < 1:
        raise ConfigError(f"number of simulations must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, pf.n))
    for j, s in enumerate(pf.specs):
        # the spec's validator guarantees gain_sd (normal, lognormal) and gain_low/high (triangular)
        if s.gain_dist == "normal" and s.gain_sd is not None:
            draw = rng.normal(s.gain, s.gain_sd, n)
        elif s.gain_dist == "lognormal" and s.gain_sd is not None:
            sigma2 = math.log1p((s.gain_sd / s.gain) ** 2)
            draw = rng.lognormal(math.log(s.gain) - sigma2 / 2, math.sqrt(sigma2), n)
        elif s.gain_dist == "triangular" and s.gain_low is not None and s.gain_high is not None:
            draw = rng.triangular(s.gain_low, s.gain, s.gain_high, n)
        else:
            draw = np.full(n, s.gain)
        success = rng.random(n) < s.p_success if s.p_success < 1 else np.ones(n, dtype=bool)
        out[:, j] = np.where(success, draw, 0.0)
    return out


def cvar_of_loss(loss: np.ndarray, alpha: float) -> float:
    """CVaR_alpha of a sampled loss: the Rockafellar-Uryasev minimum ``t + E[(L - t)+] / alpha``.

    At ``t`` = the (1 - alpha) quantile (the ceil(alpha*S)-th largest loss) this equals the LP's value.
    """
    s = np.sort(np.asarray(loss, dtype=float))[::-1]
    k = max(1, math.ceil(alpha * len(s)))
    t = s[k - 1]
    return float(t + np.maximum(s - t, 0.0).mean() / alpha)


@dataclass
class RiskResult:
    """Summary of the simulated total gain of a plan."""

    n_sims: int
    seed: int
    mean: float
    sd: float
    p10: float
    p50: float
    p90: float
    target: float | None
    prob_hit_target: float | None
    prob_hit_target_se: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


class PlanRiskSimulator:
    """Simulate the total gain of a plan (levels per project) with a fixed seed."""

    def __init__(self, n_sims: int = 20_000, seed: int = 0, target: float | None = None) -> None:
        self.n_sims = n_sims
        self.seed = seed
        self.target = target

    def fit(self, portfolio: Portfolio, levels: np.ndarray | list[int]) -> PlanRiskSimulator:
        """Draw outcomes and summarise; totals land in ``totals_`` and the summary in ``result_``."""
        lv = np.asarray(levels, dtype=float)
        if lv.shape != (portfolio.n,):
            raise ConfigError(f"plan has {lv.shape[0]} levels but the portfolio has {portfolio.n} projects")
        self.totals_ = sample_outcomes(portfolio, self.n_sims, self.seed) @ lv
        p10, p50, p90 = np.percentile(self.totals_, [10, 50, 90])
        prob = se = None
        if self.target is not None:
            prob = float(np.mean(self.totals_ >= self.target))
            se = math.sqrt(prob * (1 - prob) / self.n_sims)
        self.result_ = RiskResult(
            self.n_sims,
            self.seed,
            float(self.totals_.mean()),
            float(self.totals_.std(ddof=1)) if self.n_sims > 1 else 0.0,
            float(p10),
            float(p50),
            float(p90),
            self.target,
            prob,
            se,
        )
        return self
