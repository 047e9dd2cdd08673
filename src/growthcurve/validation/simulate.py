"""Monte-Carlo checks of the procedures (A/A false positives under peeking, A/B power, CUPED) and
example data.

The peeking simulation is vectorised over experiments: per look it only needs cumulative sufficient
statistics, so 4,000 experiments × 30 looks run in well under a second.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as sps

from growthcurve.errors import ConfigError
from growthcurve.validation.analysis import ABTest
from growthcurve.validation.stats import SufficientStats, cs_halfwidth

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class PeekingResult:
    """Rejection rates and coverage of three procedures over simulated experiments."""

    experiments: int
    looks: int
    users_per_arm_per_look: int
    baseline: float
    lift: float
    alpha: float
    n_star: float
    reject_naive_peeking: float  # z test at every look, stop at the first p < alpha
    reject_fixed: float  # one z test at the last look
    reject_sequential: float  # confidence sequence excludes 0 at any look
    coverage_fixed: float  # final CI holds the true difference
    coverage_sequential: float  # the CS holds the true difference at every look at once


def simulate_peeking(
    experiments: int = 4000,
    looks: int = 30,
    users_per_look: int = 500,
    baseline: float = 0.10,
    lift: float = 0.0,
    alpha: float = 0.05,
    n_star: float = 5000.0,
    seed: int = 0,
    chunk: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> PeekingResult:
    """Simulate conversion experiments with daily looks (A/A when ``lift`` = 0) and score each procedure."""
    if experiments < 1 or looks < 1 or users_per_look < 2:
        raise ConfigError("experiments, looks must be >= 1 and users per look >= 2")
    p_t = baseline * (1 + lift)
    if not 0 < baseline < 1 or not 0 < p_t < 1:
        raise ConfigError(f"baseline {baseline} and lift {lift} must give rates in (0, 1)")
    rng = np.random.default_rng(seed)
    true_diff = p_t - baseline
    z = sps.norm.ppf(1 - alpha / 2)
    n = users_per_look * np.arange(1, looks + 1, dtype=float)  # per arm, cumulative
    hits = np.zeros(5)
    done = 0
    while done < experiments:
        e = min(chunk, experiments - done)
        ca = rng.binomial(users_per_look, baseline, size=(e, looks)).cumsum(axis=1)
        cb = rng.binomial(users_per_look, p_t, size=(e, looks)).cumsum(axis=1)
        pa, pb = ca / n, cb / n
        var = pa * (1 - pa) / n + pb * (1 - pb) / n  # unpooled, as the analysis uses
        d = pb - pa
        se = np.sqrt(np.where(var > 0, var, np.inf))
        sig = np.abs(d) / se > z
        hw = cs_halfwidth(2 * n * var, 2 * n, alpha, n_star)
        seq_sig = np.abs(d) > hw
        hits += [
            sig.any(axis=1).sum(),
            sig[:, -1].sum(),
            seq_sig.any(axis=1).sum(),
            (np.abs(d[:, -1] - true_diff) <= z * se[:, -1]).sum(),
            (np.abs(d - true_diff) <= hw).all(axis=1).sum(),
        ]
        done += e
        if progress:
            progress(e)
    r = hits / experiments
    return PeekingResult(experiments, looks, users_per_look, baseline, lift, alpha, n_star, *(float(v) for v in r))


@dataclass
class CupedResult:
    """How much CUPED shrinks the variance of the lift estimate across simulated experiments."""

    experiments: int
    units_per_arm: int
    rho: float
    variance_unadjusted: float
    variance_adjusted: float
    variance_reduction: float  # 1 − adjusted / unadjusted, measured across experiments
    expected_reduction: float  # ρ²
    mean_reported_reduction: float  # average of what ABTest reports per experiment


def simulate_cuped(
    experiments: int = 2000, units_per_arm: int = 2000, rho: float = 0.7, lift: float = 0.0, seed: int = 0
) -> CupedResult:
    """Pre/post metric with correlation ``rho``; compare the lift's spread with and without CUPED."""
    if not -1 < rho < 1:
        raise ConfigError(f"rho must lie in (-1, 1) (got {rho})")
    rng = np.random.default_rng(seed)
    raw: list[float] = []
    adj: list[float] = []
    reported: list[float] = []
    for _ in range(experiments):
        stats = {}
        for arm, effect in (("control", 0.0), ("treatment", lift)):
            x = rng.normal(10.0, 2.0, units_per_arm)
            y = 10.0 + effect + rho * (x - 10.0) + np.sqrt(1 - rho**2) * rng.normal(0.0, 2.0, units_per_arm)
            stats[arm] = SufficientStats.from_arrays(y, x)
        base = ABTest(metric_type="mean", sequential=False, bayesian=False).fit(stats).result_.comparisons[0]
        cup = ABTest(metric_type="mean", cuped=True, sequential=False, bayesian=False).fit(stats)
        comp = cup.result_.comparisons[0]
        # a mean metric with two arms always gets a frequentist result, and CUPED on always reports its reduction
        assert base.frequentist is not None and comp.frequentist is not None and comp.variance_reduction is not None
        raw.append(base.frequentist.abs_effect)
        adj.append(comp.frequentist.abs_effect)
        reported.append(comp.variance_reduction)
    v_raw, v_adj = float(np.var(raw, ddof=1)), float(np.var(adj, ddof=1))
    return CupedResult(
        experiments, units_per_arm, rho, v_raw, v_adj, 1 - v_adj / v_raw, rho**2, float(np.mean(reported))
    )


def example_events(
    units: int = 4000,
    days: int = 14,
    lift: float = 0.05,
    seed: int = 0,
    split: float = 0.5,
    start: dt.datetime | None = None,
) -> pd.DataFrame:
    """A realistic wide events table: one row per session with conversion, revenue, rating, pre-period.

    Columns: unit_id, variant, ts, sessions (1), converted (0/1), revenue, satisfaction (1–5 or empty),
    pre_revenue (on each unit's first row only). ``lift`` is the treatment's relative effect.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = start or dt.datetime(2026, 11, 1)
    treat = rng.random(units) < split
    first_day = rng.integers(0, days, units)
    propensity = rng.gamma(2.0, 1.0, units)  # a unit's spending habit: drives pre and post revenue
    pre_revenue = rng.poisson(propensity * 3.0).astype(float)
    rows = []
    for u in range(units):
        k = 1 + rng.poisson(1.5)
        lift_u = 1 + lift * treat[u]
        for j in range(k):
            day = min(days - 1, first_day[u] + int(rng.integers(0, 4)) * (j > 0))
            ts = start + dt.timedelta(days=int(day), seconds=int(rng.integers(0, 86_400)))
            converted = float(rng.random() < min(0.9, 0.08 * lift_u * (0.5 + propensity[u] / 2)))
            revenue = float(converted * rng.gamma(2.0, 10.0) * lift_u)
            sat = (
                float(np.clip(np.round(rng.normal(3.8 + 0.3 * lift / 0.05 * treat[u], 0.9)), 1, 5))
                if rng.random() < 0.3
                else np.nan
            )
            rows.append(
                (
                    f"u{u:06d}",
                    "treatment" if treat[u] else "control",
                    ts,
                    1.0,
                    converted,
                    revenue,
                    sat,
                    pre_revenue[u] if j == 0 else np.nan,
                )
            )
    return pd.DataFrame(
        rows, columns=["unit_id", "variant", "ts", "sessions", "converted", "revenue", "satisfaction", "pre_revenue"]
    ).sort_values("ts", ignore_index=True)


def write_example_events(path: str | Path, **kwargs: object) -> int:
    """Write :func:`example_events` as CSV/Parquet, or into the store's long table for a ``.db`` path."""
    from growthcurve.atomic import atomic_path

    df = example_events(**kwargs)  # type: ignore[arg-type]
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        with atomic_path(p) as tmp:
            df.to_csv(tmp, index=False, float_format="%.4g")
    elif suffix in (".parquet", ".pq"):
        with atomic_path(p) as tmp:
            df.to_parquet(tmp, index=False)
    elif suffix in (".db", ".sqlite"):
        from growthcurve.store import experiment_events, init_db, insert_rows

        engine = init_db(f"sqlite:///{p}")
        metrics = ["sessions", "converted", "revenue", "satisfaction", "pre_revenue"]
        long = df.melt(id_vars=["unit_id", "variant", "ts"], value_vars=metrics, var_name="metric").dropna()
        long["experiment"] = "example"
        rows = (dict(r._asdict()) for r in long.itertuples(index=False))
        n = insert_rows(
            engine, experiment_events, ({k: v.to_pydatetime() if k == "ts" else v for k, v in r.items()} for r in rows)
        )
        engine.dispose()
        return n
    else:
        raise ConfigError(f"--out must end in .csv, .parquet or .db (got '{p.name}')")
    return len(df)
