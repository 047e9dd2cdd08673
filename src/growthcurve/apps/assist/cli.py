"""`growthcurve assist ...`: fit, chat with, serve and evaluate the customer-service assistant."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError, ModelError
from growthcurve.serving.launch import ApiKeyEnv, ApiKeyFile, Host, MaxBatch, MaxWaitMs, Port, Store
from growthcurve.serving.settings import ServeSettings

assist_app = typer.Typer(
    help="Customer-service assistant: intent + FAQ retrieval + calibrated handoff to a human.",
    no_args_is_help=True,
)
console = Console()


def register(app: typer.Typer) -> None:
    """Add the `assist` command group to the root CLI."""
    app.add_typer(assist_app, name="assist")


def _log(msg: str) -> None:
    console.print(msg, highlight=False)


def print_metrics(rows: dict[str, dict[str, Any]], title: str) -> None:
    """One row per split: intent accuracy, hit@1/3, ECE before/after, handoff rate, answered accuracy."""
    table = Table(title=title)
    cols = ("split", "rows", "intent acc", "hit@1", "hit@3", "ECE raw", "ECE cal", "handoff", "answered acc")
    for c in cols:
        table.add_column(c, justify="left" if c == "split" else "right")
    for split, m in rows.items():
        acc = m["answered_accuracy"]
        table.add_row(
            split,
            str(m["rows"]),
            f"{m['intent_accuracy']:.3f}",
            f"{m['hit@1']:.3f}",
            f"{m['hit@3']:.3f}",
            f"{m['ece_before']:.3f}",
            f"{m['ece_after']:.3f}",
            f"{m['handoff_rate']:.3f}",
            "–" if acc is None else f"{acc:.3f}",
        )
    console.print(table)


@assist_app.command("fit")
def fit_cmd(
    config: Annotated[Path | None, typer.Argument(help="YAML config (default: the bundled bilingual intents)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a key, e.g. answer.target_accuracy=0.95")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a finished run in output_dir")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train (or take) the intent model, index the FAQ, calibrate on dev and choose the handoff threshold."""
    import json

    from growthcurve.apps.assist.config import load_assist_config
    from growthcurve.apps.assist.pipeline import fit_assistant

    cfg = load_assist_config(config, set_)
    out = fit_assistant(cfg, overwrite=overwrite, progress=progress, log=_log)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    print_metrics(metrics, f"assist run {out}")
    console.print(f"[green]run saved to[/] {out}", highlight=False)


def _answer_line(r: dict[str, Any]) -> str:
    if r["outcome"] == "handoff":
        return f"[yellow]handoff[/] ({r['reason']}): {r['message']} [dim]intent {r['intent']}[/]"
    return f"{r['answer']}  [dim]({r['intent']}, confidence {r['confidence']:.2f})[/]"


@assist_app.command("chat")
def chat_cmd(
    run: Annotated[Path, typer.Argument(help="run folder written by `assist fit`")],
    session: Annotated[str | None, typer.Option(help="continue this session id (default: a new one)")] = None,
    store: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: GROWTHCURVE_DB_URL or sqlite)")] = None,
) -> None:
    """Interactive terminal chat (one question a line on stdin; an empty line or EOF ends). Every turn is
    logged in the store with the model version."""
    from growthcurve.apps.assist.pipeline import AssistRun, check_question, log_turn, new_session_id
    from growthcurve.errors import DataError
    from growthcurve.store import init_db

    if session is not None and not 1 <= len(session) <= 128:
        raise ConfigError("--session must be 1-128 characters")
    assistant = AssistRun(run)
    engine = init_db(store)
    sid = session or new_session_id()
    console.print(f"session {sid} · model {assistant.model_version} · empty line to stop", highlight=False)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            console.print("[bold]you>[/] ", end="")
        line = sys.stdin.readline()
        if not line or not line.strip():
            break
        q = line.rstrip("\n")
        try:
            check_question(q, assistant.max_question_chars)
        except DataError as exc:  # one bad line must not end the conversation
            console.print(f"[red]{exc}[/]", highlight=False)
            continue
        r = assistant.answer([q])[0]
        log_turn(engine, sid, "chat", assistant, q, r)
        console.print(_answer_line(r), highlight=False)
    console.print(f"session {sid} saved", highlight=False)


@assist_app.command("eval")
def eval_cmd(
    run: Annotated[Path, typer.Argument(help="run folder written by `assist fit`")],
    data: Annotated[Path, typer.Argument(help="labelled CSV/JSONL (the run's text and label columns)")],
    out: Annotated[Path | None, typer.Option(help="write metrics.json and coverage.png into this folder")] = None,
    text_column: Annotated[str, typer.Option(help="text column")] = "text",
    label_column: Annotated[str, typer.Option(help="intent column")] = "label",
) -> None:
    """Intent accuracy, hit@1/hit@3, handoff rate, answered accuracy and the coverage-vs-accuracy PNG."""
    from growthcurve.apps.assist.pipeline import AssistRun, evaluate_assistant, read_labelled
    from growthcurve.atomic import write_json

    assistant = AssistRun(run)
    texts, gold = read_labelled(data, text_column, label_column, assistant.labels)
    plot = None if out is None else out / "coverage.png"
    m = evaluate_assistant(assistant, texts, gold, plot, f"{data.name} · threshold {assistant.threshold:.3f}")
    print_metrics({data.name: m}, f"assist eval of {run} (threshold {assistant.threshold:.3f}, chosen on dev)")
    if out is not None:
        write_json(out / "metrics.json", m)
        console.print(f"[green]wrote[/] {out / 'metrics.json'} and {plot}", highlight=False)


@assist_app.command("serve")
def serve_cmd(
    run: Annotated[Path, typer.Argument(help="run folder written by `assist fit`")],
    host: Host = "127.0.0.1",
    port: Port = 8000,
    max_batch: MaxBatch = 32,
    max_wait_ms: MaxWaitMs = 5.0,
    api_key_env: ApiKeyEnv = None,
    api_key_file: ApiKeyFile = None,
    store: Store = None,
) -> None:
    """Serve the assistant on the serving layer: POST /answer, thumbs and corrected intents via /feedback."""
    from growthcurve.serving.launch import Launch, Loaded
    from growthcurve.serving.launch import run as launch

    def check(_settings: object) -> None:  # the cheap part of AssistRun's checks, before the store is opened
        if not (run / "assist.json").is_file():
            raise ModelError(f"'{run}' is not a finished assist run (no assist.json): run `growthcurve assist fit`")

    def load(settings: ServeSettings, url: str) -> Loaded:
        from growthcurve.apps.assist.pipeline import AssistRun
        from growthcurve.apps.assist.service import AssistHandler, answer_router
        from growthcurve.serving import create_app

        with console.status(f"loading {run} ..."):
            handler = AssistHandler(AssistRun(run))
        app = create_app([handler], settings, url, routers=[answer_router(url)])
        return Loaded(
            app, [f"serving {run} ({handler.model_version}) on http://{host}:{port} (POST /answer, /feedback)"]
        )

    fields = {"max_batch": max_batch, "max_wait_ms": max_wait_ms}
    launch(Launch(host, port, store, api_key_env, api_key_file), fields, load, check, console)
