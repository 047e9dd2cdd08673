"""`growthcurve report`: one self-contained HTML growth report, written to a file or served on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from growthcurve.errors import ConfigError

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `report` to the root CLI."""
    app.command("report")(report_cmd)


def report_cmd(
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("report.html"),
    db: Annotated[
        str | None,
        typer.Option("--store", "--db", help="store URL (default: the workspace store, GROWTHCURVE_STORE)"),
    ] = None,
    goals: Annotated[Path | None, typer.Option(help="goals YAML instead of the goal store")] = None,
    team: Annotated[Path | None, typer.Option(help="candidates CSV, as for `team score` (needs --criteria)")] = None,
    criteria: Annotated[Path | None, typer.Option(help="criteria YAML of --team (name, kind, weight)")] = None,
    training: Annotated[Path | None, typer.Option(help="pre/post scores CSV, as for `team training-effect`")] = None,
    as_of: Annotated[str | None, typer.Option(help="goal status date YYYY-MM-DD (default today)")] = None,
    serve: Annotated[bool, typer.Option(help="serve the report on 127.0.0.1 (rebuilt on every reload)")] = False,
    port: Annotated[int, typer.Option(help="port of --serve")] = 8765,
    progress: Annotated[bool, typer.Option(help="show a progress bar over the report's steps")] = True,
) -> None:
    """Growth curve of model quality, latest run report, served versions + A/B, goals and team in one page."""
    from growthcurve.report.build import ReportInputs, write_report

    if criteria is not None and team is None:
        raise ConfigError("--criteria goes with --team CANDIDATES.csv (the candidates it weighs)")
    if team is not None and criteria is None:
        raise ConfigError("--team needs --criteria CRITERIA.yaml (criterion, kind, weight), as `team score` does")
    for opt, path in (("--goals", goals), ("--team", team), ("--criteria", criteria), ("--training", training)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{opt} '{path}' is not a file")
    if out.is_dir():
        raise ConfigError(f"--out '{out}' is a folder: give an HTML file path such as {out / 'report.html'}")
    if db is not None:  # a store named on the command line must exist (the workspace store may be new)
        from growthcurve.store import open_existing

        open_existing(db).dispose()
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise ConfigError(f"--as-of '{as_of}' is not a date YYYY-MM-DD") from None
    inputs = ReportInputs(db=db, goals=goals, team=team, criteria=criteria, training=training, as_of=day)
    sock = None
    if serve:  # bind before the (slow) first build: a port in use fails at once
        from growthcurve.serving.launch import bind_socket

        sock = bind_socket("127.0.0.1", port)
    from growthcurve.store import masked_url, store_url

    console.print(f"reading the store {masked_url(store_url(db))}", highlight=False)
    rep = write_report(inputs, out, progress=progress)
    console.print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {len(rep.images)} charts)", highlight=False)
    for title in rep.empty_sections():
        console.print(f"[yellow]no data:[/] {title}", highlight=False)
    if sock is not None:
        from growthcurve.report.serve import report_app
        from growthcurve.serving.launch import serve_app

        console.print(f"serving the report on http://127.0.0.1:{port}/ (rebuilt on every reload; Ctrl+C stops)")
        serve_app(report_app(inputs), sock)
