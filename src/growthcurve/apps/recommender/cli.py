"""`growthcurve recommend ...`: fit, top, eval and serve a text-aware recommender."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError, ModelError
from growthcurve.serving.launch import (
    AbConfig,
    ApiKeyEnv,
    ApiKeyFile,
    Experiment,
    Host,
    MaxBatch,
    MaxWaitMs,
    Port,
    Salt,
    Store,
    Weights,
)
from growthcurve.serving.settings import ServeSettings

recommend_app = typer.Typer(
    help="Text-aware recommender: two-tower text model + ALS blend, measured against baselines.",
    no_args_is_help=True,
)
console = Console()


def register(app: typer.Typer) -> None:
    """Add the `recommend` command group to the root CLI."""
    app.add_typer(recommend_app, name="recommend")


def _log(msg: str) -> None:
    console.print(msg, highlight=False)


def print_eval(result: dict[str, Any], k: int, title: str) -> None:
    """One row per model: warm-user HR/NDCG/coverage and cold-start HR, with the random expectation."""
    table = Table(title=title)
    for col in ("model", f"HR@{k}", f"NDCG@{k}", f"coverage@{k}", f"cold HR@{k}"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in result["rows"]:
        cold = r.get(f"cold_hr@{k}")
        table.add_row(
            r["model"],
            f"{r[f'hr@{k}']:.4f}",
            f"{r[f'ndcg@{k}']:.4f}",
            f"{r[f'coverage@{k}']:.3f}",
            "–" if cold is None else f"{cold:.4f}",
        )
    rnd = result["random_hr"]
    table.add_row(
        "[dim]random (expected)[/]",
        "–" if rnd.get("warm") is None else f"{rnd['warm']:.4f}",
        "",
        "",
        "–" if rnd.get("cold") is None else f"{rnd['cold']:.4f}",
    )
    console.print(table)
    c = result["counts"]
    console.print(
        f"{c['test_users_warm']} test users with a warm item, {c['test_users_cold']} with a cold one "
        f"({c['cold_items']} items held out of training); {c['items']} items, {c['users']} users",
        highlight=False,
    )


@recommend_app.command("fit")
def fit_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML config (default: the embedded synthetic run)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key, e.g. train.epochs=2")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a finished run in output_dir")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Fine-tune the two-tower text model, evaluate it beside popularity/item-kNN/ALS/BPR, save the run."""
    from growthcurve.apps.recommender.config import load_recommender_config
    from growthcurve.apps.recommender.pipeline import fit_run

    cfg = load_recommender_config(config, set_)
    out = fit_run(cfg, overwrite=overwrite, progress=progress, log=_log)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    print_eval(metrics, cfg.eval.k, f"leave-last-out test ({metrics['model']} is served)")
    console.print(f"[green]run saved to[/] {out}  (train {metrics['train_seconds']:.0f} s)", highlight=False)


@recommend_app.command("top")
def top_cmd(
    run: Annotated[Path, typer.Argument(help="run folder written by `recommend fit`")],
    user: Annotated[str, typer.Argument(help="user id as in the interactions file")],
    k: Annotated[int, typer.Option("-k", "--k", help="how many items")] = 10,
    fallback: Annotated[str | None, typer.Option(help="'popular': answer unknown users with popular items")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """The top-k items for a user, never one the user already has."""
    from growthcurve.apps.recommender.pipeline import RecommenderRun

    if fallback not in (None, "popular"):
        raise ConfigError(f"--fallback must be 'popular' (got {fallback!r})")
    if k < 1:
        raise ConfigError(f"-k must be at least 1 (got {k})")
    rec = RecommenderRun(run)
    items = rec.top(user, k, fallback=fallback)
    if as_json:
        typer.echo(json.dumps({"user": user, "model_version": rec.model_version, "items": items}))
        return
    table = Table(title=f"top {k} for {user} ({rec.model_version})")
    for col in ("#", "item", "title", "score"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, it in enumerate(items, start=1):
        table.add_row(str(i), it["item"], it["title"], "–" if it["score"] is None else f"{it['score']:.4f}")
    console.print(table)


@recommend_app.command("eval")
def eval_cmd(
    run: Annotated[Path, typer.Argument(help="run folder written by `recommend fit`")],
    out: Annotated[Path | None, typer.Option(help="also write the metrics as JSON here")] = None,
) -> None:
    """Re-evaluate a run on its leave-last-out split, with the baselines refitted beside it."""
    from growthcurve.apps.recommender.pipeline import evaluate_run
    from growthcurve.atomic import write_json

    result = evaluate_run(run, log=_log).to_dict()
    k = int(json.loads((run / "recommender.json").read_text(encoding="utf-8")).get("k", 10))
    print_eval(result, k, f"leave-last-out test of {run}")
    if out is not None:
        write_json(out, result)
        console.print(f"[green]wrote[/] {out}", highlight=False)


@recommend_app.command("serve")
def serve_cmd(
    runs: Annotated[list[Path], typer.Argument(help="recommender run folder(s); two or more = an A/B test")],
    host: Host = "127.0.0.1",
    port: Port = 8000,
    experiment: Experiment = None,
    weights: Weights = None,
    salt: Salt = "",
    max_batch: MaxBatch = 32,
    max_wait_ms: MaxWaitMs = 5.0,
    api_key_env: ApiKeyEnv = None,
    api_key_file: ApiKeyFile = None,
    store: Store = None,
    ab_config: AbConfig = None,
) -> None:
    """Serve recommender runs on the serving layer: POST /recommend, clicks via POST /feedback."""
    from growthcurve.serving import parse_weights
    from growthcurve.serving.launch import Launch, Loaded, run

    if len(runs) > 1 and not experiment:
        raise ConfigError("two or more runs are an A/B test: name the experiment with --experiment NAME")
    if len(runs) == 1 and (experiment or weights):
        raise ConfigError("--experiment/--weights need two or more runs to compare")
    fields = {
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        "experiment": experiment,
        "weights": parse_weights(weights, len(runs)),
        "salt": salt,
    }

    def check(_settings: object) -> None:
        for r in runs:
            if not r.is_dir():
                raise ModelError(f"recommender run folder '{r}' does not exist: run `growthcurve recommend fit`")

    def load(settings: ServeSettings, url: str) -> Loaded:
        from growthcurve.apps.recommender.pipeline import RecommenderRun
        from growthcurve.apps.recommender.service import RecommenderHandler, recommend_router
        from growthcurve.serving import create_app

        handlers = []
        for r in runs:
            with console.status(f"loading {r} ..."):
                handlers.append(RecommenderHandler(RecommenderRun(r)))
        app = create_app(handlers, settings, url, routers=[recommend_router()])
        core = app.state.core
        table = Table(title=f"serving on http://{host}:{port} (POST /recommend, /feedback; docs at /docs)")
        for col in ("variant", "weight", "run", "model_version"):
            table.add_column(col, overflow="fold")
        for h, v, wt, r in zip(core.handlers, core.variants, core.weights, runs, strict=True):
            table.add_row(v if core.experiment else "–", f"{wt:.0%}", str(r), h.model_version)
        banner: list[object] = [table]
        if core.experiment and ab_config:
            from growthcurve.serving.experiment import write_ab_config

            weights_ = dict(zip(core.variants, core.weights, strict=True))
            write_ab_config(ab_config, url, core.experiment, weights_, control=core.variants[0])
            banner.append(f"analyse clicks with: growthcurve ab analyze {ab_config}")
        return Loaded(app, banner)

    run(Launch(host, port, store, api_key_env, api_key_file), fields, load, check, console)
