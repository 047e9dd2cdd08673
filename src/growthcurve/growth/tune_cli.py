"""`growthcurve tune CONFIG --trials N`: Optuna hyperparameter search over a finetune config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def register(app: typer.Typer) -> None:
    """Add the `tune` command to the root CLI."""
    app.command("tune")(tune_cmd)


def tune_cmd(
    config: Annotated[Path, typer.Argument(help="finetune YAML with a search: block (and optional metric:)")],
    trials: Annotated[
        int, typer.Option("--trials", "-n", min=1, help="complete + pruned trials the study should hold")
    ] = 20,
    search: Annotated[
        Path | None, typer.Option("--search", help="YAML file with the search space (overrides search:)")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="dev metric to optimise (default: metric: or early_stopping_metric)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default runs/tune-<study>/)")] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="study database URL (default: next to the growthcurve store; postgresql://... to share)"),
    ] = None,
    study: Annotated[str | None, typer.Option(help="study name (default: the config file name)")] = None,
    pruner: Annotated[str, typer.Option(help="median | hyperband | none")] = "median",
    seed: Annotated[
        int | None, typer.Option(help="sampler seed (leave unset when several workers share a study)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="override a finetune key for every trial")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Search hyperparameters on the dev split; write best.yaml, trials.csv, tune.json and PNG plots."""
    import optuna

    from growthcurve.growth.tune import Tuner, load_tune_spec

    spec = load_tune_spec(config, search, set_ or [], metric)
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
    tuner = Tuner(
        trials=trials,
        out=out,
        storage=storage,
        study=study,
        pruner=pruner,
        seed=seed,
        progress=not quiet,
        echo=lambda line: console.print(line, highlight=False, soft_wrap=True),
    )
    tuner.fit(spec)
    s = tuner.summary_
    table = Table(title=f"study {s.study}: dev {s.metric} ({s.direction})")
    for col in ("trial", "state", s.metric, "epochs", *spec.space):
        table.add_column(col, justify="left" if col == "state" else "right")
    for t in tuner.study_.get_trials(deepcopy=False):
        value = "" if t.value is None else f"{t.value:.4f}"
        if t.state.name == "PRUNED" and t.intermediate_values:
            value = f"({t.intermediate_values[max(t.intermediate_values)]:.4f})"
        mark = " *" if t.number == s.best_trial else ""
        epochs = t.user_attrs.get("pruned_at_epoch") or (max(t.intermediate_values) if t.intermediate_values else "")
        params = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in (t.params.get(k, "") for k in spec.space)]
        table.add_row(f"{t.number}{mark}", t.state.name.lower(), value, str(epochs), *params)
    console.print(table)
    console.print(
        f"{s.trials} trial(s): {s.complete} complete, {s.pruned} pruned, {s.failed} failed; "
        f"best dev {s.metric} {'-' if s.best_value is None else round(s.best_value, 4)} (trial {s.best_trial})",
        highlight=False,
    )
    written = (["best.yaml"] if s.best_trial is not None else []) + ["trials.csv", "tune.json"]
    written += [Path(p).name for p in s.plots.values()]
    console.print(f"wrote {', '.join(written)} in {tuner.out_}", highlight=False)
