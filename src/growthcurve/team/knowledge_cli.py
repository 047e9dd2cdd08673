"""`growthcurve card RUN`, `growthcurve decide EXPERIMENT ...` and `growthcurve decisions list`: what each
model is and why the team shipped or rejected a version, written down where the next person looks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from growthcurve.errors import ConfigError
from growthcurve.serving.launch import Store
from growthcurve.store.lineage import run_folder

console = Console()
decisions_app = typer.Typer(help="The decision log: who shipped or rejected what, why, on which evidence.")


def register(app: typer.Typer) -> None:
    """Add `card`, `decide` and the `decisions` group to the root CLI."""
    app.command("card")(card_cmd)
    app.command("decide")(decide_cmd)
    app.add_typer(decisions_app, name="decisions")


def card_cmd(
    run: Annotated[
        Path, typer.Argument(parser=run_folder, metavar="RUN", help="run folder or model version (intents@v2)")
    ],
) -> None:
    """(Re)write RUN/README.md, the run's model card in the Hugging Face format."""
    from growthcurve.training.modelcard import write_model_card

    path = write_model_card(run, warn=lambda m: console.print(f"[yellow]warning:[/] {m}", highlight=False))
    console.print(f"wrote {path}", highlight=False)


def decide_cmd(
    experiment: Annotated[str, typer.Argument(help="experiment name in the store's experiment_events")],
    why: Annotated[str, typer.Option(help="why: the reasoning a later reader needs")] = "",
    ship: Annotated[str | None, typer.Option(help="ship this arm (its version, e.g. intents@v2, or its role)")] = None,
    reject: Annotated[str | None, typer.Option(help="reject this arm (its version or its role)")] = None,
    keep_running: Annotated[
        bool, typer.Option("--continue", help="keep the experiment running (no variant decided)")
    ] = False,
    store: Store = None,
    by: Annotated[str | None, typer.Option(help="who decided (default: the OS user)")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="analyse with this A/B YAML instead of the experiment's stored analysis (said in the log)"),
    ] = None,
    run: Annotated[list[Path] | None, typer.Option(help="a run folder compared (repeatable)")] = None,
    variant: Annotated[str | None, typer.Option(help="with --continue: the variant the note is about")] = None,
) -> None:
    """Recompute the A/B result from the store (the same analysis as `ab analyze EXPERIMENT`) and log the
    decision with it as evidence."""
    from growthcurve.team.knowledge import decide, evidence_line

    chosen: list[tuple[str, str | None]] = [(d, v) for d, v in (("ship", ship), ("reject", reject)) if v is not None]
    if keep_running:
        chosen.append(("continue", variant))
    if len(chosen) != 1:
        raise ConfigError("give exactly one of --ship VARIANT, --reject VARIANT or --continue")
    if not why.strip():
        raise ConfigError('say why with --why "..." : the log is read by people who were not in the room')
    decision, var = chosen[0]
    key, evidence = decide(experiment, decision, var, why, store, by, config, run)
    console.print(
        f"logged decision #{key}: {decision} {var or ''} in '{experiment}' · {evidence_line(evidence, var)}",
        highlight=False,
    )
    console.print(f"analysis: {evidence['analysis']['source']}; store {evidence['store']}", highlight=False)


@decisions_app.command("list")
def list_cmd(
    experiment: Annotated[str | None, typer.Option(help="only this experiment")] = None,
    store: Store = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the log as JSON")] = None,
) -> None:
    """The decisions, oldest first, with the evidence in one line each."""
    from growthcurve.atomic import write_text
    from growthcurve.store import list_decisions, open_current
    from growthcurve.tables import Column, print_records
    from growthcurve.team.knowledge import evidence_line

    engine = open_current(store)
    try:
        rows = list_decisions(engine, experiment)
    finally:
        engine.dispose()
    cols = [Column("id", right=True, key=True), Column("when (UTC)", key=True), Column("experiment", key=True)]
    cols += [Column(c) for c in ("decision", "variant", "by", "why", "evidence")]
    records = [
        [
            f"#{r['id']}",
            r["ts"].strftime("%Y-%m-%d %H:%M") if hasattr(r["ts"], "strftime") else str(r["ts"]),
            r["experiment"],
            r["decision"],
            r["variant"] or "–",
            r["decided_by"],
            r["why"],
            evidence_line(r["evidence"], r["variant"]),
        ]
        for r in rows
    ]
    if rows:
        print_records(console, cols, records, title="Decision log" + (f" · {experiment}" if experiment else ""))
    else:
        console.print("no decisions logged yet" + (f" for '{experiment}'" if experiment else ""))
    if json_out:
        write_text(json_out, json.dumps(rows, indent=2, default=str))
