"""`growthcurve serve RUN [RUN_B ...]`: the HTTP service (FastAPI + uvicorn) for one run or an A/B test."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError
from growthcurve.serving.settings import ServeSettings  # pydantic only: no torch before passive_openmp

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `serve` to the root CLI."""
    app.command("serve")(serve_cmd)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` now (before models load) and hand the socket to uvicorn: no race, no late failure."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be 1..65535 (got {port})")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host '{host}' cannot be resolved: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like uvicorn: a TIME_WAIT port is free
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror} (pick another --port)") from None
    sock.set_inheritable(True)
    return sock


def serve_settings(api_key_env: str | None, api_key_file: Path | None, **fields: Any) -> ServeSettings:
    """`ServeSettings` from the options every serve command shares (API keys read here); a bad value is one
    ConfigError line, not a pydantic traceback."""
    keys = read_api_keys(api_key_env, api_key_file)
    try:
        return ServeSettings(api_keys=keys, **fields)
    except ValueError as exc:
        raise ConfigError(f"invalid serve option: {exc}") from None


def passive_openmp() -> None:
    """Idle OpenMP workers that spin (the default) starve the event loop and the store thread on a small CPU.

    Measured on 2 busy cores, MiniLM, 2 torch threads: 2.3 req/s spinning, 48 req/s passive
    (benchmarks/serving_http.py). Call before the first torch operation; an explicit OMP_WAIT_POLICY stays.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def inference_threads(backend: str, threads: int | None) -> int | None:
    """``--threads``, or for the onnx backend all usable cores but one (at least 1); torch keeps its default.

    onnxruntime's default (one spinning thread per core) competes with the event loop and the store writer:
    on 2 cores under 8 clients, int8 MiniLM served 189 req/s with 2 intra-op threads and 251 with 1, same
    run (benchmarks/serving_http.py). Batches of a few short texts gain little from a second thread anyway.
    """
    if threads is not None or backend != "onnx":
        return threads
    return max(1, len(os.sched_getaffinity(0)) - 1)


def serve_app(app: Any, sock: socket.socket) -> None:
    """Run ``app`` with uvicorn on the socket bound earlier by `bind_socket`, and close it afterwards."""
    import uvicorn

    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")).run(sockets=[sock])
    finally:
        sock.close()


def read_api_keys(env: str | None, file: Path | None) -> list[str]:
    """Keys from env var ``env`` (comma-separated) or ``file`` (one per line, # comments); never empty."""
    if env and file:
        raise ConfigError("give --api-key-env or --api-key-file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"--api-key-env {env}: the environment variable is not set")
        keys = [k.strip() for k in value.split(",") if k.strip()]
        where = f"environment variable {env}"
    elif file:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--api-key-file '{file}' cannot be read: {exc.strerror}") from None
        keys = [s.strip() for s in text.splitlines() if s.strip() and not s.strip().startswith("#")]
        where = f"file '{file}'"
    else:
        return []
    if not keys:
        raise ConfigError(f"{where} holds no API key")
    short = [k for k in keys if len(k) < 16]
    if short:
        raise ConfigError(f"{where}: API keys must be at least 16 characters ({len(short)} shorter)")
    return keys


def serve_cmd(
    runs: Annotated[list[Path], typer.Argument(help="run folder(s); two or more = a model-version A/B test")],
    backend: Annotated[str, typer.Option(help="torch, or onnx (needs `growthcurve export RUN` first)")] = "torch",
    quantize: Annotated[str | None, typer.Option(help="onnx backend: serve the int8 export (int8)")] = None,
    host: Annotated[str, typer.Option(help="interface to bind (0.0.0.0 exposes the service to the network)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    experiment: Annotated[str | None, typer.Option(help="A/B experiment name (required with two or more runs)")] = None,
    weights: Annotated[str | None, typer.Option(help="traffic split per run, e.g. 50,50 (default: equal)")] = None,
    salt: Annotated[str, typer.Option(help="assignment salt; a new salt reshuffles units")] = "",
    max_batch: Annotated[int, typer.Option(help="texts per micro-batch")] = 32,
    threads: Annotated[
        int | None, typer.Option(help="intra-op threads (default: torch's; onnx: all cores but one)")
    ] = None,
    max_wait_ms: Annotated[float, typer.Option(help="how long a lone request waits for a batch")] = 5.0,
    api_key_env: Annotated[str | None, typer.Option(help="env var holding the API key(s), comma-separated")] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="file with one API key per line")] = None,
    max_text_chars: Annotated[int, typer.Option(help="longest text accepted")] = 5000,
    truncate: Annotated[bool, typer.Option(help="cut longer texts (flagged `truncated`) instead of 413")] = False,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body")] = 1_000_000,
    max_items: Annotated[int, typer.Option(help="texts per request")] = 64,
    store: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: GROWTHCURVE_DB_URL or sqlite)")] = None,
    log_text: Annotated[bool, typer.Option(help="store the input texts with the predictions")] = True,
    cors_origin: Annotated[list[str] | None, typer.Option(help="allow this browser origin (CORS off if none)")] = None,
    ab_config: Annotated[
        Path | None, typer.Option(help="write the `growthcurve ab analyze` config of the experiment here")
    ] = None,
) -> None:
    """Serve run folders over HTTP: /predict, /feedback, /health, /ready, /metrics, /docs."""
    passive_openmp()  # before torch runs its first parallel region
    from growthcurve.serving.assign import parse_weights

    if not runs:
        raise ConfigError("give at least one run folder")
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"--backend must be torch or onnx (got '{backend}')")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {threads})")
    if len(runs) > 1 and not experiment:
        raise ConfigError("two or more runs are an A/B test: name the experiment with --experiment NAME")
    if len(runs) == 1 and (experiment or weights):
        raise ConfigError("--experiment/--weights need two or more runs to compare")
    settings = serve_settings(
        api_key_env,
        api_key_file,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_bytes,
        max_text_chars=max_text_chars,
        long_text="truncate" if truncate else "reject",
        max_items=max_items,
        experiment=experiment,
        weights=parse_weights(weights, len(runs)),
        salt=salt,
        cors_origins=cors_origin or [],
        log_text=log_text,
        backend=backend if quantize is None else f"{backend}-{quantize}",
    )
    sock = bind_socket(host, port)  # a port in use fails here, before minutes of model loading
    try:
        _serve(
            runs, backend, quantize, inference_threads(backend, threads), settings, store, sock, host, port, ab_config
        )
    finally:
        sock.close()


def _serve(
    runs: list[Path],
    backend: str,
    quantize: str | None,
    threads: int | None,
    settings: ServeSettings,
    store: str | None,
    sock: socket.socket,
    host: str,
    port: int,
    ab_config: Path | None,
) -> None:
    import uvicorn

    from growthcurve.serving.app import create_app
    from growthcurve.serving.handlers import load_handler
    from growthcurve.serving.storage import open_store
    from growthcurve.store import default_url

    open_store(store).dispose()  # a store that cannot be opened or migrated fails before models load
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    handlers = []
    for r in runs:
        with console.status(f"loading {r} ..."):
            handlers.append(load_handler(r, backend, quantize=quantize, threads=threads))
    app = create_app(handlers, settings, store)
    core = app.state.core
    t = Table(title=f"serving on http://{host}:{port} (docs at /docs)")
    for col in ("variant", "weight", "run", "model_version", "task"):
        t.add_column(col)
    for h, v, wt, r in zip(core.handlers, core.variants, core.weights, runs, strict=True):
        t.add_row(v if core.experiment else "–", f"{wt:.0%}", str(r), h.model_version, h.task)
    console.print(t)
    url = store or default_url()
    if core.experiment:
        console.print(f"experiment '{core.experiment}' → {url}", highlight=False)
        if ab_config:
            from growthcurve.serving.experiment import write_ab_config

            write_ab_config(ab_config, url, core.experiment, dict(zip(core.variants, core.weights, strict=True)))
            console.print(f"analyse with: growthcurve ab analyze {ab_config}", highlight=False)
    if settings.api_keys:
        console.print("API key required on /predict and /feedback (header X-API-Key)")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
