"""Performance reviews from goals: attainment per person and period, with a calibrated summary.

Attainment of a person in a period is the weighted mean of their key results' progress (clipped to
[0, ``cap``]) as of a date. Calibration puts every person on the scale of their period: z-score and
percentile within the period, and outliers by the robust modified z-score (Iglewicz & Hoaglin 1993:
0.6745 * (x - median) / MAD, |z| > 3.5).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from growthcurve.errors import DataError
from growthcurve.planning.goals import GoalsConfig, assess_goals


@dataclass
class PeriodSummary:
    """Distribution of attainment in one period."""

    period: str
    n_people: int
    mean: float
    sd: float
    p25: float
    median: float
    p75: float
    outliers: list[str]


class PerformanceReview:
    """Attainment per person/period from goals, calibrated within each period."""

    def __init__(self, cap: float = 1.5, outlier_z: float = 3.5, method: str = "linear") -> None:
        self.cap = cap
        self.outlier_z = outlier_z
        self.method = method

    def fit(self, goals: GoalsConfig, as_of: dt.date) -> PerformanceReview:
        """Compute ``result_`` (one row per person and period) and ``summary_`` (one per period)."""
        rows = []
        for obj in assess_goals(goals, as_of, self.method):  # type: ignore[arg-type]
            for k in obj.key_results:
                if k.owner is None:
                    raise DataError(
                        f"key result '{k.objective_id}/{k.kr_id}' has no owner; set owner on it or its objective"
                    )
                rows.append(
                    {
                        "person": k.owner,
                        "period": k.period,
                        "progress": min(max(k.progress, 0.0), self.cap),
                        "weight": k.weight,
                        "done": k.status == "done",
                        "open": k.status not in ("done", "missed"),
                    }
                )
        if not rows:
            raise DataError("no key results to review")
        kr = pd.DataFrame(rows)
        kr["wp"] = kr["progress"] * kr["weight"]
        g = kr.groupby(["period", "person"], sort=True)
        table = pd.DataFrame(
            {
                "key_results": g.size(),
                "done": g["done"].sum().astype(int),
                "open": g["open"].sum().astype(int),
                "attainment": g["wp"].sum() / g["weight"].sum(),
            }
        ).reset_index()
        table["z"] = np.nan
        table["percentile"] = np.nan
        table["robust_z"] = np.nan
        table["outlier"] = False
        summaries = []
        for period, idx in table.groupby("period").groups.items():
            a = table.loc[idx, "attainment"].to_numpy(dtype=float)
            sd = a.std(ddof=1) if len(a) > 1 else 0.0
            table.loc[idx, "z"] = (a - a.mean()) / sd if sd > 0 else 0.0
            table.loc[idx, "percentile"] = stats.rankdata(a, method="average") / len(a) * 100
            mad = float(np.median(np.abs(a - np.median(a))))
            rz = 0.6745 * (a - np.median(a)) / mad if mad > 0 else np.zeros_like(a)
            table.loc[idx, "robust_z"] = rz
            table.loc[idx, "outlier"] = np.abs(rz) > self.outlier_z
            q25, q50, q75 = np.percentile(a, [25, 50, 75])
            outliers = table.loc[idx][np.abs(rz) > self.outlier_z]["person"].tolist()
            summaries.append(
                PeriodSummary(
                    str(period),
                    len(a),
                    float(a.mean()),
                    float(sd),
                    float(q25),
                    float(q50),
                    float(q75),
                    outliers,
                )
            )
        self.result_ = table
        self.summary_ = summaries
        return self

    def summary_dict(self) -> list[dict[str, Any]]:
        """JSON-ready period summaries."""
        return [s.__dict__ for s in self.summary_]
