"""`monitor run`: classify a stream in batches, count per topic and window, alert on negative surges.

Exactly-once per line: after each batch, the closed windows' rows, the alerts and the stream position
(file, byte offset, line) plus the open window's counts are written in **one** database transaction. A
kill before the commit loses only uncommitted work, which the restarted monitor redoes from the stored
position; a kill after it leaves nothing to redo. Webhooks are sent after the commit (an alert is in the
store before anyone is told) and their outcome is written back to the alert's ``webhook_status``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import sqlalchemy as sa
from tqdm.auto import tqdm

from growthcurve.apps.monitor.detect import DetectorSettings, SurgeDetector
from growthcurve.apps.monitor.stream import STDIN, BadLine, Record, read_lines, stdin_lines, stream_files
from growthcurve.apps.monitor.tables import monitor_alerts, monitor_state, monitor_windows
from growthcurve.apps.monitor.webhook import post_alert
from growthcurve.errors import ConfigError, DataError

MAX_PRINTED_BAD = 20


class Classifier(Protocol):
    """Anything that says, per text, whether it is negative and (optionally) its topic."""

    def classify(self, texts: list[str]) -> tuple[list[bool], list[str | None]]: ...


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)


@dataclass
class RunSummary:
    """What one `monitor run` did (``texts_per_s`` over the whole call, classification included)."""

    processed: int = 0
    bad_lines: int = 0
    late: int = 0
    windows_closed: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    webhook_failures: int = 0
    seconds: float = 0.0

    @property
    def texts_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


def load_state(engine: sa.Engine, name: str) -> dict[str, Any] | None:
    """The stored state of monitor ``name`` (None when it never ran)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(monitor_state.c.state).where(monitor_state.c.monitor == name)).first()
    return None if row is None else dict(row[0])


def list_alerts(
    engine: sa.Engine, monitor: str | None = None, topic: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest alerts first (optionally of one monitor / topic)."""
    q = sa.select(monitor_alerts).order_by(monitor_alerts.c.window_start.desc(), monitor_alerts.c.id.desc())
    if monitor is not None:
        q = q.where(monitor_alerts.c.monitor == monitor)
    if topic is not None:
        q = q.where(monitor_alerts.c.topic == topic)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.limit(limit))]


def list_windows(engine: sa.Engine, monitor: str) -> list[dict[str, Any]]:
    """The monitor's time series, oldest window first."""
    q = (
        sa.select(monitor_windows)
        .where(monitor_windows.c.monitor == monitor)
        .order_by(monitor_windows.c.window_start, monitor_windows.c.topic)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


class StreamMonitor:
    """One monitor over one source; ``run()`` processes until the stream ends (or forever with ``follow``)."""

    def __init__(
        self,
        classifier: Classifier,
        source: str | Path,
        engine: sa.Engine,
        name: str = "default",
        settings: DetectorSettings | None = None,
        batch_size: int = 64,
        follow: bool = False,
        poll_s: float = 1.0,
        webhook: str | None = None,
        webhook_timeout_s: float = 5.0,
        webhook_retries: int = 3,
        webhook_transport: httpx.BaseTransport | None = None,
        webhook_backoff_s: float = 0.5,
        log: Callable[[str], None] = print,
        progress: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1 (got {batch_size})")
        if poll_s <= 0:
            raise ConfigError(f"--poll must be positive (got {poll_s})")
        self.classifier = classifier
        self.source = source if source == STDIN else Path(source)
        self.engine = engine
        self.name = name
        self.settings = settings or DetectorSettings()
        self.batch_size = batch_size
        self.follow = follow
        self.poll_s = poll_s
        self.webhook = webhook
        self.webhook_retries = webhook_retries
        self.webhook_backoff_s = webhook_backoff_s
        self.log = log
        self.progress = progress
        self._client = (
            httpx.Client(timeout=webhook_timeout_s, transport=webhook_transport) if webhook is not None else None
        )
        state = load_state(engine, name)
        # monitors stored before multi-scale tests (max_scale) tested each window alone
        stored = {"max_scale": 1, **state["settings"]} if state is not None and "settings" in state else None
        if state is not None and stored != asdict(self.settings):
            raise ConfigError(
                f"monitor '{name}' was started with other test settings ({state.get('settings')}); "
                "resume it with those, or start a new monitor with --name"
            )
        state = state or {}
        self.positions: dict[str, dict[str, int]] = state.get("positions", {})
        # a pipe cannot be re-read: stdin positions count lines of this run's pipe only
        self.stdin_line = 0 if source == STDIN else int(state.get("stdin_line", 0))
        self.detector = SurgeDetector.from_state(self.settings, state.get("detector", {}))
        self.processed_total = int(state.get("processed", 0))
        self.bad_total = int(state.get("bad_lines", 0))
        self._stdin: Iterator[Record | BadLine] | None = None

    def _say(self, msg: str) -> None:
        """A log line that does not tear the progress bar (tqdm clears it, the line is written, it redraws)."""
        with tqdm.external_write_mode():
            self.log(msg)

    # --- reading -------------------------------------------------------------------------------------
    def _bytes_read(self, positions: dict[str, dict[str, int]] | None = None) -> int:
        """Bytes of the source files read so far (the stored offsets)."""
        return sum(int(p.get("offset", 0)) for p in (positions if positions is not None else self.positions).values())

    def _bytes_total(self) -> int | None:
        """Bytes of the source files in all, for a bar with an end; None for stdin or --follow (no end)."""
        if self.source == STDIN or self.follow:
            return None
        return sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        assert isinstance(self.source, Path)
        if self.follow and not self.source.exists():
            raise DataError(
                f"stream source '{self.source}' disappeared; every processed line is committed: "
                "restart `monitor run` when it is back and it continues where it stopped"
            )
        return stream_files(self.source)

    def _next_batch(self) -> tuple[list[Record | BadLine], dict[str, dict[str, int]], int]:
        """Up to ``batch_size`` usable lines (plus the bad ones met on the way) and the position after them."""
        items: list[Record | BadLine] = []
        positions = {k: dict(v) for k, v in self.positions.items()}
        good = 0
        if self.source == STDIN:
            if self._stdin is None:
                self._stdin = stdin_lines(0)
            line = self.stdin_line
            for it in self._stdin:
                items.append(it)
                line = it.line
                good += isinstance(it, Record)
                if good >= self.batch_size:
                    break
            return items, positions, line
        for path in self._files():
            key = str(path.resolve())
            pos = positions.get(key, {"offset": 0, "line": 0})
            try:
                fh = path.open("rb")
            except FileNotFoundError:
                continue  # removed between listing and opening: the next poll sees the folder as it is
            with fh:
                for it in read_lines(fh, str(path), pos["line"], pos["offset"], final=not self.follow):
                    items.append(it)
                    positions[key] = {"offset": it.end_offset, "line": it.line}
                    good += isinstance(it, Record)
                    if good >= self.batch_size:
                        return items, positions, self.stdin_line
        return items, positions, self.stdin_line

    # --- one batch -----------------------------------------------------------------------------------
    def _commit(
        self,
        rows: list[dict[str, Any]],
        positions: dict[str, dict[str, int]],
        stdin_line: int,
        processed: int,
        bad: int,
    ) -> list[dict[str, Any]]:
        """Write the closed windows, their alerts and the new position in one transaction."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        w = self.settings.window_seconds
        win_rows = [
            {
                "monitor": self.name,
                "topic": r["topic"],
                "window_start": _utc(r["window_start"]),
                "n": r["n"],
                "negative": r["negative"],
                "baseline_n": r["baseline_n"],
                "baseline_share": r["baseline_share"],
                "p_value": r["p_value"],
                "p_adjusted": r["p_adjusted"],
                "alert": r["alert"],
            }
            for r in rows
        ]
        alerts = [
            {
                "monitor": self.name,
                "topic": r["topic"],
                "window_start": _utc(r["window_start"]),
                "window_end": _utc(r["window_start"] + w),
                "created": now,
                "n": r["n"],
                "negative": r["negative"],
                "negative_share": r["negative_share"],
                "baseline_n": r["baseline_n"],
                "baseline_share": r["baseline_share"],
                "p_value": r["p_value"],
                "p_adjusted": r["p_adjusted"],
                "test": f"one-sided Fisher exact vs {self.settings.baseline_windows} windows, "
                f"{self.settings.correction} across topics, alpha {self.settings.alpha}",
                "webhook_status": "pending" if self.webhook else None,
            }
            for r in rows
            if r["alert"]
        ]
        state = {
            "settings": asdict(self.settings),
            "positions": positions,
            "stdin_line": stdin_line,
            "detector": self.detector.to_state(),
            "processed": self.processed_total + processed,
            "bad_lines": self.bad_total + bad,
        }
        with self.engine.begin() as conn:
            if win_rows:
                conn.execute(monitor_windows.insert(), win_rows)
            ids = []
            for a in alerts:
                key = conn.execute(monitor_alerts.insert().values(**a)).inserted_primary_key
                assert key is not None  # an INSERT of one row always has its key
                ids.append(key[0])
            conn.execute(monitor_state.delete().where(monitor_state.c.monitor == self.name))
            conn.execute(monitor_state.insert().values(monitor=self.name, updated=now, state=state))
        self.positions, self.stdin_line = positions, stdin_line
        self.processed_total += processed
        self.bad_total += bad
        return [{"id": i, **a} for i, a in zip(ids, alerts, strict=True)]

    def _resend_pending(self, summary: RunSummary) -> None:
        """Alerts stored but never sent (a kill between the commit and the POST): send them first."""
        q = sa.select(monitor_alerts).where(
            monitor_alerts.c.monitor == self.name, monitor_alerts.c.webhook_status == "pending"
        )
        with self.engine.connect() as conn:
            pending = [dict(r._mapping) for r in conn.execute(q.order_by(monitor_alerts.c.id))]
        if pending:
            self._say(f"warning: {len(pending)} stored alert(s) were never sent to the webhook: sending them now")
            self._announce(pending, summary, quiet=True)

    def _announce(self, alerts: list[dict[str, Any]], summary: RunSummary, quiet: bool = False) -> None:
        for a in alerts:
            if quiet:
                self._notify(a, summary)
                continue
            self._say(
                f"ALERT {self.name} topic={a['topic']} window={a['window_start']:%Y-%m-%d %H:%M} "
                f"negative {a['negative']}/{a['n']} = {a['negative_share']:.1%} vs baseline "
                f"{a['baseline_share']:.1%} (n={a['baseline_n']}), p_adj={a['p_adjusted']:.2e}"
            )
            summary.alerts.append(a)
            self._notify(a, summary)

    def _notify(self, a: dict[str, Any], summary: RunSummary) -> None:
        """POST one stored alert and record the outcome in its row; failures are counted, never raised."""
        if self._client is not None and self.webhook is not None:
            payload = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in a.items()}
            ok, status = post_alert(
                self._client, self.webhook, payload, retries=self.webhook_retries, backoff_s=self.webhook_backoff_s
            )
            if not ok:
                summary.webhook_failures += 1
                self._say(f"warning: webhook {self.webhook} {status} for alert {a['id']}; the alert is stored")
            with self.engine.begin() as conn:
                conn.execute(
                    monitor_alerts.update().where(monitor_alerts.c.id == a["id"]).values(webhook_status=status[:256])
                )

    def run(self, max_batches: int | None = None) -> RunSummary:
        """Process batches until the stream is exhausted (``follow``: until interrupted or the source goes)."""
        summary = RunSummary()
        t0 = time.perf_counter()
        batches = 0
        late0 = self.detector.late
        total = self._bytes_total() if self.progress else None
        # bytes of the files, so the bar has an end and an ETA; texts for stdin or --follow
        bar = tqdm(
            total=total,
            initial=self._bytes_read() if total is not None else 0,
            unit="B" if total is not None else " texts",
            unit_scale=total is not None,
            desc=f"monitor {self.name}",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        try:
            self._resend_pending(summary)
            while max_batches is None or batches < max_batches:
                items, positions, stdin_line = self._next_batch()
                records = [it for it in items if isinstance(it, Record)]
                bad = [it for it in items if isinstance(it, BadLine)]
                for b in bad:
                    summary.bad_lines += 1
                    if summary.bad_lines <= MAX_PRINTED_BAD:
                        self._say(f"warning: skipped {b}")
                if bad and not records and summary.processed == 0 and not self.follow:
                    # a batch without a usable line reads to the end: every new line of the stream is malformed,
                    # a wrong file or format rather than a quiet hour; nothing is committed, so a fix reruns it
                    raise DataError(
                        f"none of the {len(bad)} new lines of '{self.source}' is usable (first: {bad[0]}); nothing "
                        'was recorded: each line must be a JSON object {"timestamp": ..., "text": ...}'
                    )
                if not items:
                    if not self.follow:
                        break
                    time.sleep(self.poll_s)
                    continue
                rows: list[dict[str, Any]] = []
                if records:
                    negative, topics = self.classifier.classify([r.text for r in records])
                    for r, neg, top in zip(records, negative, topics, strict=True):
                        rows += self.detector.add(r.epoch, r.topic or top or "all", bool(neg))
                alerts = self._commit(rows, positions, stdin_line, len(records), len(bad))
                summary.processed += len(records)
                summary.windows_closed += len({r["window"] for r in rows})
                self._announce(alerts, summary)
                batches += 1
                bar.update(self._bytes_read() - bar.n if total is not None else len(records))
                bar.set_postfix(texts=summary.processed, alerts=len(summary.alerts), refresh=False)
            if not self.follow and (max_batches is None or batches < max_batches):
                rows = self.detector.close()  # the stream ended: its last window is complete
                alerts = self._commit(rows, self.positions, self.stdin_line, 0, 0)
                summary.windows_closed += len({r["window"] for r in rows})
                self._announce(alerts, summary)
        finally:
            bar.close()
            summary.late = self.detector.late - late0
            summary.seconds = time.perf_counter() - t0
            if self._client is not None:
                self._client.close()
        if summary.bad_lines > MAX_PRINTED_BAD:
            self._say(f"warning: {summary.bad_lines} malformed lines skipped in all (first {MAX_PRINTED_BAD} shown)")
        if summary.late:
            self._say(f"warning: {summary.late} texts were older than their stream's open window and were skipped")
        return summary


def write_outputs(engine: sa.Engine, name: str, out_dir: Path) -> tuple[Path, Path]:
    """The time-series CSV and the trend PNG (negative share per topic, alerts marked) from the store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from growthcurve.atomic import atomic_open, atomic_path

    rows = list_windows(engine, name)
    cols = [
        "window_start",
        "topic",
        "n",
        "negative",
        "negative_share",
        "baseline_n",
        "baseline_share",
        "p_value",
        "p_adjusted",
        "alert",
    ]
    df = pd.DataFrame(rows, columns=[c for c in cols if c != "negative_share"])
    df.insert(4, "negative_share", df["negative"] / df["n"].where(df["n"] > 0))
    df = df[cols]
    csv_path, png_path = out_dir / "timeseries.csv", out_dir / "trend.png"
    with atomic_open(csv_path, "w") as fh:
        df.to_csv(fh, index=False)
    fig, ax = plt.subplots(figsize=(10, 4))
    for topic, g in df.groupby("topic"):
        ax.plot(g["window_start"], g["negative_share"], lw=1, label=str(topic))
        hit = g[g["alert"].astype(bool)]
        ax.scatter(hit["window_start"], hit["negative_share"], color="red", marker="v", s=40, zorder=3)
    ax.set_ylabel("negative share")
    ax.set_title(f"monitor '{name}': negative share per topic and window (red: alert)")
    if len(df):
        ax.set_ylim(0, float(np.nanmax(df["negative_share"].to_numpy(dtype=float))) * 1.15 + 0.01)
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.autofmt_xdate()
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return csv_path, png_path
