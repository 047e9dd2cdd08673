"""`growthcurve review build|add|token|serve|status|agreement|adjudicate|estimate|export|import`: a queue of
served traffic for people to label, the page they label on, and what their labels say."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from growthcurve.cliopts import in_range
from growthcurve.errors import ConfigError, DataError

review_app = typer.Typer(
    help="Review queue: people label served traffic; agreement; an unbiased accuracy estimate.",
    no_args_is_help=True,
)
console = Console()

_Store = Annotated[
    str | None, typer.Option("--store", help="SQLAlchemy URL of the store (default: GROWTHCURVE_DB_URL or sqlite)")
]
_Json = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def register(app: typer.Typer) -> None:
    """Add the `review` command group to the root CLI."""
    app.add_typer(review_app, name="review")


def _engine(url: str | None, create: bool = False) -> sa.Engine:
    """The store, migrated; reading commands never create an empty SQLite file."""
    from growthcurve.review.queue import open_engine
    from growthcurve.store import default_url, get_engine

    url = url or default_url()
    eng = get_engine(url)
    db = eng.url.database
    eng.dispose()
    sqlite_file = eng.url.get_backend_name() == "sqlite" and db not in (None, "", ":memory:")
    if not create and sqlite_file and not Path(str(db)).is_file():
        raise DataError(f"store '{url}' does not exist (no file '{db}'); give the --store the queue was built in")
    return open_engine(url)


def _when(value: str | None, what: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--{what} '{value}' is not an ISO date or time (e.g. 2026-12-01T09:00)") from None
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


@review_app.command("build")
def build_cmd(
    name: Annotated[str, typer.Argument(help="the new queue's name (a queue is a snapshot of a window)")],
    store: _Store = None,
    run: Annotated[Path | None, typer.Option(help="the served run folder: its labels and model version")] = None,
    labels: Annotated[str | None, typer.Option(help="the label set, comma-separated (without --run)")] = None,
    mix: Annotated[
        str, typer.Option(help="strategy shares: uncertainty, random, disagreement, handoff")
    ] = "uncertainty=4,random=3,disagreement=1.5,handoff=1.5",
    since: Annotated[str | None, typer.Option(help="served at or after this time (ISO, UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="served before this time (ISO, UTC)")] = None,
    version: Annotated[list[str] | None, typer.Option("--version", help="only these model versions")] = None,
    file: Annotated[list[Path] | None, typer.Option("--file", help="also queue this file's texts")] = None,
    text_column: Annotated[str, typer.Option(help="the text column of --file")] = "text",
    no_traffic: Annotated[bool, typer.Option("--no-traffic", help="queue only the files")] = False,
    rescore: Annotated[bool, typer.Option(help="score every item with --run (full probabilities)")] = False,
    measure: Annotated[str, typer.Option(help="uncertainty measure: margin or entropy")] = "margin",
    double_share: Annotated[
        float, typer.Option(help="share of items that go to two reviewers", callback=in_range(0.0, 1.0))
    ] = 0.1,
    allow_new_labels: Annotated[bool, typer.Option(help="reviewers may add a label")] = False,
    size: Annotated[int, typer.Option(min=1, help="items listed per stream")] = 2000,
    floor: Annotated[
        float,
        typer.Option(help="weight every item keeps in the other streams", callback=in_range(0.0, 1.0, lo_open=True)),
    ] = 0.03,
    seed: Annotated[int, typer.Option(help="seed of the priority keys and the double-review draw")] = 0,
) -> None:
    """Build a queue from the store's served predictions and assistant handoffs (and files)."""
    from growthcurve.review.queue import QueueConfig, build_queue, parse_mix

    try:
        cfg = QueueConfig(
            mix=parse_mix(mix),
            measure=measure,
            floor=floor,
            double_share=double_share,
            allow_new_labels=allow_new_labels,
            size=size,
            seed=seed,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid review option: {exc}".replace("\n", " ")) from None
    label_list = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    _engine(store, create=bool(file)).dispose()  # traffic needs an existing store; files may start a new one
    s = build_queue(
        store,
        name,
        run=run,
        labels=label_list,
        config=cfg,
        since=_when(since, "since"),
        until=_when(until, "until"),
        versions=version or [],
        files=file or [],
        text_column=text_column,
        traffic=not no_traffic,
        rescore=rescore,
    )
    src = ", ".join(f"{k} {v}" for k, v in sorted(s.sources.items()))
    console.print(f"queue {s.queue}: {s.items} item(s) from {s.requests} request(s)/row(s) ({src})", highlight=False)
    console.print(
        "streams: " + ", ".join(f"{k} {v}" for k, v in s.streams.items()) + f"; {s.doubles} to two reviewers",
        highlight=False,
    )
    for d in s.dropped_streams:
        console.print(f"[yellow]note:[/] no item for the {d} stream: left out of the mix", highlight=False)
    console.print(f"next: growthcurve review token NAME --queue {s.queue}; growthcurve review serve {s.queue}")


@review_app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="the queue")],
    file: Annotated[Path, typer.Argument(help="CSV/TSV/JSONL/Parquet with a text column")],
    store: _Store = None,
    text_column: Annotated[str, typer.Option(help="the text column")] = "text",
) -> None:
    """Queue an uploaded file's texts in an existing queue (texts already there are collapsed)."""
    from growthcurve.review.queue import add_file

    _engine(store).dispose()
    n = add_file(store, name, file, text_column)
    console.print(f"{n} new item(s) in queue {name}", highlight=False)


@review_app.command("token")
def token_cmd(
    reviewer: Annotated[str, typer.Argument(help="the reviewer's name, stored with every answer")],
    store: _Store = None,
    queue: Annotated[str | None, typer.Option(help="only this queue (default: every queue)")] = None,
    hours: Annotated[
        float, typer.Option(help="hours until the token expires", callback=in_range(0.0, lo_open=True))
    ] = 24.0,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="a token that never expires")] = False,
) -> None:
    """Make a login token for a reviewer (shown once; the store keeps only its hash)."""
    from growthcurve.review.auth import add_reviewer

    engine = _engine(store, create=True)
    try:
        token = add_reviewer(engine, reviewer, None if no_expiry else hours, queue)
    finally:
        engine.dispose()
    console.print(token, highlight=False, soft_wrap=True)


@review_app.command("serve")
def serve_cmd(
    name: Annotated[str, typer.Argument(help="the queue")],
    store: _Store = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8780,
) -> None:
    """Serve the reviewers' page for a queue (keys: 1-9, /, Enter, x, u, s)."""
    from growthcurve.review.web import create_review_app
    from growthcurve.serving.launch import bind_socket, serve_app

    engine = _engine(store)
    app = create_review_app(engine, name)
    sock = bind_socket(host, port)
    console.print(f"review page for queue {name}: http://{host}:{port}/ (Ctrl-C stops)", highlight=False)
    try:
        serve_app(app, sock)
    finally:
        engine.dispose()


@review_app.command("status")
def status_cmd(
    name: Annotated[str, typer.Argument(help="the queue")], store: _Store = None, json_: _Json = False
) -> None:
    """Items listed, decided and open per stream, and answers per reviewer."""
    from growthcurve.review.queue import snapshot

    engine = _engine(store)
    try:
        snap = snapshot(engine, name)
    finally:
        engine.dispose()
    rows = []
    for st, slots in snap.streams.items():
        its = [snap.items[i] for i, _ in slots]
        rows.append(
            {
                "stream": st,
                "share": snap.queue.config.get("mix", {}).get(st),
                "listed": len(its),
                "decided": sum(1 for it in its if it.outcome() is not None),
                "disagreements": sum(1 for it in its if it.disagreement),
            }
        )
    by: dict[str, int] = {}
    for it in snap.items.values():
        for a in it.answers:
            if a.action != "skip":
                by[a.reviewer] = by.get(a.reviewer, 0) + 1
    if json_:
        print(json.dumps({"queue": name, "items": len(snap.items), "streams": rows, "reviewers": by}, indent=1))
        return
    t = Table(title=f"queue {name}: {len(snap.items)} item(s)")
    for col in ("stream", "share", "listed", "decided", "to adjudicate"):
        t.add_column(col, justify="left" if col == "stream" else "right")
    for r in rows:
        share = "–" if r["share"] is None else f"{r['share']:g}"
        t.add_row(r["stream"], share, str(r["listed"]), str(r["decided"]), str(r["disagreements"]))
    console.print(t)
    if by:
        console.print("answers: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())), highlight=False)


@review_app.command("agreement")
def agreement_cmd(
    name: Annotated[str, typer.Argument(help="the queue")], store: _Store = None, json_: _Json = False
) -> None:
    """Cohen's and Fleiss' kappa on items two reviewers answered, per label and overall; disagreements."""
    from growthcurve.review.analysis import agreement
    from growthcurve.review.queue import snapshot

    engine = _engine(store)
    try:
        ag = agreement(snapshot(engine, name))
    finally:
        engine.dispose()
    if json_:
        print(json.dumps(ag.as_dict(), indent=1, ensure_ascii=False))
        return
    if ag.pairs == 0:
        console.print(f"queue {name}: no item has two answers yet (agreement needs doubly-reviewed items)")
        return

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    console.print(
        f"{ag.pairs} doubly-reviewed item(s): observed agreement {f(ag.observed)}, Cohen's kappa {f(ag.cohen)}, "
        f"Fleiss' kappa {f(ag.fleiss)}",
        highlight=False,
    )
    t = Table(title="per label (one-vs-rest Cohen's kappa)")
    t.add_column("label", overflow="fold", max_width=40)
    t.add_column("answers", justify="right")
    t.add_column("kappa", justify="right")
    for lab, d in sorted(ag.per_label.items()):
        t.add_row(lab, str(d["n"]), f(d["kappa"]))
    console.print(t)
    if ag.disagreements:
        dis = Table(title="disagreements (growthcurve review adjudicate QUEUE ITEM LABEL)")
        dis.add_column("item", justify="right")
        dis.add_column("text", overflow="fold", max_width=30)
        dis.add_column("answers", overflow="fold", max_width=28)
        dis.add_column("settled", overflow="fold", max_width=12)
        for x in ag.disagreements:
            ans = "; ".join(f"{k}: {v}" for k, v in x["answers"].items())
            dis.add_row(str(x["item_id"]), x["text"], ans, x["adjudicated"] or "–")
        console.print(dis)


@review_app.command("adjudicate")
def adjudicate_cmd(
    name: Annotated[str, typer.Argument(help="the queue")],
    item: Annotated[int, typer.Argument(help="the item id (review agreement lists them)")],
    label: Annotated[str | None, typer.Argument(help="the final label (leave out with --reject)")] = None,
    reject: Annotated[bool, typer.Option("--reject", help="the item is not in scope")] = False,
    by: Annotated[str, typer.Option(help="who settles it")] = "adjudicator",
    store: _Store = None,
) -> None:
    """Settle an item (usually a disagreement) with a final label or --reject."""
    from growthcurve.review.queue import adjudicate

    if (label is None) == (not reject):
        raise ConfigError("give either the final LABEL or --reject")
    engine = _engine(store)
    try:
        adjudicate(engine, name, item, by, None if reject else label)
    finally:
        engine.dispose()
    console.print(f"item {item} of queue {name}: {label or 'not in scope'} (by {by})", highlight=False)


def estimate_payload(url: str | None, name: str, version: str | None, alpha: float) -> dict[str, Any]:
    """The estimate of ``version`` on queue ``name`` with the run's offline test accuracy beside it."""
    from growthcurve.review.analysis import estimate, offline_accuracy
    from growthcurve.review.queue import snapshot

    engine = _engine(url)
    try:
        snap = snapshot(engine, name)
    finally:
        engine.dispose()
    est = estimate(snap, version, alpha)
    out = est.as_dict()
    out["queue"] = name
    out["confidence"] = 1 - alpha
    out["offline_test_accuracy"] = offline_accuracy(snap.queue.run) if est.version == snap.queue.model_version else None
    return out


@review_app.command("estimate")
def estimate_cmd(
    name: Annotated[str, typer.Argument(help="the queue")],
    store: _Store = None,
    version: Annotated[str | None, typer.Option(help="model version (default: the queue's run's)")] = None,
    alpha: Annotated[
        float, typer.Option(help="1 - confidence of the intervals", callback=in_range(0, 1, lo_open=True, hi_open=True))
    ] = 0.05,
    json_: _Json = False,
) -> None:
    """The served version's accuracy on real traffic: Wilson on the random stream, importance-weighted from all."""
    out = estimate_payload(store, name, version, alpha)
    if json_:
        print(json.dumps(out, indent=1))
        return
    conf = f"{100 * out['confidence']:g}%"
    t = Table(title=f"accuracy of {out['version']} on queue {name} ({out['requests']} requests, {conf} intervals)")
    for col in ("estimate", "accuracy", "interval", "reviewed items", "n_eff"):
        t.add_column(col, justify="left" if col == "estimate" else "right")
    for key, title in (("random", "random stream (Wilson)"), ("weighted", "all streams (weighted)")):
        iv = out[key]
        if iv is None:
            t.add_row(title, "–", "–", "0", "–")
        else:
            t.add_row(
                title, f"{iv['estimate']:.4f}", f"{iv['low']:.4f}–{iv['high']:.4f}", str(iv["n"]), f"{iv['n_eff']:.1f}"
            )
    off = out["offline_test_accuracy"]
    t.add_row("offline test split", "–" if off is None else f"{off:.4f}", "", "", "")
    console.print(t)
    console.print(
        f"{out['reviewed']} of {out['items']} item(s) decided; {out['out_of_scope']} not in scope (left out)",
        highlight=False,
    )


@review_app.command("export")
def export_cmd(
    name: Annotated[str, typer.Argument(help="the queue")],
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, label-studio or argilla")] = "jsonl",
    store: _Store = None,
) -> None:
    """Export the queue's items and answers for Label Studio, Argilla or as JSON lines."""
    from growthcurve.review.interop import export_queue

    engine = _engine(store)
    try:
        n = export_queue(engine, name, fmt, out)
    finally:
        engine.dispose()
    console.print(f"{n} item(s) of queue {name} -> {out} ({fmt})", highlight=False)


@review_app.command("import")
def import_cmd(
    name: Annotated[str, typer.Argument(help="the queue")],
    file: Annotated[Path, typer.Argument(help="labelled rows: jsonl, a Label Studio export or Argilla records")],
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl, label-studio or argilla")] = "auto",
    reviewer: Annotated[str, typer.Option(help="reviewer name for rows that name none")] = "import",
    store: _Store = None,
) -> None:
    """Import labels made elsewhere (every row is checked first: a bad file imports nothing)."""
    from growthcurve.review.interop import import_labels

    engine = _engine(store)
    try:
        s = import_labels(engine, name, file, fmt, reviewer)
    finally:
        engine.dispose()
    console.print(
        f"{s.answers} answer(s) imported into queue {name} ({s.new_items} new item(s); {s.already} already there)",
        highlight=False,
    )
