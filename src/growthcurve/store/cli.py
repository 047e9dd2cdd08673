"""`growthcurve runs list|show|compare`: read the run registry (every finetune, tune, retrain, ab analyze and
plan allocate) as rich tables, or as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError
from growthcurve.store.registry import KINDS, STATUSES, RunRecord, compare_runs, flatten, get_run, list_runs

runs_app = typer.Typer(help="The run registry: list, show and compare recorded runs.", no_args_is_help=True)
console = Console()

_Db = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: GROWTHCURVE_DB_URL or sqlite)")]
_Json = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def register(app: typer.Typer) -> None:
    """Add the `runs` command group to the root CLI."""
    app.add_typer(runs_app, name="runs")


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        raise ConfigError(f"--{what} must be one of {', '.join(allowed)} (got '{value}')")
    return value


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _headline(r: RunRecord) -> str:
    """The one metric a list shows: test accuracy, else dev accuracy, else the first numeric summary value."""
    flat = flatten(r.metrics)
    for key in ("test.accuracy", "dev.accuracy", "test.entity_f1", "dev.entity_f1"):
        if isinstance(flat.get(key), (int, float)):
            return f"{key} {flat[key]:.4f}"
    for key, v in flat.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{key} {_fmt(v)}"
    return "error" if "error" in r.metrics else ""


def _when(r: RunRecord) -> str:
    return r.started_at.strftime("%Y-%m-%d %H:%M:%S")


def _took(r: RunRecord) -> str:
    if r.finished_at is None:
        return ""
    return f"{(r.finished_at - r.started_at).total_seconds():.0f}s"


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@runs_app.command("list")
def list_cmd(
    kind: Annotated[str | None, typer.Option(help=f"only this kind: {', '.join(KINDS)}")] = None,
    task: Annotated[str | None, typer.Option(help="only this task, e.g. text-classification")] = None,
    status: Annotated[str | None, typer.Option(help=f"only this status: {', '.join(STATUSES)}")] = None,
    limit: Annotated[int, typer.Option(min=1, help="show the newest N runs")] = 50,
    db: _Db = None,
    as_json: _Json = False,
) -> None:
    """The recorded runs, oldest first (the newest --limit of them)."""
    runs = list_runs(db, kind=_choice(kind, KINDS, "kind"), task=task, status=_choice(status, STATUSES, "status"))
    shown = runs[-limit:]
    if as_json:
        _print_json([r.to_dict() for r in shown])
        return
    if not runs:
        console.print("no runs recorded yet (growthcurve finetune records one)")
        return
    table = Table(title=f"runs ({len(shown)} of {len(runs)})")
    table.add_column("id", no_wrap=True)  # the one thing people copy from this table: never folded
    for col in ("kind", "name", "task", "status", "started (UTC)", "took", "result", "config", "parent"):
        table.add_column(col, overflow="fold")
    colour = {"finished": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
    for r in shown:
        table.add_row(
            r.id,
            r.kind,
            r.name or "",
            r.task or "",
            f"[{colour.get(r.status, 'white')}]{r.status}[/]",
            _when(r),
            _took(r),
            _headline(r),
            r.config_hash[:8],
            r.parent or "",
        )
    console.print(table)


@runs_app.command("show")
def show_cmd(
    run: Annotated[str, typer.Argument(help="run id, unique id prefix, run folder or run name")],
    db: _Db = None,
    as_json: _Json = False,
) -> None:
    """One run: what ran, on which data and code, with which metrics, and where its artefact is."""
    r = get_run(run, db)
    if as_json:
        _print_json(r.to_dict())
        return
    head = Table(title=f"run {r.id}", show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value", overflow="fold")
    for key in ("kind", "name", "task", "status", "code_version", "config_hash", "artefact", "parent"):
        head.add_row(key, _fmt(getattr(r, key)))
    head.add_row("started (UTC)", _when(r))
    head.add_row("finished (UTC)", r.finished_at.strftime("%Y-%m-%d %H:%M:%S") if r.finished_at else "–")
    console.print(head)
    flat = {k: v for k, v in flatten(r.metrics).items() if not isinstance(v, list)}
    if flat:
        mt = Table(title="metrics")
        mt.add_column("metric")
        mt.add_column("value", justify="right", overflow="fold")
        for k, v in flat.items():
            mt.add_row(k, _fmt(v))
        console.print(mt)
    if r.data_fingerprint:
        dt_ = Table(title="data fingerprint")
        dt_.add_column("file", overflow="fold")
        dt_.add_column("sha256", overflow="fold")
        for path, sha in r.data_fingerprint.items():
            dt_.add_row(path, sha)
        console.print(dt_)


def _short(sha: str | None) -> str:
    if sha is None:
        return "(absent)"
    return sha[:4] + "…" if len(sha) > 4 and not sha.startswith(("dir:", "missing")) else sha[:8]


@runs_app.command("compare")
def compare_cmd(
    a: Annotated[str, typer.Argument(help="the baseline run (id, prefix, run folder or name)")],
    b: Annotated[str, typer.Argument(help="the run compared with it")],
    db: _Db = None,
    as_json: _Json = False,
) -> None:
    """Metric deltas (B − A), the config keys that changed, and any input file whose contents changed."""
    ra, rb = get_run(a, db), get_run(b, db)
    cmp = compare_runs(ra, rb)
    if as_json:
        _print_json(cmp)
        return
    for d in cmp["data"]:
        if d["changed"]:
            file = Path(d["path_b"] or d["path_a"]).name
            name = file if d["path_a"] == d["path_b"] else f"{file} ({d['path_a']} → {d['path_b']})"
            console.print(
                f"[bold white on red] data changed: [/] {name} sha256 {_short(d['a'])} → {_short(d['b'])}",
                highlight=False,
            )
    mt = Table(title=f"metrics: {ra.id} (A) → {rb.id} (B)")
    for col in ("metric", "A", "B", "B − A"):
        mt.add_column(col, justify="left" if col == "metric" else "right")
    for m in cmp["metrics"]:
        d = m["delta"]
        delta = "–" if d is None else f"[{'green' if d > 0 else 'red' if d < 0 else 'white'}]{d:+.4g}[/]"
        mt.add_row(m["key"], _fmt(m["a"]), _fmt(m["b"]), delta)
    console.print(mt if cmp["metrics"] else "no numeric metrics to compare")
    if cmp["config"]:
        ct = Table(title="config: changed keys")
        for col in ("key", "A", "B"):
            ct.add_column(col, overflow="fold")
        for c in cmp["config"]:
            ct.add_row(c["key"], _fmt(c["a"]), _fmt(c["b"]))
        console.print(ct)
    else:
        console.print(f"same config (hash {ra.config_hash})")
    if not cmp["data_changed"]:
        console.print("data unchanged" if cmp["data"] else "no input files recorded")
    if cmp["code_version"]["a"] != cmp["code_version"]["b"]:
        console.print(f"code changed: {cmp['code_version']['a']} → {cmp['code_version']['b']}", highlight=False)
