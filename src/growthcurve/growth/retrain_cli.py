"""`growthcurve retrain RUN`: fine-tune the served version on its feedback in the store, with rehearsal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from growthcurve.errors import ConfigError

console = Console()


def retrain_cmd(
    run: Annotated[str, typer.Argument(help="the served version (intents@v2) or its run folder")],
    feedback: Annotated[
        str | None,
        typer.Option("--store", "--feedback", help="store the service wrote (default: the workspace store)"),
    ] = None,
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
    drop_test_overlap: Annotated[
        bool, typer.Option(help="drop feedback texts that are in the test split (else they are refused)")
    ] = False,
    reviewed: Annotated[
        str | None, typer.Option(help="also train on this review queue's decided labels (same store)")
    ] = None,
    review_weight: Annotated[int, typer.Option(min=1, help="times each reviewed row counts (feedback: 1)")] = 2,
) -> None:
    """Turn corrected labels and thumbs-up on the served model into training rows, fine-tune from the served
    run with rehearsal, and compare old and new on the original test split and on held-out feedback."""
    from growthcurve.growth.retrain import retrain
    from growthcurve.store.lineage import resolve_run

    if no_rehearsal and rehearsal_rows is not None:
        raise ConfigError("--no-rehearsal and --rehearsal-rows contradict each other: give one")
    folder = resolve_run(run, feedback)
    res = retrain(
        folder,
        feedback,
        out,
        rehearsal=0.0 if no_rehearsal else rehearsal,
        rehearsal_rows=rehearsal_rows,
        method=method,
        holdout=holdout,
        seed=seed,
        overrides=set_ or [],
        progress=not quiet,
        drop_test_overlap=drop_test_overlap,
        reviewed=reviewed,
        review_weight=review_weight,
    )
    rep = res.report
    fb = rep["feedback"]
    old_name, new_name = rep.get("served_ref") or str(folder), rep.get("new_ref") or str(res.run_dir)
    console.print(
        f"feedback on {old_name} ({rep['served_version']}): {fb['usable']} usable row(s) ({fb['corrected']} "
        f"corrected, {fb['confirmed']} confirmed, {fb['reviewed']} reviewed), {fb['trained_on']} trained on, "
        f"{fb['held_out']} held out; "
        f"{rep['rehearsal']['rows']} rehearsal row(s)",
        highlight=False,
    )
    for reason, n in fb["skipped"].items():
        console.print(f"  skipped {n}: {reason}", highlight=False)
    from growthcurve.tables import Column, print_records

    cols = [Column("split", key=True)]
    cols += [
        Column(c, right=True) for c in ("rows", "old acc.", "new acc.", "Δ points", "old macro-F1", "new macro-F1")
    ]
    rows = []
    for name, key in (("original test (retention)", "retention"), ("held-out feedback (gain)", "gain")):
        m = rep.get(key)
        if m is None:
            rows.append([name, "0", "–", "–", "–", "–", "–"])
            continue
        o, n = m["old"], m["new"]
        rows.append([name, str(m["n"]), f"{o['accuracy']:.4f}", f"{n['accuracy']:.4f}", f"{m['delta_points']:+.2f}",
                     f"{o['macro_f1']:.4f}", f"{n['macro_f1']:.4f}"])  # fmt: skip
    print_records(console, cols, rows, title=f"old {old_name}  vs  new {new_name}")
    for w in res.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    console.print(f"new version {new_name} in {res.run_dir}; report {res.run_dir / 'retrain.json'}", highlight=False)
    if rep["worse_on"]:
        console.print(
            f"[bold red]worse:[/] {new_name} scores below {old_name} on the {' and the '.join(rep['worse_on'])}: "
            "do not serve it as it is (more feedback, another --rehearsal or --set train.* may help)",
            highlight=False,
        )
    else:
        console.print(f"serve it against {old_name} as variant B: {res.serve_command}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `retrain` to the root CLI."""
    app.command("retrain")(retrain_cmd)
