"""`growthcurve retrain RUN --feedback STORE_URL`: fine-tune the served run on its feedback, with rehearsal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError

console = Console()


def retrain_cmd(
    run: Annotated[Path, typer.Argument(help="the served run folder (its feedback is read from the store)")],
    feedback: Annotated[str, typer.Option("--feedback", help="SQLAlchemy URL of the store the service wrote")],
    out: Annotated[Path | None, typer.Option(help="new run folder (default: RUN-retrain-<time> beside RUN)")] = None,
    rehearsal: Annotated[float, typer.Option(help="fraction of the original training rows mixed in")] = 0.3,
    rehearsal_rows: Annotated[int | None, typer.Option(help="a number of original rows instead of a fraction")] = None,
    no_rehearsal: Annotated[bool, typer.Option("--no-rehearsal", help="train on the feedback rows only")] = False,
    method: Annotated[str, typer.Option(help="full, or lora (a LoRA adapter on the served weights)")] = "full",
    holdout: Annotated[float, typer.Option(help="fraction of usable feedback rows kept out to measure gain")] = 0.2,
    seed: Annotated[int, typer.Option(help="seed of the hold-out and rehearsal draws")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="fine-tuning override KEY=VALUE (e.g. train.epochs=2)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    reviewed: Annotated[
        str | None, typer.Option(help="also train on this review queue's decided labels (same store)")
    ] = None,
    review_weight: Annotated[int, typer.Option(min=1, help="times each reviewed row counts (feedback: 1)")] = 2,
) -> None:
    """Turn corrected labels and thumbs-up on the served model into training rows, fine-tune from the served
    run with rehearsal, and compare old and new on the original test split and on held-out feedback."""
    from growthcurve.growth.retrain import retrain

    if no_rehearsal and rehearsal_rows is not None:
        raise ConfigError("--no-rehearsal and --rehearsal-rows contradict each other: give one")
    res = retrain(
        run,
        feedback,
        out,
        rehearsal=0.0 if no_rehearsal else rehearsal,
        rehearsal_rows=rehearsal_rows,
        method=method,
        holdout=holdout,
        seed=seed,
        overrides=set_ or [],
        progress=not quiet,
        reviewed=reviewed,
        review_weight=review_weight,
    )
    rep = res.report
    fb = rep["feedback"]
    console.print(
        f"feedback on {rep['served_version']}: {fb['usable']} usable row(s) ({fb['corrected']} corrected, "
        f"{fb['confirmed']} confirmed, {fb['reviewed']} reviewed), {fb['trained_on']} trained on, "
        f"{fb['held_out']} held out; "
        f"{rep['rehearsal']['rows']} rehearsal row(s)",
        highlight=False,
    )
    for reason, n in fb["skipped"].items():
        console.print(f"  skipped {n}: {reason}", highlight=False)
    t = Table(title=f"old {run}  vs  new {res.run_dir}")
    for col in ("split", "rows", "old accuracy", "new accuracy", "Δ points", "old macro-F1", "new macro-F1"):
        t.add_column(col, justify="left" if col == "split" else "right")
    for name, key in (("original test (retention)", "retention"), ("held-out feedback (gain)", "gain")):
        m = rep.get(key)
        if m is None:
            t.add_row(name, "0", "–", "–", "–", "–", "–")
            continue
        o, n = m["old"], m["new"]
        t.add_row(
            name, str(m["n"]), f"{o['accuracy']:.4f}", f"{n['accuracy']:.4f}", f"{m['delta_points']:+.2f}",
            f"{o['macro_f1']:.4f}", f"{n['macro_f1']:.4f}",
        )  # fmt: skip
    console.print(t)
    for w in res.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    rid = f" (registry id {res.registry_id})" if res.registry_id else ""
    console.print(f"new run {res.run_dir}{rid}; report {res.run_dir / 'retrain.json'}", highlight=False)
    console.print(f"serve it as variant B: {res.serve_command}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `retrain` to the root CLI."""
    app.command("retrain")(retrain_cmd)
