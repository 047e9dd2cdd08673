"""Post-period review: planned (expected) vs actual gain and resource use per project."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from growthcurve.data.readers import read_table, require_numeric
from growthcurve.errors import DataError
from growthcurve.planning.portfolio import Portfolio
from growthcurve.planning.risk import PlanRiskSimulator


@dataclass
class ProjectReview:
    """One funded (or actually run) project: plan vs reality."""

    name: str
    level: int
    planned_gain: float
    actual_gain: float | None
    gain_diff: float | None
    planned_use: dict[str, float]
    actual_use: dict[str, float | None]
    note: str = ""


@dataclass
class PlanReview:
    """Per-project rows and totals; ``actual_percentile``: where the actual total falls in the simulation."""

    projects: list[ProjectReview]
    planned_total: float
    actual_total: float
    planned_use: dict[str, float]
    actual_use: dict[str, float]
    actual_percentile: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "projects": [p.__dict__ for p in self.projects],
            "planned_total": self.planned_total,
            "actual_total": self.actual_total,
            "planned_use": self.planned_use,
            "actual_use": self.actual_use,
            "actual_percentile": self.actual_percentile,
            "notes": self.notes,
        }


def read_plan_levels(path: str | Path, pf: Portfolio) -> np.ndarray:
    """Levels per project from a ``plan allocate`` JSON (``chosen`` + ``levels``)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        names, levels = data["names"], data["levels"]
    except FileNotFoundError:
        raise DataError(f"plan file '{p}' does not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DataError(f"plan file '{p}' is not a `growthcurve plan allocate` plan.json") from None
    index = {n: i for i, n in enumerate(pf.names)}
    out = np.zeros(pf.n, dtype=int)
    for name, level in zip(names, levels, strict=False):
        if name not in index:
            raise DataError(f"plan file '{p}' names project '{name}' that is not in the projects file")
        out[index[name]] = int(level)
    return out


def read_actuals(path: str | Path) -> pd.DataFrame:
    """An actuals CSV: ``name``, ``actual_gain`` and optional ``actual_<resource>`` columns (numbers)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"actuals file '{p}' does not exist")
    df = read_table(p)  # the shared reader: empty file, bad bytes, broken quotes as for `finetune`
    if "name" not in df.columns or "actual_gain" not in df.columns:
        raise DataError(f"{p}: an actuals CSV needs the columns 'name' and 'actual_gain'")
    numeric = [c for c in df.columns if c != "name" and (c.startswith("actual_") or c == "level")]
    df = require_numeric(df, numeric, p)
    if df["name"].duplicated().any():
        raise DataError(f"{p}: project '{df['name'][df['name'].duplicated()].iloc[0]}' appears twice")
    return df


def review_plan(
    pf: Portfolio,
    actuals: pd.DataFrame,
    levels: np.ndarray | None = None,
    n_sims: int = 20_000,
    seed: int = 0,
) -> PlanReview:
    """Compare the plan (``levels``; default: the projects listed in ``actuals``) with what happened."""
    index = {n: i for i, n in enumerate(pf.names)}
    unknown = [n for n in actuals["name"] if n not in index]
    if unknown:
        raise DataError(f"actuals name project '{unknown[0]}' that is not in the projects file")
    if levels is None:
        levels = np.zeros(pf.n, dtype=int)
        for _, row in actuals.iterrows():
            lv = row.get("level", 1)
            levels[index[row["name"]]] = 1 if lv is None or (isinstance(lv, float) and math.isnan(lv)) else int(lv)
    resources = sorted({r.resource for r in pf.rows})
    per_res = {res: np.zeros(pf.n) for res in resources}
    for row in pf.rows:  # total planned need per level over quarters
        if row.quarter is None:
            per_res[row.resource] = row.coef.copy()
        else:
            per_res[row.resource] = per_res[row.resource] + row.coef
    act = actuals.set_index("name")
    rows: list[ProjectReview] = []
    notes: list[str] = []
    ran = sorted(set(np.flatnonzero(levels)) | {index[n] for n in actuals["name"]})
    for i in ran:
        name = pf.names[i]
        planned = float(pf.expected_gain[i] * levels[i])
        puse = {r: float(per_res[r][i] * levels[i]) for r in resources}
        if name in act.index:
            a = act.loc[name]
            ag = None if pd.isna(a["actual_gain"]) else float(a["actual_gain"])
            ause = {
                r: (None if f"actual_{r}" not in act.columns or pd.isna(a[f"actual_{r}"]) else float(a[f"actual_{r}"]))
                for r in resources
            }
            note = "" if levels[i] else "not in plan"
        else:
            ag, ause, note = None, {r: None for r in resources}, "no actuals"
        if note:
            notes.append(f"{name}: {note}")
        rows.append(
            ProjectReview(name, int(levels[i]), planned, ag, None if ag is None else ag - planned, puse, ause, note)
        )
    planned_total = float(sum(r.planned_gain for r in rows if r.level))
    actual_total = float(sum(r.actual_gain or 0.0 for r in rows))
    planned_use = {r: float(sum(p.planned_use[r] for p in rows)) for r in resources}
    actual_use = {r: float(sum(p.actual_use[r] or 0.0 for p in rows)) for r in resources}
    pct = None
    if levels.any():
        sim = PlanRiskSimulator(n_sims=n_sims, seed=seed).fit(pf, levels)
        pct = float(np.mean(sim.totals_ <= actual_total) * 100)
    return PlanReview(rows, planned_total, actual_total, planned_use, actual_use, pct, notes)
