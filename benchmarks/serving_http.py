"""HTTP serving benchmark: `growthcurve serve` (micro-batching; ONNX int8 and torch backends) vs a naive
FastAPI + `transformers.pipeline` endpoint, under the same bounded load on 127.0.0.1, then kill -9 of the
server during a feedback load.

    python benchmarks/serving_http.py --run RUN [--seconds 30] [--merge-into benchmarks/results/serving.json]

All servers run as subprocesses, one after another, in this one invocation. The summary row is the ONNX
int8 server as a user who wants speed starts it (`--backend onnx --quantize int8 --threads 1
--max-wait-ms 0`: on 2 cores shared with the load generator one intra-op thread beats two); the torch
server (`--threads 2`, default batching) and the naive server (2 torch threads) are measured the same way.
The load generator is an asyncio client (aiohttp by default, `--client httpx` for the first one) with 8
concurrent clients sending single-text requests for ``--seconds`` each; every row records the server's
and the client's CPU per request. The feedback test posts feedback from 8 clients to the ONNX server,
kills it with SIGKILL after a while, restarts it on the same SQLite file and counts acknowledged feedback
rows that are missing (must be 0). `benchmarks/serving.py` (the compression benchmark) imports `run_http`
and merges its rows and summary; `--merge-into` does the same from a standalone run.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

CLIENTS = 8
THREADS = 2  # torch threads per server process (house rule on the shared machine); --threads changes it
TARGETS = {"service_p99_ms_max": 50.0, "service_speedup_vs_naive_min": 3.0, "service_errors": 0, "feedback_lost": 0}
_ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}


def cpu_info() -> dict[str, Any]:
    """CPU model and the flags int8/bf16 speed depends on, read from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile"]
    return {"cpu_model": model, "cpu_flags": [f for f in wanted if f in flags], "cpus": os.cpu_count()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float = 300.0) -> float:
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.TransportError:
            pass
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("server did not get ready in time")
        time.sleep(0.25)


def _start_serve(run_dir: str, port: int, store: str, args: list[str]) -> subprocess.Popen[bytes]:
    """`growthcurve serve RUN` with ``args`` (backend, threads, batching) as a user would start it."""
    cmd = [sys.executable, "-m", "growthcurve.cli", "serve", run_dir, "--port", str(port), "--store", store, *args]
    return subprocess.Popen(cmd, env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _start_naive(run_dir: str, port: int, threads: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--naive-server", "--run", run_dir, "--port", str(port)]
    cmd += ["--threads", str(threads)]
    return subprocess.Popen(cmd, env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class _HttpxPost:
    """The first load generator: httpx's AsyncClient (about 2.9 ms of client CPU per request on this CPU)."""

    def __init__(self, base: str) -> None:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        self.client = httpx.AsyncClient(base_url=base, timeout=30, limits=limits)

    async def post(self, path: str, body: dict[str, Any]) -> int:
        try:
            return (await self.client.post(path, json=body)).status_code
        except httpx.HTTPError:
            return -1

    async def get_text(self, path: str) -> str:
        return (await self.client.get(path)).text

    async def close(self) -> None:
        await self.client.aclose()


class _AiohttpPost:
    """aiohttp's client (C HTTP parser): a fraction of httpx's CPU per request, which matters here because
    the load generator shares the 2 cores with the server it measures; both servers get the same client."""

    def __init__(self, base: str) -> None:
        import aiohttp

        self.base = base
        conn = aiohttp.TCPConnector(limit=CLIENTS)
        self.session = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30))
        self.errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)

    async def post(self, path: str, body: dict[str, Any]) -> int:
        try:
            async with self.session.post(self.base + path, json=body) as r:
                await r.read()
                return r.status
        except self.errors:
            return -1

    async def get_text(self, path: str) -> str:
        async with self.session.get(self.base + path) as r:
            return await r.text()

    async def close(self) -> None:
        await self.session.close()


LOAD_CLIENTS = {"aiohttp": _AiohttpPost, "httpx": _HttpxPost}


def _batch_totals(metrics: str) -> tuple[float, float]:
    """(batches, items) so far from the server's Prometheus batch-size histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    n = s = 0.0
    for fam in text_string_to_metric_families(metrics):
        for smp in fam.samples:
            n += smp.value if smp.name == "growthcurve_batch_size_count" else 0
            s += smp.value if smp.name == "growthcurve_batch_size_sum" else 0
    return n, s


async def _load(
    base: str, texts: list[str], seconds: float, label: str, client_kind: str = "aiohttp", server_pid: int | None = None
) -> dict[str, Any]:
    """8 clients, each sending one single-text request at a time until ``seconds`` have passed.

    With ``server_pid`` the row also says how much CPU the server and this load generator each spent per
    request: on 2 shared cores that split decides how far the server can go.
    """
    from tqdm import tqdm

    lat: list[float] = []
    errors = 0
    ours = label.startswith("growthcurve")
    client = LOAD_CLIENTS[client_kind](base)
    try:
        for t in texts[:16]:  # warm-up: first batches pay one-off allocation costs
            await client.post("/predict", {"text": t})
        t_end = time.perf_counter() + seconds
        bar = tqdm(total=round(seconds), desc=label, unit="s", leave=False)

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                status = await client.post("/predict", {"text": texts[i % len(texts)]})
                if status == 200:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1
                i += CLIENTS

        async def ticker() -> None:
            while time.perf_counter() < t_end:
                await asyncio.sleep(1)
                bar.update(1)

        metrics0 = await client.get_text("/metrics") if ours else ""  # the same server may have been loaded before
        cpu0 = (_own_cpu_seconds(), _cpu_seconds(server_pid) if server_pid else 0.0)
        t_start = time.perf_counter()
        await asyncio.gather(ticker(), *(worker(k) for k in range(CLIENTS)))
        elapsed = time.perf_counter() - t_start
        cpu1 = (_own_cpu_seconds(), _cpu_seconds(server_pid) if server_pid else 0.0)
        bar.close()
        metrics = await client.get_text("/metrics") if ours else ""
    finally:
        await client.close()
    ms = np.asarray(lat) * 1000.0
    n = max(1, len(lat) + errors)
    row: dict[str, Any] = {
        "name": label,
        "clients": CLIENTS,
        "load_generator": client_kind,
        "seconds": round(elapsed, 2),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "errors": errors,
        "client_cpu_ms_per_request": round((cpu1[0] - cpu0[0]) / n * 1000.0, 2),
    }
    if server_pid:
        row["server_cpu_ms_per_request"] = round((cpu1[1] - cpu0[1]) / n * 1000.0, 2)
    if metrics:
        (n1, s1), (n0, s0) = _batch_totals(metrics), _batch_totals(metrics0)
        row["mean_batch_size"] = round((s1 - s0) / (n1 - n0), 2) if n1 > n0 else None
    row["_latencies_ms"] = ms  # for the plot; not written to the JSON
    return row


async def _feedback_load(base: str, request_ids: list[str], acked: list[str], stop: asyncio.Event) -> int:
    """Feedback from 8 clients until the server dies; every 200 is appended to ``acked`` (its comment id)."""
    failures = 0
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def worker(k: int) -> None:
            nonlocal failures
            j = 0
            while not stop.is_set():
                tag = f"{k}-{j}"
                body = {"request_id": request_ids[j % len(request_ids)], "thumbs": j % 2 == 0, "comment": tag}
                try:
                    r = await client.post("/feedback", json=body)
                except httpx.HTTPError:
                    failures += 1
                    return  # the server is gone
                if r.status_code == 200:
                    acked.append(tag)
                j += 1

        await asyncio.gather(*(worker(k) for k in range(CLIENTS)))
    return failures


def _kill_test(run_dir: str, texts: list[str], seconds: float, tmp: Path, args: list[str]) -> dict[str, Any]:
    import sqlalchemy as sa

    from growthcurve.store import feedback

    db = tmp / "kill.db"
    store = f"sqlite:///{db}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_serve(run_dir, port, store, args)
    acked: list[str] = []
    try:
        _wait_ready(proc, base)
        rids = [httpx.post(f"{base}/predict", json={"text": t}, timeout=30).json()["request_id"] for t in texts[:20]]

        async def run() -> int:
            stop = asyncio.Event()
            task = asyncio.create_task(_feedback_load(base, rids, acked, stop))
            await asyncio.sleep(seconds)
            os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests are in flight and commits half-done
            failures = await task
            stop.set()
            return failures

        failures = asyncio.run(run())
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_rc = proc.returncode
    proc2 = _start_serve(run_dir, port, store, args)  # restart on the same file: WAL recovery on open
    try:
        restart_s = _wait_ready(proc2, base)
        again = httpx.post(f"{base}/feedback", json={"request_id": rids[0], "click": True}, timeout=30).status_code
        engine = sa.create_engine(store)
        with engine.connect() as conn:
            stored = {r[0] for r in conn.execute(sa.select(feedback.c.comment).where(feedback.c.comment.is_not(None)))}
        engine.dispose()
    finally:
        _stop(proc2)
    missing = [a for a in acked if a not in stored]
    return {
        "name": "kill -9 during feedback load, restart",
        "serve_args": args,
        "clients": CLIENTS,
        "load_seconds_before_kill": seconds,
        "server_exit_code": killed_rc,
        "acknowledged": len(acked),
        "stored_after_restart": len(stored),
        "unacknowledged_but_stored": len(stored - set(acked)),
        "acknowledged_missing": len(missing),
        "client_errors_at_kill": failures,
        "restart_ready_s": round(restart_s, 2),
        "feedback_after_restart_status": again,
    }


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Latency CDFs of the two servers side by side (log x), with the 50 ms target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        ms = np.sort(r["_latencies_ms"])
        if len(ms):
            ax.plot(ms, np.arange(1, len(ms) + 1) / len(ms), label=f"{r['name']} ({r['requests_per_s']:.0f} req/s)")
    ax.axvline(50, color="grey", ls="--", lw=1, label="p99 target 50 ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency per request (ms)")
    ax.set_ylabel("share of requests")
    ax.set_title(f"{CLIENTS} concurrent clients, single-text requests")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def serve_configs(threads: int, fast_threads: int, max_wait_ms: float) -> list[tuple[str, list[str]]]:
    """The growthcurve servers to load, fastest first (the summary is about the first one).

    ONNX int8 with ``fast_threads`` intra-op threads (1 by default: the load generator, the event loop and
    the store thread share the 2 cores with inference) is how a user who wants speed runs `serve`; the
    torch row is the previous default, kept for comparison.
    """
    fast = [
        "--backend",
        "onnx",
        "--quantize",
        "int8",
        "--threads",
        str(fast_threads),
        "--max-wait-ms",
        str(max_wait_ms),
    ]
    torch_args = ["--threads", str(threads)]
    return [
        (f"growthcurve serve (onnx int8, {fast_threads} thread, wait {max_wait_ms:g} ms)", fast),
        (f"growthcurve serve (torch, {threads} threads, wait 5 ms)", torch_args),
    ]


def run_http(
    run_dir: str,
    texts: list[str],
    seconds: float = 30,
    threads: int = THREADS,
    plot: Path | None = None,
    fast_threads: int = 1,
    max_wait_ms: float = 0.0,
    client: str = "aiohttp",
    kill_test: bool = True,
    extra_clients: tuple[str, ...] = ("httpx",),
) -> dict[str, Any]:
    """Serve ``run_dir`` with growthcurve (ONNX int8 and torch) and with a naive pipeline endpoint, load all
    three the same way in this one call, then kill -9 the ONNX server during a feedback load.

    ``plot``: also write the latency CDFs there (PNG). ``extra_clients``: load the ONNX and the naive server
    once more with each of these load generators (same server process, right after), so the share of the
    ratio that comes from the client's own CPU on the shared cores is measured in the same run.
    """
    machine = cpu_info()
    extra: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gc-serving-http-") as tmpdir:
        tmp = Path(tmpdir)
        configs = serve_configs(threads, fast_threads, max_wait_ms)
        for k, (label, args) in enumerate(configs):
            port = _free_port()
            proc = _start_serve(run_dir, port, f"sqlite:///{tmp / f'load{k}.db'}", args)
            try:
                ready = _wait_ready(proc, f"http://127.0.0.1:{port}")
                row = asyncio.run(_load(f"http://127.0.0.1:{port}", texts, seconds, label, client, proc.pid))
                store = "sqlite WAL, synchronous=FULL, predictions logged"
                rows.append({**row, "serve_args": args, "startup_s": round(ready, 2), "store": store})
                for other in extra_clients if k == 0 else ():
                    name = f"{label} [{other} client]"
                    r2 = asyncio.run(_load(f"http://127.0.0.1:{port}", texts, seconds, name, other, proc.pid))
                    extra.append({**r2, "serve_args": args, "store": store})
            finally:
                _stop(proc)
        port = _free_port()
        proc = _start_naive(run_dir, port, threads)
        try:
            ready = _wait_ready(proc, f"http://127.0.0.1:{port}")
            row = asyncio.run(
                _load(f"http://127.0.0.1:{port}", texts, seconds, "naive FastAPI + pipeline", client, proc.pid)
            )
            rows.append({**row, "torch_threads": threads, "startup_s": round(ready, 2), "store": "none"})
            for other in extra_clients:
                name = f"naive FastAPI + pipeline [{other} client]"
                r2 = asyncio.run(_load(f"http://127.0.0.1:{port}", texts, seconds, name, other, proc.pid))
                extra.append({**r2, "torch_threads": threads, "store": "none"})
        finally:
            _stop(proc)
        if kill_test:
            rows.append(_kill_test(run_dir, texts, min(seconds, 10.0), tmp, configs[0][1]))
    if plot is not None:
        _plot([r for r in rows if "_latencies_ms" in r], plot)
    for r in rows + extra:
        r.pop("_latencies_ms", None)
        r.update(machine)
    ours, torch_row, naive = rows[0], rows[1], rows[2]
    kill = rows[3] if kill_test else None

    def ratio(a: dict[str, Any]) -> float | None:
        return round(a["requests_per_s"] / naive["requests_per_s"], 2) if naive["requests_per_s"] else None

    summary = {
        "service_p99_ms": ours["p99_ms"],
        "service_speedup_vs_naive": ratio(ours),
        "service_errors": ours["errors"],
        "feedback_lost_after_kill": kill["acknowledged_missing"] if kill else None,
        "service_torch_p99_ms": torch_row["p99_ms"],
        "service_torch_speedup_vs_naive": ratio(torch_row),
        "service_row": ours["name"],
        "load_generator": client,
    }
    for other in extra_clients:
        a = next(r for r in extra if r["name"].startswith("growthcurve") and r["load_generator"] == other)
        b = next(r for r in extra if r["name"].startswith("naive") and r["load_generator"] == other)
        summary[f"service_p99_ms_{other}_client"] = a["p99_ms"]
        summary[f"service_speedup_vs_naive_{other}_client"] = (
            round(a["requests_per_s"] / b["requests_per_s"], 2) if b["requests_per_s"] else None
        )
    summary["service_met"] = {
        "p99": ours["p99_ms"] is not None and ours["p99_ms"] <= TARGETS["service_p99_ms_max"],
        "speedup": (summary["service_speedup_vs_naive"] or 0) >= TARGETS["service_speedup_vs_naive_min"],
        "errors": ours["errors"] == 0,
        "feedback_lost": kill is not None and kill["acknowledged_missing"] == 0,
    }
    return {
        "rows": rows,
        "rows_other_clients": extra,
        "summary": summary,
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "targets": TARGETS,
    }


def naive_server(run_dir: str, port: int, threads: int) -> None:
    """The reference: a FastAPI endpoint calling `transformers.pipeline` once per request, no batching."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    torch.set_num_threads(threads)
    model_dir = Path(run_dir) / "model" if (Path(run_dir) / "model").is_dir() else Path(run_dir)
    pipe = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:  # sync: FastAPI runs it in its thread pool
        out = pipe(body["text"], truncation=True)[0]
        return {"label": out["label"], "score": out["score"]}

    @app.get("/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _texts(path: Path, n: int) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["text"] for _, row in zip(range(n), csv.DictReader(fh), strict=False)]


def merge_into(path: Path, doc: dict[str, Any]) -> None:
    """Replace the HTTP part of `benchmarks/serving.py`'s JSON (its ``http`` rows and service summary keys)
    with this run's, keeping its offline rows as they were measured; ``http_run`` says when and how."""
    from growthcurve.atomic import write_json

    old = json.loads(path.read_text(encoding="utf-8"))
    old["http"] = doc["rows"]
    old["http_other_clients"] = doc["rows_other_clients"]
    old.setdefault("summary", {}).update(doc["summary"])
    old["http_run"] = {k: doc[k] for k in ("date", "command", "load_average_before_after", "notes", "targets")}
    old["http_run"]["merged"] = "HTTP rows and service_* summary keys from this later run; offline rows unchanged"
    write_json(path, old)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a text-classification run folder (e.g. MiniLM on banking77)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serving_http.json"))
    ap.add_argument("--threads", type=int, default=THREADS, help="torch threads of the torch and naive servers")
    ap.add_argument("--fast-threads", type=int, default=1, help="onnxruntime intra-op threads of the ONNX server")
    ap.add_argument("--max-wait-ms", type=float, default=0.0, help="micro-batch wait of the ONNX server")
    ap.add_argument("--client", choices=sorted(LOAD_CLIENTS), default="aiohttp", help="load generator")
    ap.add_argument("--no-kill", action="store_true", help="skip the kill -9 feedback test (short dev runs)")
    ap.add_argument(
        "--extra-client",
        action="append",
        choices=[*sorted(LOAD_CLIENTS), "none"],
        help="also load the ONNX and naive servers with this client (default: httpx; none: skip)",
    )
    ap.add_argument("--merge-into", type=Path, help="also merge rows + summary into this serving.json")
    ap.add_argument("--naive-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.naive_server:
        naive_server(args.run, args.port, args.threads)
        return
    data = Path(os.environ.get("GROWTHCURVE_SHARED_DATA", "/work/shared/data")) / "banking77" / "test.csv"
    if not data.is_file():
        sys.exit(f"error: {data} not found (set GROWTHCURVE_SHARED_DATA to the folder holding banking77/)")
    res = run_http(
        args.run,
        _texts(data, args.texts),
        args.seconds,
        args.threads,
        args.out.with_suffix(".png"),
        fast_threads=args.fast_threads,
        max_wait_ms=args.max_wait_ms,
        client=args.client,
        kill_test=not args.no_kill,
        extra_clients=("httpx",) if args.extra_client is None else tuple(c for c in args.extra_client if c != "none"),
    )
    import torch

    doc = {
        "benchmark": "serving_http",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {**cpu_info(), "platform": platform.platform(), "python": platform.python_version()},
        "torch": torch.__version__,
        "torch_threads_per_server": args.threads,
        "run": args.run,
        "data": {"dataset": "banking77 test", "texts": args.texts},
        "notes": (
            "Shared machine: other engineers' jobs may run at the same time (see load_average_before_after), "
            "so timings are noisy; one pass per server. The load generator runs on the same 2 cores as the "
            "server it measures (client_cpu_ms_per_request / server_cpu_ms_per_request say who used them); "
            f"every server is loaded by the same {args.client} client with {CLIENTS} connections. The naive "
            "server is a sync FastAPI endpoint (thread pool) calling transformers.pipeline per request, with "
            "the same uvicorn (httptools + uvloop when installed) as growthcurve serve."
        ),
        **res,
    }
    from growthcurve.atomic import write_json

    write_json(args.out, doc)
    if args.merge_into is not None:
        merge_into(args.merge_into, doc)
    print(f"\n{'row':52} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'srv/cli CPU ms':>15}")
    for r in res["rows"] + res["rows_other_clients"]:
        if "requests_per_s" in r:
            cpu = f"{r.get('server_cpu_ms_per_request')}/{r.get('client_cpu_ms_per_request')}"
            print(
                f"{r['name']:52} {r['requests_per_s']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                f"{r['errors']:7d} {cpu:>15}"
            )
    if not args.no_kill:
        k = res["rows"][-1]
        print(f"kill -9: {k['acknowledged']} acknowledged feedback, {k['acknowledged_missing']} missing after restart")
    s = res["summary"]
    print(
        f"summary: p99 {s['service_p99_ms']} ms (target <= 50), {s['service_speedup_vs_naive']}x naive req/s "
        f"(target >= 3), errors {s['service_errors']}, lost feedback {s['feedback_lost_after_kill']}; "
        f"torch row {s['service_torch_speedup_vs_naive']}x, p99 {s['service_torch_p99_ms']} ms"
    )
    for key in (k for k in s if k.startswith("service_speedup_vs_naive_") and k.endswith("_client")):
        other = key.removeprefix("service_speedup_vs_naive_").removesuffix("_client")
        print(f"  with the {other} client: {s[key]}x naive req/s, p99 {s[f'service_p99_ms_{other}_client']} ms")
    print(
        f"wrote {args.out} and {args.out.with_suffix('.png')}"
        + (f", merged into {args.merge_into}" if args.merge_into else "")
    )


if __name__ == "__main__":
    main()
