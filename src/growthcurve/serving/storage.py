"""The serving layer's writes to the SQL store: one writer task, batched commits, ack after commit.

Why a writer of our own: SQLite allows one writer at a time, so concurrent request handlers that each
opened a transaction would queue on the file lock (``database is locked``) and each pay an fsync. Here
every write is a queued operation; one task takes whatever is queued, applies it in one transaction in
one thread, commits once and only then resolves each operation's future. A feedback request is answered
after the commit that contains it, so an acknowledged feedback is on disk.

Durability on SQLite: WAL journal with ``synchronous=FULL``. With WAL and NORMAL a commit is already safe
against ``kill -9`` of the server (the WAL pages are in the kernel's page cache and survive the process),
but not against a power cut or kernel crash, which loses the last commits. FULL fsyncs the WAL on every
commit, so an acknowledged write survives both; batching makes that one fsync per batch, not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from growthcurve.store import experiment_events, feedback, get_engine, init_db, predictions

__all__ = ["FeedbackRejected", "PredictionRecord", "StoreBusy", "StoreWriter", "open_store"]


class StoreBusy(Exception):
    """The writer is stopped or too far behind: the client should retry (503)."""


class FeedbackRejected(Exception):
    """Feedback the store cannot accept (unknown prediction, other model version): a 4xx for the client."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # see the module docstring: acked writes survive power loss too
    cur.execute("PRAGMA busy_timeout=5000")  # another process (e.g. `ab analyze`) may hold the lock briefly
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_store(url: str | None) -> sa.Engine:
    """Migrate the store at ``url`` to the newest revision and return an engine set up for serving.

    A store that cannot be opened or migrated is one ConfigError/DataError line, not a traceback.
    """
    init_db(url).dispose()
    engine = get_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def served_accuracy(kinds: list[tuple[str, float | None, str | None]], served_label: str | None) -> float | None:
    """Whether one feedback says the served answer was right: a corrected label decides (1 when it equals the
    served label: a confirmation, else 0); without one, the thumbs do (up 1, down 0); else None (no opinion).
    Defined so the usual UI works, where a label is only sent when the answer was wrong (serving/experiment.py)."""
    labels = [label for kind, _v, label in kinds if kind == "correct" and label is not None]
    if labels:
        return 1.0 if labels[-1] == served_label else 0.0
    thumbs = [v for kind, v, _l in kinds if kind == "thumbs" and v is not None]
    return float(thumbs[-1]) if thumbs else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)  # naive UTC: the store's DateTime columns are naive


@dataclass(kw_only=True)
class PredictionRecord:
    """One answered prediction (and, in an experiment, the unit's exposure) to write (built by name)."""

    request_id: str
    model_name: str
    model_version: str
    experiment: str | None
    variant: str | None
    unit_id: str | None
    input_text: str | None
    label: str | None
    score: float | None
    output: dict[str, Any]
    latency_ms: float


@dataclass
class _Op:
    apply: Callable[[sa.Connection, set[tuple[str, str]]], Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass
class StoreWriter:
    """One asyncio task that batches store writes into single transactions in one DB thread."""

    engine: sa.Engine
    served_versions: set[str]
    max_batch: int = 512
    max_queue: int = 20_000  # beyond this the store cannot keep up: refuse (503) instead of growing memory
    _queue: asyncio.Queue[_Op] = field(init=False)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _exposed: set[tuple[str, str]] = field(init=False, default_factory=set)
    _executor: ThreadPoolExecutor = field(init=False)
    batch_sizes: list[int] = field(init=False, default_factory=list)
    on_commit: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="growthcurve-store")

    async def start(self, experiments: list[str]) -> None:
        """Load the units already exposed in ``experiments`` (dedupe survives restarts) and start the task."""
        self._queue = asyncio.Queue()
        self._exposed = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._load_exposed, experiments
        )
        self._task = asyncio.create_task(self._run(), name="growthcurve-store-writer")

    async def stop(self) -> None:
        """Write what is queued, then end the task and the thread."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _load_exposed(self, experiments: list[str]) -> set[tuple[str, str]]:
        if not experiments:
            return set()
        ev = experiment_events
        q = (
            sa.select(ev.c.experiment, ev.c.unit_id)
            .where(ev.c.experiment.in_(experiments), ev.c.metric == "exposure")
            .distinct()
        )
        with self.engine.connect() as conn:
            return {(str(e), str(u)) for e, u in conn.execute(q)}

    def _enqueue(self, apply: Callable[[sa.Connection, set[tuple[str, str]]], Any]) -> asyncio.Future[Any]:
        """Queue one operation; its future resolves after the commit that holds it (FIFO: later ops see it)."""
        if not self.running:
            raise StoreBusy("the store writer is not running")
        if self._queue.qsize() >= self.max_queue:
            raise StoreBusy(f"the store is {self._queue.qsize()} writes behind: try again shortly")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Op(apply, fut))
        return fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ops = [await self._queue.get()]
            # No waiting for more: a batch is whatever queued up while the previous commit ran.
            while len(ops) < self.max_batch and not self._queue.empty():
                ops.append(self._queue.get_nowait())
            try:
                await loop.run_in_executor(self._executor, self._commit, ops)
                self.batch_sizes.append(len(ops))
                if self.on_commit is not None:
                    self.on_commit(len(ops))
                for op in ops:
                    if op.future.done():
                        continue
                    if op.error is not None:
                        op.future.set_exception(op.error)
                    else:
                        op.future.set_result(op.result)
            except Exception as exc:  # the whole transaction failed: nobody is acknowledged
                for op in ops:
                    if not op.future.done():
                        op.future.set_exception(exc)
            finally:
                for _ in ops:
                    self._queue.task_done()

    def _commit(self, ops: list[_Op]) -> None:
        """Apply every op in one transaction; an op's own rejection (FeedbackRejected) spares the others."""
        new_exposed: set[tuple[str, str]] = set()
        with self.engine.begin() as conn:
            for op in ops:
                op.error, op.result = None, None
                try:
                    op.result = op.apply(conn, new_exposed)
                except FeedbackRejected as exc:  # decided by reads before any write of this op
                    op.error = exc
        self._exposed |= new_exposed  # only once the commit went through

    # ---- the operations ---------------------------------------------------------------------------

    def record_prediction(self, records: list[PredictionRecord]) -> asyncio.Future[Any]:
        """Queue the predictions of one request (and a first exposure); the future resolves after the commit.

        Callers may answer before it resolves (write-behind): a feedback for these predictions is queued
        later, so it is applied in the same or a later transaction and always finds them.
        """

        def apply(conn: sa.Connection, new_exposed: set[tuple[str, str]]) -> None:
            now = _now()
            conn.execute(
                predictions.insert(),
                [
                    {
                        "request_id": r.request_id,
                        "ts": now,
                        "model_name": r.model_name,
                        "model_version": r.model_version,
                        "experiment": r.experiment,
                        "variant": r.variant,
                        "unit_id": r.unit_id,
                        "input_text": r.input_text,
                        "label": r.label,
                        "score": r.score,
                        "output": r.output,
                        "latency_ms": r.latency_ms,
                    }
                    for r in records
                ],
            )
            r = records[0]
            if r.experiment is not None and r.unit_id is not None and r.variant is not None:
                self._expose(conn, new_exposed, r.experiment, r.unit_id, r.variant, r.model_version, now)

        return self._enqueue(apply)

    def _expose(
        self,
        conn: sa.Connection,
        new_exposed: set[tuple[str, str]],
        experiment: str,
        unit_id: str,
        variant: str,
        version: str,
        now: dt.datetime,
    ) -> None:
        key = (experiment, unit_id)
        if key in self._exposed or key in new_exposed:
            return
        ev = experiment_events
        # Another server process on the same store may have exposed the unit since start-up.
        seen = conn.execute(
            sa.select(ev.c.id)
            .where(ev.c.experiment == experiment, ev.c.unit_id == unit_id, ev.c.metric == "exposure")
            .limit(1)
        ).first()
        if seen is None:
            conn.execute(
                ev.insert(),
                {
                    "experiment": experiment,
                    "unit_id": unit_id,
                    "variant": variant,
                    "ts": now,
                    "metric": "exposure",
                    "value": 1.0,
                    "model_version": version,
                },
            )
        new_exposed.add(key)

    async def record_feedback(
        self,
        request_id: str,
        kinds: list[tuple[str, float | None, str | None]],
        comment: str | None,
        model_version: str | None,
        label_check: Callable[[str, str | None], None] | None = None,
    ) -> dict[str, Any]:
        """Store feedback rows for ``request_id`` (and experiment metric events); returns after the commit.

        ``kinds``: (kind, value, label) with kind in thumbs/rating/click/correct (a corrected label). In an
        experiment they become metric events ``thumbs``, ``rating``, ``click`` and ``accuracy`` (see
        :func:`served_accuracy`). Raises FeedbackRejected for an unknown request id or a prediction of another
        (or no longer served) model version.
        """

        def apply(conn: sa.Connection, _new: set[tuple[str, str]]) -> dict[str, Any]:
            p = predictions.c
            row = conn.execute(
                sa.select(p.model_version, p.experiment, p.variant, p.unit_id, p.label, p.model_name).where(
                    p.request_id == request_id
                )
            ).first()
            if row is None:
                raise FeedbackRejected(f"no prediction with request_id '{request_id}'", 404, "unknown_request_id")
            version, experiment, variant, unit_id, served_label, model_name = row
            if model_version is not None and model_version != version:
                raise FeedbackRejected(
                    f"request '{request_id}' was answered by model version {version}, not {model_version}",
                    409,
                    "model_version_mismatch",
                )
            if version not in self.served_versions:
                raise FeedbackRejected(
                    f"request '{request_id}' was answered by model version {version}, which this server no "
                    f"longer serves (serving {', '.join(sorted(self.served_versions))})",
                    409,
                    "model_version_not_served",
                )
            if label_check is not None:
                for kind, _v, label in kinds:
                    if kind == "correct" and label is not None:
                        label_check(version, label)
            now = _now()
            fb_rows, metrics = [], []
            for kind, value, label in kinds:
                if kind == "correct":
                    value = 1.0 if label == served_label else 0.0
                fb_rows.append(
                    {
                        "request_id": request_id,
                        "ts": now,
                        "model_version": version,
                        "unit_id": unit_id,
                        "kind": kind,
                        "value": value,
                        "label": label,
                        "comment": comment,
                    }
                )
                if kind != "correct" and value is not None:
                    metrics.append((kind, float(value)))
            right = served_accuracy(kinds, served_label)
            if right is not None:
                metrics.append(("accuracy", right))
            ev_rows = (
                [
                    {
                        "experiment": experiment,
                        "unit_id": unit_id,
                        "variant": variant,
                        "ts": now,
                        "metric": metric,
                        "value": value,
                        "model_version": version,
                    }
                    for metric, value in metrics
                ]
                if experiment is not None and unit_id is not None
                else []
            )
            conn.execute(feedback.insert(), fb_rows)
            if ev_rows:
                conn.execute(experiment_events.insert(), ev_rows)
            return {"model_version": version, "experiment": experiment, "variant": variant, "rows": len(fb_rows)}

        stored: dict[str, Any] = await self._enqueue(apply)
        return stored
