"""Goals (OKRs): objectives with key results, progress, expected-by-now, trend forecast and status.

Status of a key result at a date ``as_of``:

- ``not-started``: before its start date; ``no-data``: started but no check-in yet;
- ``done``: progress >= 100 %; ``missed``: past the due date without reaching the target;
- otherwise from the forecast at the due date (straight line from the start through the latest
  check-in, or an OLS trend through all check-ins when there are at least three points):
  ``on-track`` when the forecast reaches the target, ``at-risk`` when it reaches at least
  ``at_risk_threshold`` of the way, ``off-track`` below that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from scipy import stats

from growthcurve.config import StrictModel, build_config

Status = Literal["not-started", "no-data", "on-track", "at-risk", "off-track", "done", "missed"]
_SEVERITY = ["done", "on-track", "not-started", "no-data", "at-risk", "off-track", "missed"]


class CheckIn(StrictModel):
    """A measured value of a key result on a date."""

    date: dt.date
    value: float


class KeyResultSpec(StrictModel):
    """A key result: move a metric from ``start_value`` to ``target`` between two dates."""

    id: str = Field(min_length=1)
    title: str = ""
    owner: str | None = None
    start_value: float
    target: float
    start_date: dt.date
    due_date: dt.date
    weight: float = Field(1.0, gt=0)
    current: float | None = None  # latest value; dated current_date (or the evaluation date)
    current_date: dt.date | None = None
    history: list[CheckIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> KeyResultSpec:
        if self.target == self.start_value:
            raise ValueError(f"key result '{self.id}': target equals start_value, there is nothing to move")
        if self.due_date <= self.start_date:
            raise ValueError(f"key result '{self.id}': due_date must be after start_date")
        return self


class ObjectiveSpec(StrictModel):
    """An objective with its key results; ``owner`` and ``period`` are inherited by its key results."""

    id: str = Field(min_length=1)
    title: str = ""
    owner: str | None = None
    period: str | None = None  # e.g. "2026Q4"; default: the quarter of each key result's due date
    key_results: list[KeyResultSpec] = Field(min_length=1)


class GoalsConfig(StrictModel):
    """A goals file."""

    objectives: list[ObjectiveSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> GoalsConfig:
        seen: set[tuple[str, str]] = set()
        for o in self.objectives:
            for kr in o.key_results:
                if (o.id, kr.id) in seen:
                    raise ValueError(f"key result '{o.id}/{kr.id}' appears twice")
                seen.add((o.id, kr.id))
        return self


def load_goals(path: str | Path, overrides: list[str] | None = None) -> GoalsConfig:
    """Read and validate a goals YAML file."""
    return build_config(GoalsConfig, path, overrides)


def quarter_of(day: dt.date) -> str:
    """Calendar quarter label such as ``2026Q4``."""
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


@dataclass
class KeyResultStatus:
    """Where one key result stands on ``as_of``."""

    objective_id: str
    kr_id: str
    title: str
    owner: str | None
    period: str
    start_value: float
    target: float
    current: float
    progress: float  # (current - start) / (target - start); may exceed 1 or be negative
    expected: float  # share of the time window elapsed, clipped to [0, 1]
    forecast: float | None
    forecast_progress: float | None
    status: str
    method: str
    weight: float
    due_date: dt.date

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["due_date"] = self.due_date.isoformat()
        return d


def checkins_of(kr: KeyResultSpec, as_of: dt.date) -> list[CheckIn]:
    """Sorted check-ins up to ``as_of`` (``current`` counts as a check-in at current_date or as_of)."""
    points = list(kr.history)
    if kr.current is not None:
        points.append(CheckIn(date=kr.current_date or as_of, value=kr.current))
    return sorted((p for p in points if p.date <= as_of), key=lambda p: p.date)


def assess_key_result(
    kr: KeyResultSpec,
    as_of: dt.date,
    *,
    objective_id: str = "",
    owner: str | None = None,
    period: str | None = None,
    method: Literal["linear", "fit"] = "linear",
    at_risk_threshold: float = 0.7,
) -> KeyResultStatus:
    """Progress, expected-by-now, forecast at the due date and status of one key result."""
    span = (kr.due_date - kr.start_date).days
    expected = float(np.clip((as_of - kr.start_date).days / span, 0.0, 1.0))
    points = [p for p in checkins_of(kr, as_of) if p.date >= kr.start_date]
    current = points[-1].value if points else kr.start_value
    delta = kr.target - kr.start_value
    progress = (current - kr.start_value) / delta
    forecast: float | None = None
    used: str = method
    if as_of < kr.start_date:
        status = "not-started"
    elif progress >= 1.0:
        status, forecast = "done", current
    elif as_of >= kr.due_date:
        status, forecast = "missed", current
    elif not points or points[-1].date == kr.start_date:
        status = "no-data"
    else:
        forecast, used = _forecast(kr, points, method)
        fp = (forecast - kr.start_value) / delta
        status = "on-track" if fp >= 1.0 else "at-risk" if fp >= at_risk_threshold else "off-track"
    return KeyResultStatus(
        objective_id=objective_id,
        kr_id=kr.id,
        title=kr.title,
        owner=kr.owner or owner,
        period=period or quarter_of(kr.due_date),
        start_value=kr.start_value,
        target=kr.target,
        current=current,
        progress=float(progress),
        expected=expected,
        forecast=None if forecast is None else float(forecast),
        forecast_progress=None if forecast is None else float((forecast - kr.start_value) / delta),
        status=status,
        method=used,
        weight=kr.weight,
        due_date=kr.due_date,
    )


def _forecast(kr: KeyResultSpec, points: list[CheckIn], method: str) -> tuple[float, str]:
    """Value at the due date from a linear trend: start -> latest, or OLS through start + check-ins."""
    due = (kr.due_date - kr.start_date).days
    xs = np.array([0.0] + [(p.date - kr.start_date).days for p in points])
    ys = np.array([kr.start_value] + [p.value for p in points])
    if method == "fit" and len(np.unique(xs)) >= 3:
        fit = stats.linregress(xs, ys)
        return float(fit.intercept + fit.slope * due), "fit"
    slope = (ys[-1] - ys[0]) / xs[-1]
    return float(ys[0] + slope * due), "linear"


@dataclass
class ObjectiveStatus:
    """Roll-up of an objective: weighted mean progress (each KR clipped to [0, 1]) and worst status."""

    objective_id: str
    title: str
    progress: float
    expected: float
    status: str
    key_results: list[KeyResultStatus]


def assess_goals(
    goals: GoalsConfig,
    as_of: dt.date,
    method: Literal["linear", "fit"] = "linear",
    at_risk_threshold: float = 0.7,
) -> list[ObjectiveStatus]:
    """Assess every key result and roll them up per objective."""
    out = []
    for o in goals.objectives:
        krs = [
            assess_key_result(
                kr,
                as_of,
                objective_id=o.id,
                owner=o.owner,
                period=o.period,
                method=method,
                at_risk_threshold=at_risk_threshold,
            )
            for kr in o.key_results
        ]
        w = np.array([k.weight for k in krs])
        prog = float(np.average(np.clip([k.progress for k in krs], 0, 1), weights=w))
        exp = float(np.average([k.expected for k in krs], weights=w))
        worst = max((k.status for k in krs), key=_SEVERITY.index)
        out.append(ObjectiveStatus(o.id, o.title, prog, exp, worst, krs))
    return out
