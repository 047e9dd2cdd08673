"""`growthcurve monitor ...`: fit the sentiment/topic models, run over a stream, list alerts, serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError, ModelError
from growthcurve.serving.launch import ApiKeyEnv, ApiKeyFile, Host, MaxBatch, MaxWaitMs, Port, Store
from growthcurve.serving.settings import ServeSettings

monitor_app = typer.Typer(
    help="Financial sentiment monitor: topic + sentiment over a stream, alerts on negative surges.",
    no_args_is_help=True,
)
console = Console()


def register(app: typer.Typer) -> None:
    """Add the `monitor` command group to the root CLI."""
    app.add_typer(monitor_app, name="monitor")


def _log(msg: str) -> None:
    style = "bold red" if msg.startswith("ALERT") else "yellow" if msg.startswith("warning") else None
    console.print(msg, style=style, highlight=False, soft_wrap=True)


def _window_seconds(window: str) -> float:
    import pandas as pd

    try:
        seconds = pd.Timedelta(window).total_seconds()
    except ValueError:
        raise ConfigError(f"--window '{window}' is not a duration (e.g. 15min, 1h, 1D)") from None
    if seconds <= 0:
        raise ConfigError(f"--window must be positive (got '{window}')")
    return seconds


@monitor_app.command("fit")
def fit_cmd(
    out: Annotated[Path, typer.Option(help="monitor folder to write")] = Path("runs/monitor"),
    data: Annotated[Path | None, typer.Option(help="labelled train file (default: generated headlines)")] = None,
    dev: Annotated[Path | None, typer.Option(help="labelled dev file")] = None,
    text_column: Annotated[str, typer.Option(help="text column")] = "text",
    sentiment_column: Annotated[str, typer.Option(help="sentiment label column")] = "sentiment",
    topic_column: Annotated[str, typer.Option(help="topic label column (absent: no topic model)")] = "topic",
    negative_label: Annotated[str | None, typer.Option(help="the negative label (default: negative/bearish)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="engine override, e.g. train.epochs=2")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train the sentiment model (and a topic model when the data has topics) through the fine-tuning engine."""
    from growthcurve.apps.monitor.model import fit_monitor

    meta = fit_monitor(
        out, data, dev, text_column, sentiment_column, topic_column, negative_label, set_, progress, _log
    )
    table = Table(title=f"monitor folder {out}")
    for col in ("model", "dev macro-F1", "dev accuracy"):
        table.add_column(col)
    for name in ("sentiment", "topic"):
        dev_m = meta.get(f"{name}_dev")
        if meta.get(f"{name}_run"):
            f1 = "–" if not dev_m else f"{dev_m.get('macro_f1', float('nan')):.4f}"
            acc = "–" if not dev_m else f"{dev_m.get('accuracy', float('nan')):.4f}"
            table.add_row(name, f1, acc)
    console.print(table)
    console.print(f"negative label: {meta['negative_label']}; run it with: growthcurve monitor run {out} STREAM")


@monitor_app.command("run")
def run_cmd(
    monitor_dir: Annotated[Path, typer.Argument(help="monitor folder written by `monitor fit`")],
    source: Annotated[str, typer.Argument(help="JSONL file, folder of .jsonl files, or - for stdin")],
    name: Annotated[str, typer.Option(help="monitor name (its position and alerts in the store)")] = "default",
    store: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: GROWTHCURVE_DB_URL or sqlite)")] = None,
    window: Annotated[str, typer.Option(help="window length, e.g. 15min, 1h")] = "1h",
    baseline_windows: Annotated[int, typer.Option(help="windows in the rolling baseline")] = 24,
    alpha: Annotated[float, typer.Option(help="alert level after correction across topics")] = 0.005,
    min_volume: Annotated[int, typer.Option(help="texts a topic needs in a window to be tested")] = 20,
    min_baseline: Annotated[int, typer.Option(help="texts a topic needs in its baseline to be tested")] = 100,
    correction: Annotated[str, typer.Option(help="holm, fdr_bh, bonferroni or none")] = "holm",
    max_scale: Annotated[int, typer.Option(help="also test the last k windows together (1: each alone)")] = 3,
    batch_size: Annotated[int, typer.Option(help="texts classified and committed per batch")] = 64,
    follow: Annotated[bool, typer.Option(help="keep polling for new lines/files (Ctrl-C stops)")] = False,
    poll: Annotated[float, typer.Option(help="seconds between polls with --follow")] = 1.0,
    webhook: Annotated[str | None, typer.Option(help="POST each alert as JSON to this URL")] = None,
    webhook_timeout: Annotated[float, typer.Option(help="seconds per webhook attempt")] = 5.0,
    webhook_retries: Annotated[int, typer.Option(help="retries after a timeout or 5xx")] = 3,
    out: Annotated[Path | None, typer.Option(help="write timeseries.csv and trend.png here")] = None,
    negative_label: Annotated[str | None, typer.Option(help="override the folder's negative label")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar (bytes of the files, or texts)")] = True,
) -> None:
    """Classify a stream in batches, count per topic and window, alert when the negative share surges."""
    from growthcurve.apps.monitor.detect import DetectorSettings
    from growthcurve.apps.monitor.model import RunClassifier
    from growthcurve.apps.monitor.pipeline import StreamMonitor, write_outputs
    from growthcurve.store import init_db

    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ConfigError(f"--webhook must be an http(s) URL (got '{webhook}')")
    if webhook_retries < 0 or webhook_timeout <= 0:
        raise ConfigError("--webhook-retries must be >= 0 and --webhook-timeout positive")
    settings = DetectorSettings(
        _window_seconds(window),
        baseline_windows,
        alpha,
        min_volume,
        min_baseline,
        correction,  # type: ignore[arg-type]
        max_scale,
    )
    if source != "-" and not Path(source).exists():
        raise ConfigError(f"stream source '{source}' does not exist (a .jsonl file, a folder, or - for stdin)")
    with console.status(f"loading {monitor_dir} ..."):
        classifier = RunClassifier(monitor_dir, batch_size=batch_size, negative_label=negative_label)
    engine = init_db(store)  # after the checks: a refused command leaves no database behind
    mon = StreamMonitor(
        classifier,
        source,
        engine,
        name,
        settings,
        batch_size,
        follow,
        poll,
        webhook,
        webhook_timeout,
        webhook_retries,
        log=_log,
        progress=progress,
    )
    try:
        summary = mon.run()
    except KeyboardInterrupt:
        console.print("[yellow]stopped; every committed batch is saved, the next run continues from there[/]")
        summary = None
    if summary is not None:
        console.print(
            f"{summary.processed} texts ({summary.texts_per_s:.0f}/s), {summary.bad_lines} malformed lines skipped, "
            f"{summary.windows_closed} windows closed, {len(summary.alerts)} alerts"
            + (f", {summary.webhook_failures} webhook failures" if summary.webhook_failures else ""),
            highlight=False,
        )
        if summary.processed == 0 and summary.bad_lines == 0:
            console.print("[yellow]warning: the stream had no new lines[/]")
    if out is not None:
        csv_path, png_path = write_outputs(engine, name, out)
        console.print(f"[green]wrote[/] {csv_path} and {png_path}", highlight=False)


@monitor_app.command("alerts")
def alerts_cmd(
    name: Annotated[str | None, typer.Option(help="only this monitor")] = None,
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
    limit: Annotated[int, typer.Option(help="how many (newest first)")] = 20,
    store: Annotated[str | None, typer.Option(help="SQLAlchemy URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
) -> None:
    """The newest alerts in the store."""
    from growthcurve.apps.monitor.pipeline import list_alerts
    from growthcurve.store import init_db

    if limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")
    rows = list_alerts(init_db(store), name, topic, limit)
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, default=str))
        return
    table = Table(title=f"{len(rows)} newest alerts")
    for col in ("monitor", "topic", "window", "negative", "share", "baseline", "p_adj", "webhook"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["monitor"],
            r["topic"],
            f"{r['window_start']:%Y-%m-%d %H:%M}",
            f"{r['negative']}/{r['n']}",
            f"{r['negative_share']:.1%}",
            f"{r['baseline_share']:.1%}",
            f"{r['p_adjusted']:.1e}",
            r["webhook_status"] or "–",
        )
    console.print(table)


@monitor_app.command("serve")
def serve_cmd(
    monitor_dir: Annotated[Path, typer.Argument(help="monitor folder written by `monitor fit`")],
    host: Host = "127.0.0.1",
    port: Port = 8000,
    store: Store = None,
    max_batch: MaxBatch = 32,
    max_wait_ms: MaxWaitMs = 5.0,
    api_key_env: ApiKeyEnv = None,
    api_key_file: ApiKeyFile = None,
) -> None:
    """Serve the monitor: POST /predict (sentiment + topic per text), GET /alerts, feedback via /feedback."""
    from growthcurve.serving.launch import Launch, Loaded, run

    def check(_settings: object) -> None:
        if not monitor_dir.is_dir():
            raise ModelError(f"monitor folder '{monitor_dir}' does not exist: run `growthcurve monitor fit` first")

    def load(settings: ServeSettings, url: str) -> Loaded:
        from growthcurve.apps.monitor.model import RunClassifier
        from growthcurve.apps.monitor.service import MonitorHandler, alerts_router
        from growthcurve.serving import create_app
        from growthcurve.store import init_db

        with console.status(f"loading {monitor_dir} ..."):
            handler = MonitorHandler(RunClassifier(monitor_dir), monitor_dir.resolve().name)
        app = create_app([handler], settings, url, routers=[alerts_router(init_db(url))])
        return Loaded(app, [f"serving on http://{host}:{port} (POST /predict, GET /alerts; docs at /docs)"])

    fields = {"max_batch": max_batch, "max_wait_ms": max_wait_ms}
    run(Launch(host, port, store, api_key_env, api_key_file), fields, load, check, console)
