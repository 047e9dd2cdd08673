"""Did training raise skills? Paired t test and Wilcoxon signed-rank on pre/post scores, Cohen's d_z
with an exact confidence interval (noncentral t inversion, Cumming & Finch 2001), and with a control
group a difference-in-differences estimate (Welch t test on the gains of the two groups).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from growthcurve.data.readers import line_of, read_table, require_numeric
from growthcurve.errors import DataError

_TREATED = {"treatment", "treated", "trained", "training", "1", "true", "yes"}
_CONTROL = {"control", "untrained", "0", "false", "no"}


def cohens_dz_ci(d_z: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact CI of d_z: t = d_z * sqrt(n) is noncentral t with df n-1 and noncentrality delta * sqrt(n)."""
    t_obs, df = d_z * math.sqrt(n), n - 1
    alpha = 1 - level

    def solve(p: float) -> float:
        f = lambda nc: stats.nct.cdf(t_obs, df, nc) - p  # noqa: E731 - a one-line root function
        lo, hi = t_obs - 10.0, t_obs + 10.0
        while f(lo) < 0:
            lo -= 10.0
        while f(hi) > 0:
            hi += 10.0
        return optimize.brentq(f, lo, hi, xtol=1e-10)

    return solve(1 - alpha / 2) / math.sqrt(n), solve(alpha / 2) / math.sqrt(n)


@dataclass
class TrainingEffectResult:
    """Statistics for one skill (or all scores)."""

    skill: str
    n: int
    mean_pre: float
    mean_post: float
    mean_gain: float
    sd_gain: float
    gain_ci_low: float
    gain_ci_high: float
    t: float
    df: int
    p_t: float
    wilcoxon_w: float
    p_wilcoxon: float
    d_z: float
    d_z_ci_low: float
    d_z_ci_high: float
    n_control: int | None = None
    mean_gain_control: float | None = None
    did: float | None = None
    did_ci_low: float | None = None
    did_ci_high: float | None = None
    did_t: float | None = None
    did_df: float | None = None
    p_did: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def read_scores(path: str | Path) -> pd.DataFrame:
    """A scores CSV: ``person, pre, post`` and optional ``group`` (treatment/control) and ``skill``."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"scores file '{p}' does not exist")
    df = read_table(p)  # the shared reader: cells stay text until checked below
    missing = [c for c in ("pre", "post") if c not in df.columns]
    if missing:
        raise DataError(f"{p}: needs columns 'pre' and 'post' (missing: {', '.join(missing)})")
    df = require_numeric(df, ["pre", "post"], p, allow_missing=False)
    if "person" in df.columns:
        keys = ["person", "skill"] if "skill" in df.columns else ["person"]
        dup = df.duplicated(subset=keys).to_numpy()
        if dup.any():
            # an error, not a drop: a person measured twice for one skill would be counted as two people
            i = int(np.flatnonzero(dup)[0])
            what = f"person '{df['person'].iloc[i]}'" + (f" (skill '{df['skill'].iloc[i]}')" if "skill" in keys else "")
            raise DataError(f"{p}:{line_of(df, i)}: {what} appears twice; keep one pre/post row per person")
    if "group" in df.columns:
        g = df["group"].astype(str).str.strip().str.lower()
        bad = ~g.isin(_TREATED | _CONTROL)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{p}:{line_of(df, i)}: group must be 'treatment' or 'control', got '{df['group'].iloc[i]}'"
            )
        df["treated"] = g.isin(_TREATED)
    else:
        df["treated"] = True
    return df


class TrainingEffect:
    """Estimate the training effect per skill (``skill`` column) or over all rows."""

    def __init__(self, level: float = 0.95) -> None:
        self.level = level

    def fit(self, scores: pd.DataFrame) -> TrainingEffect:
        """Compute the statistics; one result per skill lands in ``result_``."""
        groups = scores.groupby("skill", sort=True) if "skill" in scores.columns else [("all", scores)]
        self.result_ = [self._one(str(name), g) for name, g in groups]
        return self

    def _one(self, skill: str, df: pd.DataFrame) -> TrainingEffectResult:
        tr = df[df["treated"]]
        n = len(tr)
        if n < 3:
            raise DataError(f"skill '{skill}': need at least 3 trained people with pre and post scores, got {n}")
        gain = (tr["post"] - tr["pre"]).to_numpy()
        sd = float(gain.std(ddof=1))
        if sd == 0:
            raise DataError(f"skill '{skill}': every gain is identical ({gain[0]:g}); no test is defined")
        tt = stats.ttest_rel(tr["post"], tr["pre"])
        ci = tt.confidence_interval(self.level)
        wil = stats.wilcoxon(tr["post"], tr["pre"])
        d_z = float(gain.mean() / sd)
        d_lo, d_hi = cohens_dz_ci(d_z, n, self.level)
        res = TrainingEffectResult(
            skill,
            n,
            float(tr["pre"].mean()),
            float(tr["post"].mean()),
            float(gain.mean()),
            sd,
            float(ci.low),
            float(ci.high),
            float(tt.statistic),
            int(tt.df),
            float(tt.pvalue),
            float(wil.statistic),
            float(wil.pvalue),
            d_z,
            d_lo,
            d_hi,
        )
        ctrl = df[~df["treated"]]
        if len(ctrl):
            if len(ctrl) < 2:
                raise DataError(f"skill '{skill}': a control group needs at least 2 people, got {len(ctrl)}")
            cgain = (ctrl["post"] - ctrl["pre"]).to_numpy()
            w = stats.ttest_ind(gain, cgain, equal_var=False)
            wci = w.confidence_interval(self.level)
            res.n_control = len(ctrl)
            res.mean_gain_control = float(cgain.mean())
            res.did = float(gain.mean() - cgain.mean())
            res.did_ci_low, res.did_ci_high = float(wci.low), float(wci.high)
            res.did_t, res.did_df, res.p_did = float(w.statistic), float(w.df), float(w.pvalue)
        return res
