"""`growthcurve runs list|show|compare` and `growthcurve models list|show`: read the run registry (every
finetune, tune, retrain, compress, ab analyze and plan allocate) and the model lineages in it, as tables that
fit any terminal, or as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError, DataError, GrowthcurveError
from growthcurve.store.registry import KINDS, STATUSES, RunRecord, compare_runs, flatten, get_run, list_runs

runs_app = typer.Typer(help="The run registry: list, show and compare recorded runs.", no_args_is_help=True)
models_app = typer.Typer(
    help="Model lineages: each model's versions (intents@v1, intents@v2, ...), parents, metrics, serving, decisions.",
    no_args_is_help=True,
)
console = Console()

_Db = Annotated[
    str | None, typer.Option("--store", "--db", help="store URL (default: the workspace store, GROWTHCURVE_STORE)")
]
_Json = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def register(app: typer.Typer) -> None:
    """Add the `runs` and `models` command groups to the root CLI."""
    app.add_typer(runs_app, name="runs")
    app.add_typer(models_app, name="models")


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
    from growthcurve.tables import Column, print_records

    _given(db)
    runs = list_runs(db, kind=_choice(kind, KINDS, "kind"), task=task, status=_choice(status, STATUSES, "status"))
    shown = runs[-limit:]
    if as_json:
        _print_json([r.to_dict() for r in shown])
        return
    if not runs:
        console.print(f"no runs recorded yet in the store {_where(db)} (growthcurve finetune records one)")
        return
    cols = [Column("id", key=True), Column("version", key=True)]
    cols += [Column(c) for c in ("kind", "name", "task", "status", "started (UTC)", "took", "result", "parent")]
    colour = {"finished": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
    rows = [
        [
            r.id,
            r.ref or "",
            r.kind,
            r.name or "",
            r.task or "",
            f"[{colour.get(r.status, 'white')}]{r.status}[/]",
            _when(r),
            _took(r),
            _headline(r),
            _parent(r, runs),
        ]
        for r in shown
    ]
    print_records(console, cols, rows, title=f"runs ({len(shown)} of {len(runs)}) in {_where(db)}")


def _given(db: str | None) -> None:
    """A store named with --store must exist: a typo is an error naming it, never an empty new file (the
    workspace store, when absent, just has nothing recorded yet)."""
    if db is not None:
        from growthcurve.store import open_existing

        open_existing(db).dispose()


def _where(db: str | None) -> str:
    from growthcurve.store import masked_url, store_url

    return masked_url(store_url(db))


def _parent(r: RunRecord, known: list[RunRecord]) -> str:
    """The parent run by its version name when it has one (``intents@v1``), else its id."""
    if not r.parent:
        return ""
    p = next((x for x in known if x.id == r.parent), None)
    return (p.ref if p is not None and p.ref else None) or r.parent


@runs_app.command("show")
def show_cmd(
    run: Annotated[str, typer.Argument(help="run id, unique id prefix, run folder or run name")],
    db: _Db = None,
    as_json: _Json = False,
) -> None:
    """One run: what ran, on which data and code, with which metrics, and where its artefact is."""
    _given(db)
    r = get_run(run, db)
    if as_json:
        _print_json(r.to_dict())
        return
    head = Table(title=f"run {r.id}" + (f" · {r.ref}" if r.ref else ""), show_header=False)
    head.add_column("field", style="bold")
    head.add_column("value", overflow="fold")
    for key in ("kind", "name", "task", "status", "code_version", "config_hash", "artefact", "parent"):
        head.add_row(key, _fmt(getattr(r, key)))
    if r.ref:
        head.add_row("model version", f"{r.ref} (fingerprint {r.fingerprint})")
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
    _given(db)
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
    mt = Table(title=f"metrics: {ra.ref or ra.id} (A) → {rb.ref or rb.id} (B)")
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


# ---- models: the lineages ----------------------------------------------------------------------------------


def _served(db: str | None) -> dict[str, dict[str, Any]]:
    """Per served fingerprint or version name: predictions, last served time, experiments (empty without data)."""
    import sqlalchemy as sa

    from growthcurve.store import open_existing, predictions, store_url

    try:
        engine = open_existing(store_url(db))
    except GrowthcurveError:
        return {}
    p = predictions.c
    out: dict[str, dict[str, Any]] = {}
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("predictions"):
                return {}
            q = sa.select(p.model_name, p.model_version, p.experiment, sa.func.count(), sa.func.max(p.ts)).group_by(
                p.model_name, p.model_version, p.experiment
            )
            for name, version, experiment, n, last in conn.execute(q):
                for key in (str(name), str(version)):
                    d = out.setdefault(key, {"predictions": 0, "last": None, "experiments": set()})
                    d["predictions"] += int(n)
                    d["last"] = max(x for x in (d["last"], last) if x is not None)
                    if experiment:
                        d["experiments"].add(str(experiment))
    finally:
        engine.dispose()
    return out


def _serving_of(r: RunRecord, served: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    return served.get(r.ref or "") or served.get(r.fingerprint or "")


@models_app.command("list")
def models_list_cmd(db: _Db = None, as_json: _Json = False) -> None:
    """Every model in the store: its versions, the latest one's result, and where it was served."""
    from growthcurve.store.lineage import list_models
    from growthcurve.tables import Column, print_records

    _given(db)
    models = list_models(db)
    served = _served(db)
    if as_json:
        _print_json([{"model": m.name, "task": m.task, "versions": [v.to_dict() for v in m.versions]} for m in models])
        return
    if not models:
        console.print(f"no model versions in the store {_where(db)} yet (a finished `growthcurve finetune` makes v1)")
        return
    cols = [Column("model", key=True), Column("versions", right=True), Column("latest"), Column("task")]
    cols += [Column("latest result"), Column("served")]
    rows = []
    for m in models:
        live = [v.ref for v in m.versions if v.ref and _serving_of(v, served)]
        rows.append(
            [
                m.name,
                str(len(m.versions)),
                m.latest.ref or "",
                m.task or "",
                _headline(m.latest),
                ", ".join(live) or "–",
            ]
        )
    print_records(console, cols, rows, title=f"models in {_where(db)}")


@models_app.command("show")
def models_show_cmd(
    model: Annotated[str, typer.Argument(help="a model name (intents) or one version (intents@v2)")],
    db: _Db = None,
    as_json: _Json = False,
) -> None:
    """A model's versions: parent, kind, result, run folder, where served, and the decisions that named them."""
    from growthcurve.store import list_decisions, open_current
    from growthcurve.store.lineage import list_models, model_versions
    from growthcurve.store.registry import get_version, is_ref
    from growthcurve.tables import Column, print_records

    _given(db)
    name = model.split("@", 1)[0] if is_ref(model) else model
    versions = [get_version(model, db)] if is_ref(model) else model_versions(name, db)
    if not versions:
        known = ", ".join(m.name for m in list_models(db)) or "none yet"
        raise DataError(f"no model '{model}' in the store {_where(db)} (models: {known})")
    by_id = {v.id: v for v in model_versions(name, db)}
    served = _served(db)
    try:
        engine = open_current(db)
        try:
            decisions = [d for d in list_decisions(engine) if str(d.get("variant") or "").startswith(f"{name}@v")]
        finally:
            engine.dispose()
    except GrowthcurveError:
        decisions = []
    if as_json:
        _print_json({"model": name, "versions": [v.to_dict() for v in versions], "decisions": decisions})
        return
    cols = [Column("version", key=True), Column("kind"), Column("parent"), Column("finished (UTC)")]
    cols += [Column("result"), Column("served"), Column("run folder")]
    rows = []
    for v in versions:
        live = _serving_of(v, served)
        where = "–"
        if live:
            exps = ", ".join(sorted(live["experiments"]))
            where = f"{live['predictions']} predictions" + (f" in {exps}" if exps else "")
        parent = by_id[v.parent].ref if v.parent in by_id else (v.parent or "")
        rows.append(
            [
                v.ref or "",
                v.kind,
                parent or "",
                v.finished_at.strftime("%Y-%m-%d %H:%M") if v.finished_at else "",
                _headline(v),
                where,
                v.artefact or "",
            ]
        )
    print_records(console, cols, rows, title=f"{name}: {len(versions)} version(s) in {_where(db)}")
    for d in decisions:
        when = d["ts"].strftime("%Y-%m-%d %H:%M") if hasattr(d["ts"], "strftime") else str(d["ts"])
        console.print(
            f"decision #{d['id']} {when}: {d['decision']} {d['variant']} in '{d['experiment']}' "
            f"by {d['decided_by']}: {d['why']}",
            highlight=False,
        )
