"""How every growthcurve HTTP service starts: the options declared once, the start-up checks in one order, one
:func:`run`. `serve`, `assist serve`, `monitor serve` and `recommend serve` call it with a ``load`` function of
their own (the shape of text-embeddings-inference's router ``main.rs``: one documented option set, then one
library ``run``).

The order is the contract: option values → the port (bound now, so a port in use fails before minutes of
model loading) → the served folders (cheap checks, no store touched) → the store (opened and migrated) → the
models → the banner → uvicorn. A command that fails before the store step leaves no database behind, and none
prints a ``serving on`` line before it has succeeded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from growthcurve.errors import ConfigError
from growthcurve.serving.settings import ServeSettings  # pydantic only: no torch before passive_openmp

__all__ = [
    "Launch",
    "Loaded",
    "bind_socket",
    "inference_threads",
    "passive_openmp",
    "read_api_keys",
    "run",
    "serve_app",
    "serve_settings",
]

# ---- the options, declared once (each serve command gives its own default where it differs) -------------

Host = Annotated[str, typer.Option(help="interface to bind (0.0.0.0 exposes the service to the network)")]
Port = Annotated[int, typer.Option(help="TCP port")]
MaxBatch = Annotated[int, typer.Option(help="inputs per micro-batch (texts, questions or users)")]
MaxWaitMs = Annotated[float, typer.Option(help="how long a lone input waits for a batch (ms)")]
ApiKeyEnv = Annotated[str | None, typer.Option(help="env var holding the API key(s), comma-separated")]
ApiKeyFile = Annotated[Path | None, typer.Option(help="file with one API key per line")]
Store = Annotated[
    str | None,
    typer.Option("--store", "--db", help="store URL (default: the workspace store, GROWTHCURVE_STORE)"),
]
Experiment = Annotated[str | None, typer.Option(help="A/B experiment name (required with two or more runs)")]
Weights = Annotated[str | None, typer.Option(help="traffic split per run, e.g. 50,50 (default: equal)")]
Salt = Annotated[str, typer.Option(help="assignment salt; a new salt reshuffles units")]
AbConfig = Annotated[
    Path | None, typer.Option(help="also write the experiment's `growthcurve ab analyze` YAML config here")
]

# the ServeSettings field behind each option, for one-line errors that name the option the user typed
_OPTION_OF = {
    "max_batch": "--max-batch",
    "max_wait_ms": "--max-wait-ms",
    "max_body_bytes": "--max-body-bytes",
    "max_text_chars": "--max-text-chars",
    "max_items": "--max-items",
    "experiment": "--experiment",
    "weights": "--weights",
    "salt": "--salt",
    "cors_origins": "--cors-origin",
}


def serve_settings(api_key_env: str | None, api_key_file: Path | None, **fields: Any) -> ServeSettings:
    """`ServeSettings` from the shared options (API keys read here); a bad value is one ConfigError line naming
    the option and its allowed range, never a pydantic dump."""
    from pydantic import ValidationError

    keys = read_api_keys(api_key_env, api_key_file)
    try:
        return ServeSettings(api_keys=keys, **fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        option = _OPTION_OF.get(name, f"--{name.replace('_', '-')}")
        ctx = err.get("ctx") or {}
        bounds = [f"{op} {ctx[k]}" for k, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if k in ctx]
        want = f"must be {' and '.join(bounds)}" if bounds else str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{option} {want} (got {err.get('input')!r})") from None


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


@dataclass
class Loaded:
    """What a serve command's ``load`` returns: the app, and the lines that tell the user what is served."""

    app: Any
    banner: list[Any] = field(default_factory=list)  # strings or rich renderables, printed after loading


@dataclass
class Launch:
    """Where and how a service listens, and the store it writes to: the options every serve command shares."""

    host: str = "127.0.0.1"
    port: int = 8000
    store: str | None = None
    api_key_env: str | None = None
    api_key_file: Path | None = None


def run(
    launch: Launch,
    settings_fields: dict[str, Any],
    load: Callable[[ServeSettings, str], Loaded],
    check: Callable[[ServeSettings], None] | None = None,
    console: Any = None,
) -> None:
    """Start a service: validate the options, bind the port, ``check`` the inputs (no store touched yet), open
    and migrate the store, ``load(settings, store_url)`` the models into an app, print its banner, serve."""
    from growthcurve.serving.storage import open_store
    from growthcurve.store import masked_url, store_url

    passive_openmp()  # before torch runs its first parallel region
    settings = serve_settings(launch.api_key_env, launch.api_key_file, **settings_fields)
    url = store_url(launch.store)
    sock = bind_socket(launch.host, launch.port)  # a port in use fails here, before minutes of model loading
    try:
        if check is not None:
            check(settings)
        open_store(url).dispose()  # a store that cannot be opened or migrated fails before models load
        loaded = load(settings, url)
        if console is not None:
            for line in loaded.banner:
                console.print(line, highlight=False) if isinstance(line, str) else console.print(line)
            console.print(f"store: {masked_url(url)}", highlight=False)
            if settings.api_keys:
                console.print("API key required on the prediction and feedback routes (header X-API-Key)")
    except BaseException:
        sock.close()
        raise
    serve_app(loaded.app, sock)
