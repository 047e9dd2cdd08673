"""`growthcurve serve RUN [RUN_B ...]`: the HTTP service (FastAPI + uvicorn) for one model version or an A/B
experiment between versions. The start-up order and the shared options live in `serving/launch.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError
from growthcurve.serving.launch import (
    AbConfig,
    ApiKeyEnv,
    ApiKeyFile,
    Experiment,
    Host,
    Launch,
    Loaded,
    MaxBatch,
    MaxWaitMs,
    Port,
    Salt,
    Store,
    Weights,
    inference_threads,
    run,
)
from growthcurve.serving.settings import ServeSettings

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `serve` to the root CLI."""
    app.command("serve")(serve_cmd)


def serve_cmd(
    runs: Annotated[
        list[str], typer.Argument(help="run folders or model versions (intents@v2); two or more = an A/B test")
    ],
    backend: Annotated[str, typer.Option(help="torch, or onnx (needs `growthcurve export RUN` first)")] = "torch",
    quantize: Annotated[str | None, typer.Option(help="onnx backend: serve the int8 export (int8)")] = None,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    experiment: Experiment = None,
    weights: Weights = None,
    salt: Salt = "",
    allow_mixed_models: Annotated[
        bool, typer.Option(help="let one experiment compare versions of different models")
    ] = False,
    max_batch: MaxBatch = 32,
    threads: Annotated[
        int | None, typer.Option(help="intra-op threads (default: torch's; onnx: all cores but one)")
    ] = None,
    max_wait_ms: MaxWaitMs = 5.0,
    api_key_env: ApiKeyEnv = None,
    api_key_file: ApiKeyFile = None,
    max_text_chars: Annotated[int, typer.Option(help="longest text accepted")] = 5000,
    truncate: Annotated[bool, typer.Option(help="cut longer texts (flagged `truncated`) instead of 413")] = False,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body")] = 1_000_000,
    max_items: Annotated[int, typer.Option(help="texts per request")] = 64,
    store: Store = None,
    log_text: Annotated[bool, typer.Option(help="store the input texts with the predictions")] = True,
    cors_origin: Annotated[list[str] | None, typer.Option(help="allow this browser origin (CORS off if none)")] = None,
    ab_config: AbConfig = None,
) -> None:
    """Serve model versions over HTTP: /predict, /feedback, /health, /ready, /metrics, /docs."""
    from growthcurve.serving.assign import parse_weights
    from growthcurve.store.lineage import resolve_run

    if not runs:
        raise ConfigError("give at least one run folder or model version")
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"--backend must be torch or onnx (got '{backend}')")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {threads})")
    if len(runs) > 1 and not experiment:
        raise ConfigError("two or more runs are an A/B test: name the experiment with --experiment NAME")
    if len(runs) == 1 and (experiment or weights):
        raise ConfigError("--experiment/--weights need two or more runs to compare")
    if ab_config is not None and (ab_config.is_dir() or not ab_config.parent.is_dir()):
        raise ConfigError(f"--ab-config '{ab_config}' must be a file path in an existing folder")
    if ab_config is not None and len(runs) == 1:
        raise ConfigError("--ab-config goes with an experiment (two or more runs)")
    folders = [resolve_run(r, store) for r in runs]
    fields: dict[str, Any] = {
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        "max_body_bytes": max_body_bytes,
        "max_text_chars": max_text_chars,
        "long_text": "truncate" if truncate else "reject",
        "max_items": max_items,
        "experiment": experiment,
        "weights": parse_weights(weights, len(runs)),
        "salt": salt,
        "cors_origins": cors_origin or [],
        "log_text": log_text,
        "backend": backend if quantize is None else f"{backend}-{quantize}",
    }

    def check(settings: ServeSettings) -> None:  # cheap checks of every folder before the store is touched
        from growthcurve.serving.handlers import check_servable
        from growthcurve.serving.versions import check_finished, check_one_model

        for f in folders:
            check_servable(f, backend, quantize)
            check_finished(f)
        if settings.experiment:
            check_one_model(folders, allow_mixed_models)

    def load(settings: ServeSettings, url: str) -> Loaded:
        return _load(folders, backend, quantize, inference_threads(backend, threads), settings, url, host, port,
                     allow_mixed_models, ab_config)  # fmt: skip

    run(Launch(host, port, store, api_key_env, api_key_file), fields, load, check, console)


def _load(
    folders: list[Path],
    backend: str,
    quantize: str | None,
    threads: int | None,
    settings: ServeSettings,
    url: str,
    host: str,
    port: int,
    allow_mixed: bool,
    ab_config: Path | None,
) -> Loaded:
    """Name each folder's version in the store, load the handlers, build the app and say what is served."""
    from growthcurve.serving.app import create_app
    from growthcurve.serving.handlers import load_handler
    from growthcurve.serving.storage import open_store
    from growthcurve.serving.versions import served_version

    versions = [served_version(f, url) for f in folders]
    models = sorted({v.record.model or "" for v in versions})
    if settings.experiment and len(models) > 1 and not allow_mixed:  # a store that names them otherwise
        raise ConfigError(
            f"the runs are versions of different models ({', '.join(v.ref for v in versions)}): pass "
            "--allow-mixed-models to compare them anyway"
        )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    handlers = []
    for v in versions:
        with console.status(f"loading {v.ref} ({v.run_dir}) ..."):
            h = load_handler(v.run_dir, backend, quantize=quantize, threads=threads)
        h.lineage = h.model_name = v.ref  # one name everywhere: predictions, /models, metrics, the arms
        h.fingerprint = v.record.fingerprint
        h.run_dir = str(v.run_dir.resolve())
        handlers.append(h)
    app = create_app(handlers, settings, url)
    core = app.state.core
    engine = open_store(url)
    try:
        core.register_experiment(engine)  # other arms under a known experiment name fail here, before serving
    finally:
        engine.dispose()
    banner: list[Any] = [f"registered {v.run_dir} as {v.ref} (it had no version in the store)" for v in versions
                         if v.adopted]  # fmt: skip
    t = Table(title=f"serving on http://{host}:{port} (docs at /docs)")
    for col in ("variant", "role", "weight", "run folder", "model_version"):
        t.add_column(col, overflow="fold")
    for h, v, role, wt, sv in zip(core.handlers, core.variants, core.roles, core.weights, versions, strict=True):
        t.add_row(v if core.experiment else sv.ref, role if core.experiment else "–", f"{wt:.0%}",
                  str(sv.run_dir), h.model_version)  # fmt: skip
    banner.append(t)
    if core.experiment:
        banner.append(f"experiment '{core.experiment}': analyse with `growthcurve ab analyze {core.experiment}`")
        if ab_config:
            from growthcurve.serving.experiment import write_ab_config

            weights = dict(zip(core.variants, core.weights, strict=True))
            write_ab_config(ab_config, url, core.experiment, weights, control=core.variants[0])
            banner.append(f"wrote the analysis config to {ab_config}")
    return Loaded(app, banner)
