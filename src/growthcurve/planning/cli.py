"""`growthcurve plan ...`: allocate, risk, goals (add/update/status) and review."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from growthcurve.atomic import write_json, write_text
from growthcurve.cliopts import in_range, probability
from growthcurve.errors import ConfigError

if TYPE_CHECKING:
    from growthcurve.planning.portfolio import Portfolio

console = Console()
plan_app = typer.Typer(
    help="Strategic planning: portfolio allocation, Monte Carlo risk, goals, review.", no_args_is_help=True
)
goals_app = typer.Typer(
    help="Goals (OKRs): store definitions and check-ins, show status and a burn-up chart.",
    no_args_is_help=True,
)
plan_app.add_typer(goals_app, name="goals")

_CAP_HELP = "RESOURCE=N or RESOURCE@QUARTER=N; repeatable (overrides the file's capacities)"


def _date(value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"date '{value}' is not YYYY-MM-DD") from None


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}g}"


@plan_app.command("allocate")
def allocate_cmd(
    projects: Path = typer.Argument(..., help="projects CSV or portfolio YAML"),
    capacity: list[str] = typer.Option([], "--capacity", "-c", help=_CAP_HELP),
    overrides: list[str] = typer.Option([], "--set", help="YAML override KEY=VALUE"),
    objective: str = typer.Option("expected", help="expected | cvar (mean - lambda * CVaR of the loss)"),
    risk_lambda: float = typer.Option(0.5, "--lambda", help="risk aversion for --objective cvar", callback=in_range(0)),
    alpha: float = typer.Option(0.1, help="CVaR tail fraction", callback=probability()),
    scenarios: int = typer.Option(500, help="sampled scenarios for the CVaR objective", min=10),
    seed: int = typer.Option(0, min=0),
    gap: float = typer.Option(1e-6, help="relative MIP gap at which HiGHS stops", callback=in_range(0, 1)),
    time_limit: float = typer.Option(60.0, help="seconds", callback=in_range(0, lo_open=True)),
    what_if: bool = typer.Option(True, "--what-if/--no-what-if", help="re-solve with capacities +-10/20%"),
    out: Path = typer.Option(Path("runs/plan"), help="output folder (plan.json, what_if.json)"),
) -> None:
    """Choose the projects to fund with a MILP (HiGHS); report resource use, shadow prices and what-ifs."""
    from growthcurve.planning.allocate import PortfolioAllocator
    from growthcurve.planning.portfolio import load_portfolio

    pf = load_portfolio(projects, capacity, overrides)
    alloc = PortfolioAllocator(objective, risk_lambda, alpha, scenarios, seed, gap, time_limit).fit(pf)  # type: ignore[arg-type]
    r = alloc.result_
    table = Table(title=f"Chosen projects ({r.status}, gap {r.mip_gap:.2g}, {r.seconds:.2f} s)")
    for col in ("project", "level", "expected gain"):
        table.add_column(col, justify="right" if col != "project" else "left")
    for i, lv in enumerate(r.levels):
        if lv:
            table.add_row(pf.names[i], str(lv), _fmt(pf.expected_gain[i] * lv))
    table.add_row("[bold]total[/]", "", f"[bold]{r.expected_gain:.4g}[/]")
    console.print(table)
    if r.cvar_loss is not None:
        console.print(
            f"objective E[gain] - {risk_lambda:g} * CVaR{alpha:g}(loss) = {r.objective_value:.4g} "
            f"(CVaR of loss {r.cvar_loss:.4g}, i.e. mean of the worst {alpha:.0%} gains "
            f"{-r.cvar_loss:.4g})",
            markup=False,
            highlight=False,
        )
    res_table = Table(title="Resource use (shadow price: gain per extra unit, LP relaxation)")
    for col in ("resource", "used", "capacity", "slack", "binding", "shadow price"):
        res_table.add_column(col, justify="left" if col == "resource" else "right")
    for u in r.resources:
        res_table.add_row(
            u.label,
            _fmt(u.used),
            _fmt(u.capacity),
            _fmt(u.slack),
            "yes" if u.binding else "",
            _fmt(u.shadow_price),
        )
    console.print(res_table)
    payload = {"names": pf.names, **r.to_dict()}
    if what_if and pf.rows:
        rows = alloc.what_if()
        wt = Table(title="What-if: best plan when one capacity changes")
        for col in ("resource", "change", "capacity", "objective", "delta", "added", "removed"):
            wt.add_column(col)
        for w in rows:
            wt.add_row(
                w.label,
                f"{w.change:+.0%}",
                _fmt(w.capacity),
                _fmt(w.objective_value) if w.status != "infeasible" else "infeasible",
                _fmt(w.delta),
                ", ".join(w.added),
                ", ".join(w.removed),
            )
        console.print(wt)
        payload["what_if"] = [w.__dict__ for w in rows]
    write_json(out / "plan.json", payload)
    console.print(f"wrote {out / 'plan.json'}")
    from growthcurve.store.registry import record_finished

    settings: dict[str, Any] = {
        "projects": str(projects),
        "capacity": capacity,
        "set": overrides,
        "objective": objective,
    }
    settings.update({"lambda": risk_lambda, "alpha": alpha, "scenarios": scenarios, "seed": seed, "gap": gap})
    chosen = [pf.names[i] for i, lv in enumerate(r.levels) if lv]
    summary = {"status": r.status, "expected_gain": r.expected_gain, "objective": r.objective_value}
    summary.update({"cvar_loss": r.cvar_loss, "chosen": len(chosen), "projects": chosen})
    record_finished(
        "plan-allocate", name=Path(projects).stem, config=settings, data_files=[projects], metrics=summary, artefact=out
    )


def _plan_levels(projects: Path, capacity: list[str], plan: Path | None) -> tuple[Portfolio, np.ndarray]:
    from growthcurve.planning.allocate import PortfolioAllocator
    from growthcurve.planning.portfolio import load_portfolio
    from growthcurve.planning.review import read_plan_levels

    pf = load_portfolio(projects, capacity)
    if plan is not None:
        return pf, read_plan_levels(plan, pf)
    return pf, np.array(PortfolioAllocator(shadow_prices=False).fit(pf).result_.levels)


@plan_app.command("risk")
def risk_cmd(
    projects: Path = typer.Argument(..., help="projects CSV or portfolio YAML"),
    plan: Path | None = typer.Option(None, help="plan.json from `plan allocate` (default: solve for max E[gain])"),
    capacity: list[str] = typer.Option([], "--capacity", "-c", help=_CAP_HELP),
    target: float | None = typer.Option(None, help="gain target: report P(total >= target)", callback=in_range()),
    sims: int = typer.Option(20_000, help="number of simulations", min=1),
    seed: int = typer.Option(0, min=0),
    out: Path = typer.Option(Path("runs/plan"), help="output folder (risk.json, risk_hist.png)"),
) -> None:
    """Monte Carlo outcome of a plan: P10/P50/P90, probability of hitting a target, histogram PNG."""
    from growthcurve.planning.plots import risk_histogram
    from growthcurve.planning.risk import PlanRiskSimulator

    pf, levels = _plan_levels(projects, capacity, plan)
    sim = PlanRiskSimulator(sims, seed, target).fit(pf, levels)
    r = sim.result_
    t = Table(title=f"Simulated total gain ({sims:,} runs, seed {seed})")
    for col in ("mean", "sd", "P10", "P50", "P90", "P(>= target)"):
        t.add_column(col, justify="right")
    se = r.prob_hit_target_se
    hit = "-" if r.prob_hit_target is None or se is None else f"{r.prob_hit_target:.1%} +- {1.96 * se:.1%}"
    t.add_row(_fmt(r.mean), _fmt(r.sd), _fmt(r.p10), _fmt(r.p50), _fmt(r.p90), hit)
    console.print(t)
    write_json(out / "risk.json", {"chosen": [pf.names[i] for i in np.flatnonzero(levels)], **r.to_dict()})
    png = risk_histogram(sim.totals_, r, out / "risk_hist.png")
    console.print(f"wrote {out / 'risk.json'} and {png}")


@plan_app.command("review")
def review_cmd(
    projects: Path = typer.Argument(..., help="projects CSV or portfolio YAML"),
    actuals: Path = typer.Argument(..., help="CSV: name, actual_gain, actual_<resource>..."),
    plan: Path | None = typer.Option(None, help="plan.json from `plan allocate` (default: projects in actuals)"),
    capacity: list[str] = typer.Option([], "--capacity", "-c", help=_CAP_HELP),
    out: Path = typer.Option(Path("runs/plan"), help="output folder (review.json)"),
) -> None:
    """Planned vs actual gain and resource use per project after the period."""
    from growthcurve.planning.portfolio import load_portfolio
    from growthcurve.planning.review import read_actuals, read_plan_levels, review_plan

    pf = load_portfolio(projects, capacity)
    levels = read_plan_levels(plan, pf) if plan is not None else None
    rv = review_plan(pf, read_actuals(actuals), levels)
    resources = list(rv.planned_use)
    t = Table(title="Plan review: planned (expected) vs actual")
    t.add_column("project")
    for col in ["planned gain", "actual gain", "diff"] + [f"{r} plan/actual" for r in resources] + ["note"]:
        t.add_column(col, justify="right")
    for p in rv.projects:
        t.add_row(
            p.name,
            _fmt(p.planned_gain),
            _fmt(p.actual_gain),
            _fmt(p.gain_diff),
            *[f"{_fmt(p.planned_use[r])}/{_fmt(p.actual_use[r])}" for r in resources],
            p.note,
        )
    t.add_row(
        "[bold]total[/]",
        _fmt(rv.planned_total),
        _fmt(rv.actual_total),
        _fmt(rv.actual_total - rv.planned_total),
        *[f"{_fmt(rv.planned_use[r])}/{_fmt(rv.actual_use[r])}" for r in resources],
        "",
    )
    console.print(t)
    if rv.actual_percentile is not None:
        console.print(
            f"the actual total sits at the {rv.actual_percentile:.0f}th percentile of the plan's simulated outcomes"
        )
    write_json(out / "review.json", rv.to_dict())
    console.print(f"wrote {out / 'review.json'}")


@goals_app.command("add")
def goals_add_cmd(
    goals: Path = typer.Argument(..., help="goals YAML (objectives with key results)"),
    db: str | None = typer.Option(None, help="SQLAlchemy URL (default: $GROWTHCURVE_DB_URL or growthcurve.db)"),
    as_of: str | None = typer.Option(None, help="date for undated 'current' values (YYYY-MM-DD; default today)"),
) -> None:
    """Store (or replace) goal definitions and their check-ins."""
    from growthcurve.planning.goals import load_goals
    from growthcurve.planning.store import GoalStore

    cfg = load_goals(goals)
    day = _date(as_of)  # every input checked before the store (a file) is created
    store = GoalStore(db)
    n = store.save_goals(cfg, day)
    n_kr = sum(len(o.key_results) for o in cfg.objectives)
    console.print(f"stored {len(cfg.objectives)} objectives, {n_kr} key results, {n} check-ins in {store.url}")


@goals_app.command("update")
def goals_update_cmd(
    key_result: str = typer.Argument(..., help="OBJECTIVE/KR id, e.g. O1/KR2"),
    value: float = typer.Argument(..., help="the measured value", callback=in_range()),
    date: str | None = typer.Option(None, help="YYYY-MM-DD (default today)"),
    db: str | None = typer.Option(None, help="SQLAlchemy URL"),
) -> None:
    """Record a check-in (the value of a key result on a date)."""
    from growthcurve.planning.store import GoalStore

    oid, sep, kid = key_result.partition("/")
    if not sep or not oid or not kid:
        raise ConfigError(f"key result '{key_result}' must be OBJECTIVE/KR, e.g. O1/KR2")
    day = _date(date)  # before the store (a file) is created
    from growthcurve.dbcheck import require_existing_database
    from growthcurve.planning.store import default_db_url

    # a check-in needs stored goals: a missing database file is a typo, not a store to create
    require_existing_database(db or default_db_url(), "--db")
    GoalStore(db).add_checkin(oid, kid, value, day)
    console.print(f"recorded {key_result} = {value:g} on {day.isoformat()}")


@goals_app.command("status")
def goals_status_cmd(
    goals: Path | None = typer.Option(None, "--goals", help="read this goals YAML instead of the store"),
    db: str | None = typer.Option(None, help="SQLAlchemy URL"),
    as_of: str | None = typer.Option(None, help="evaluate at this date (YYYY-MM-DD; default today)"),
    method: str = typer.Option("linear", help="trend: linear (start -> latest) or fit (OLS over check-ins)"),
    at_risk: float = typer.Option(
        0.7, help="forecast share of the target below which a KR is off-track", callback=in_range(0, 1, lo_open=True)
    ),
    out: Path = typer.Option(Path("runs/goals"), help="output folder (status.json, status.csv, burnup.png)"),
) -> None:
    """Progress, expected-by-now, forecast and on-track/at-risk status per key result, with a burn-up PNG."""
    import csv
    import io

    from growthcurve.planning.goals import assess_goals, load_goals
    from growthcurve.planning.plots import burnup_chart
    from growthcurve.planning.store import GoalStore

    if method not in ("linear", "fit"):
        raise ConfigError(f"--method must be linear or fit, not '{method}'")
    day = _date(as_of)
    cfg = load_goals(goals) if goals is not None else GoalStore(db, read_only=True).load_goals()
    if not cfg.objectives:
        raise ConfigError("no goals stored yet; run `growthcurve plan goals add GOALS.yaml` or pass --goals FILE")
    result = assess_goals(cfg, day, method, at_risk)  # type: ignore[arg-type]
    t = Table(title=f"Goals as of {day.isoformat()} ({method} trend)")
    for col in ("objective/KR", "owner", "current", "target", "progress", "expected", "forecast", "status"):
        t.add_column(col, justify="left" if col in ("objective/KR", "owner", "status") else "right")
    styles = {"on-track": "green", "done": "green", "at-risk": "yellow", "off-track": "red", "missed": "red"}
    rows = []
    for o in result:
        t.add_row(
            f"[bold]{o.objective_id}[/]",
            "",
            "",
            "",
            f"{o.progress:.0%}",
            f"{o.expected:.0%}",
            "",
            f"[{styles.get(o.status, 'white')}]{o.status}[/]",
        )
        for k in o.key_results:
            t.add_row(
                f"  {k.kr_id}",
                k.owner or "",
                _fmt(k.current),
                _fmt(k.target),
                f"{k.progress:.0%}",
                f"{k.expected:.0%}",
                _fmt(k.forecast),
                f"[{styles.get(k.status, 'white')}]{k.status}[/]",
            )
            rows.append(k.to_dict())
    console.print(t)
    write_json(out / "status.json", {"as_of": day.isoformat(), "method": method, "key_results": rows})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "status.csv", buf.getvalue())
    png = burnup_chart(cfg, day, out / "burnup.png", method)
    console.print(f"wrote {out / 'status.json'}, {out / 'status.csv'} and {png}")


def register(app: typer.Typer) -> None:
    """Add `growthcurve plan ...` to the root CLI."""
    app.add_typer(plan_app, name="plan")
