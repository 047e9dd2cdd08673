"""PNG charts for planning: the simulated-gain histogram and the goal burn-up chart."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from growthcurve.atomic import atomic_path  # noqa: E402
from growthcurve.planning.goals import GoalsConfig, assess_key_result, checkins_of  # noqa: E402
from growthcurve.planning.risk import RiskResult  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def risk_histogram(totals: np.ndarray, result: RiskResult, path: str | Path) -> Path:
    """Histogram of simulated total gain with P10/P50/P90 and the target marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(totals, bins=60, color="#4C72B0", alpha=0.85)
    for q, label, style in ((result.p10, "P10", ":"), (result.p50, "P50", "-"), (result.p90, "P90", ":")):
        ax.axvline(q, color="black", linestyle=style, linewidth=1)
        ax.text(q, ax.get_ylim()[1] * 0.95, f" {label}", fontsize=8)
    if result.target is not None:
        ax.axvline(
            result.target,
            color="#C44E52",
            linewidth=2,
            label=f"target {result.target:g}: P(hit) = {result.prob_hit_target:.1%}",
        )
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("total gain of the plan")
    ax.set_ylabel(f"count of {result.n_sims:,} simulations")
    ax.set_title(f"Simulated plan outcome (seed {result.seed})")
    return _save(fig, path)


def burnup_chart(goals: GoalsConfig, as_of: dt.date, path: str | Path, method: str = "linear") -> Path:
    """One panel per key result: check-ins, the ideal line start->target, forecast to the due date."""
    krs = [(o, kr) for o in goals.objectives for kr in o.key_results]
    cols = min(3, max(1, len(krs)))
    rows = math.ceil(len(krs) / cols) if krs else 1
    # constrained layout keeps the figure title above the panels (tight_layout let it overlap the top row)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False, layout="constrained")
    colors = {
        "on-track": "#55A868",
        "done": "#55A868",
        "at-risk": "#DD8452",
        "off-track": "#C44E52",
        "missed": "#C44E52",
    }
    for ax, (o, kr) in zip(axes.flat, krs, strict=False):
        st = assess_key_result(kr, as_of, objective_id=o.id, method=method)  # type: ignore[arg-type]
        pts = [p for p in checkins_of(kr, as_of) if p.date >= kr.start_date]
        xs = [kr.start_date] + [p.date for p in pts]
        ys = [kr.start_value] + [p.value for p in pts]
        ax.plot(
            [kr.start_date, kr.due_date],
            [kr.start_value, kr.target],
            color="grey",
            linestyle="--",
            linewidth=1,
            label="ideal",
        )
        ax.axhline(kr.target, color="grey", linewidth=0.6)
        color = colors.get(st.status, "#4C72B0")
        ax.plot(xs, ys, marker="o", markersize=3, color=color, label="actual")
        if st.forecast is not None and st.status not in ("done", "missed"):
            ax.plot([xs[-1], kr.due_date], [ys[-1], st.forecast], color=color, linestyle=":", label="forecast")
        ax.axvline(as_of, color="black", linewidth=0.6)
        ax.set_title(f"{o.id}/{kr.id}: {st.status} ({st.progress:.0%})", fontsize=9)
        ax.tick_params(labelsize=7)
        for label in ax.get_xticklabels():
            label.set_rotation(30)
    for ax in list(axes.flat)[len(krs) :]:
        ax.axis("off")
    if krs:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Goal burn-up as of {as_of.isoformat()}")
    return _save(fig, path)
