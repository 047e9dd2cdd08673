"""The review queue in the store: build it from served traffic and files, hand items to reviewers, record and
undo answers, and read the final labels back (for training, agreement and the accuracy estimate).

A queue is a snapshot: the served predictions (and assistant turns) of a time window, collapsed into items
(near-duplicates share one item, which keeps how many requests of each model version it stands for), plus
uploaded files. Each strategy is a *stream*: the items in ascending priority key (``sampling.py``). The page
takes the next item from the stream that is furthest behind its share of the mix; an item answered through one
stream counts in every stream that lists it. Answers are never deleted: undo stamps ``undone_at``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from pydantic import Field, field_validator

from growthcurve.config import StrictModel
from growthcurve.errors import ConfigError, DataError
from growthcurve.review.sampling import STRATEGIES, dedupe_key, priority_keys, stream_weights, uncertainty
from growthcurve.store import get_engine, init_db
from growthcurve.store.schema import (
    assist_turns,
    predictions,
    review_answers,
    review_items,
    review_queues,
    review_slots,
)

ACTIONS = ("label", "reject", "skip")
REJECT = "(not in scope)"  # how a rejected item's outcome is shown and exported


class ReviewError(DataError):
    """A review request the client can fix: one line, and the HTTP status/code the page answers with."""

    def __init__(self, message: str, status: int = 422, code: str = "invalid") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class QueueConfig(StrictModel):
    """How a queue chooses and orders items (stored with the queue, so every reader sees the same rules)."""

    mix: dict[str, float] = Field(
        default_factory=lambda: {"uncertainty": 0.4, "random": 0.3, "disagreement": 0.15, "handoff": 0.15}
    )
    measure: str = "margin"
    floor: float = Field(0.03, gt=0.0, le=1.0)  # every item keeps weight >= floor: every label can be weighted back
    sharpness: float = Field(8.0, gt=0.0, le=64.0)  # uncertainty weight = floor + percentile ** sharpness
    double_share: float = Field(0.1, ge=0.0, le=1.0)  # share of items that go to two reviewers
    allow_new_labels: bool = False
    size: int = Field(2000, ge=1)  # items listed per stream (the rest stay in the pool, beyond the cut)
    seed: int = 0

    @field_validator("mix")
    @classmethod
    def _mix(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"unknown strategy {', '.join(unknown)} (choose from {', '.join(STRATEGIES)})")
        if any(not math.isfinite(x) or x < 0 for x in v.values()) or sum(v.values()) <= 0:
            raise ValueError("shares must be >= 0 with a positive sum")
        return {k: float(x) for k, x in v.items() if x > 0}

    @field_validator("measure")
    @classmethod
    def _measure(cls, v: str) -> str:
        if v not in ("margin", "entropy"):
            raise ValueError("must be margin or entropy")
        return v


def parse_mix(text: str) -> dict[str, float]:
    """``uncertainty=4,random=2`` -> {"uncertainty": 4.0, "random": 2.0}; a malformed part is a ConfigError."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        try:
            out[name.strip()] = float(value) if eq else 1.0
        except ValueError:
            raise ConfigError(f"--mix part '{part}' is not STRATEGY=SHARE (e.g. uncertainty=4,random=2)") from None
    if not out:
        raise ConfigError("--mix is empty: give STRATEGY=SHARE pairs, e.g. uncertainty=4,random=2")
    return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def open_engine(url: str | None) -> sa.Engine:
    """The store at ``url``, migrated to the newest revision (the review tables included)."""
    from alembic.util.exc import CommandError

    try:
        return init_db(url)
    except CommandError as exc:
        raise ConfigError(f"the store at '{url}' cannot be migrated: {exc}") from None


# ---- building a queue ---------------------------------------------------------------------------------------


@dataclass
class _Request:
    request_id: str
    text: str
    version: str | None
    served: str | None
    top: list[list[Any]]
    handoff: bool
    source: str


@dataclass
class BuildSummary:
    """What ``build_queue`` made: items per source, stream sizes, requests collapsed."""

    queue: str
    requests: int
    items: int
    sources: dict[str, int]
    streams: dict[str, int]
    doubles: int
    dropped_streams: list[str] = field(default_factory=list)


def _top_of(output: Any, label: str | None, score: float | None) -> list[list[Any]]:
    """The model's top labels and probabilities as the serving layer stored them."""
    if isinstance(output, dict) and isinstance(output.get("top_k"), list):
        top = [[t.get("label"), t.get("probability")] for t in output["top_k"] if isinstance(t, dict)]
        top = [[lab, float(p)] for lab, p in top if isinstance(lab, str) and isinstance(p, int | float)]
        if top:
            return top
    if label is not None and score is not None:
        return [[label, float(score)]]
    return [[label, None]] if label is not None else []


def _served_requests(
    engine: sa.Engine, since: dt.datetime | None, until: dt.datetime | None, versions: Sequence[str]
) -> list[_Request]:
    """Served predictions with their text, and assistant turns (handoffs flagged) of the window."""
    p, a = predictions.c, assist_turns.c
    q = sa.select(p.request_id, p.ts, p.model_version, p.input_text, p.label, p.score, p.output).where(
        p.input_text.is_not(None)
    )
    t = sa.select(a.session_id, a.turn, a.request_id, a.question, a.model_version, a.intent, a.confidence, a.outcome)
    t = t.where(a.channel != "eval")  # `assist eval` replays a labelled file: not traffic
    if since is not None:
        q, t = q.where(p.ts >= since), t.where(a.ts >= since)
    if until is not None:
        q, t = q.where(p.ts < until), t.where(a.ts < until)
    if versions:
        q, t = q.where(p.model_version.in_(list(versions))), t.where(a.model_version.in_(list(versions)))
    with engine.connect() as conn:
        preds = conn.execute(q.order_by(p.id)).all()
        turns = conn.execute(t.order_by(a.id)).all()
    handoff_ids = {r.request_id for r in turns if r.outcome == "handoff" and r.request_id}
    out = [
        _Request(
            r.request_id,
            r.input_text,
            r.model_version,
            r.label,
            _top_of(r.output, r.label, r.score),
            r.request_id in handoff_ids,
            "handoff" if r.request_id in handoff_ids else "prediction",
        )
        for r in preds
        if r.input_text and r.input_text.strip()
    ]
    known = {r.request_id for r in preds}
    for r in turns:  # chat turns have no predictions row: the turn itself is the request
        if r.request_id in known or not (r.question or "").strip():
            continue
        top = [[r.intent, float(r.confidence)]] if r.intent is not None and r.confidence is not None else []
        handoff = r.outcome == "handoff"
        rid = r.request_id or f"assist:{r.session_id}:{r.turn}"
        source = "handoff" if handoff else "prediction"
        out.append(_Request(rid, r.question, r.model_version, r.intent, top, handoff, source))
    return out


def _file_requests(path: Path, text_column: str) -> list[_Request]:
    from growthcurve.data.readers import read_table, require_columns

    df = read_table(path)
    require_columns(df, [text_column], path, "--text-column")
    out = []
    for i, text in enumerate(df[text_column].tolist()):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: row {i + 1} has no text in column '{text_column}'")
        out.append(_Request(f"upload:{path.name}:{i + 1}", text, None, None, [], False, "upload"))
    return out


def _labels_of(run: Path | None, labels: Sequence[str] | None) -> tuple[list[str], str | None]:
    """The label set (from the run folder's labels.json, or given) and the run's served model version."""
    if run is None:
        if not labels:
            raise ConfigError("give the served run folder (--run) or the label set (--labels a,b,c)")
        return list(dict.fromkeys(labels)), None
    from growthcurve.serving.handlers import model_version
    from growthcurve.training.runfolder import read_meta

    try:
        model_dir, meta, run_labels = read_meta(run)
    except FileNotFoundError:
        raise ConfigError(f"'{run}' is not a finished run folder (no model/run.json or labels.json)") from None
    if meta.get("task") != "text-classification" or meta.get("multi_label"):
        raise ConfigError(f"'{run}' is a {meta.get('task')} run: the review queue labels single-label texts")
    return list(labels or run_labels), model_version(model_dir)


def _rescore(run: Path, texts: list[str]) -> tuple[list[list[list[Any]]], list[list[float]]]:
    """Full probabilities from the run (for traffic served with top_k=1 or files): top-5 to show, all to score."""
    from growthcurve.training.inference import Predictor

    pred = Predictor(run, batch_size=128)
    probs = np.asarray(pred.predict_proba(texts))
    tops = []
    for row in probs:
        order = np.argsort(-row)[:5]
        tops.append([[pred.labels[int(i)], round(float(row[i]), 6)] for i in order])
    return tops, probs.tolist()


def build_queue(
    url: str | None,
    name: str,
    *,
    run: Path | None = None,
    labels: Sequence[str] | None = None,
    config: QueueConfig | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    versions: Sequence[str] = (),
    files: Sequence[Path] = (),
    text_column: str = "text",
    traffic: bool = True,
    rescore: bool = False,
) -> BuildSummary:
    """Create queue ``name`` from the store's served traffic (``traffic``) and ``files``; refuse an existing name
    (a queue is a snapshot: a new window is a new queue) or an empty pool, writing nothing in either case."""
    cfg = config or QueueConfig()
    if not name or len(name) > 128 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"queue name '{name}' must be 1-128 letters, digits, '-', '_' or '.'")
    label_set, version = _labels_of(run, labels)
    if rescore and run is None:
        raise ConfigError("--rescore needs the run folder (--run) to compute probabilities")
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            if conn.execute(sa.select(review_queues.c.name).where(review_queues.c.name == name)).first():
                raise ConfigError(f"queue '{name}' already exists: a queue is a snapshot, give the new one a new name")
        reqs = _served_requests(engine, since, until, versions) if traffic else []
        for f in files:
            reqs += _file_requests(Path(f), text_column)
        if not reqs:
            raise DataError(
                "nothing to review: no served prediction with its text in the store for this window"
                + (" and no rows in the files" if files else " (add --file to queue a file)")
            )
        summary = _insert_queue(engine, name, run, version, label_set, cfg, reqs, rescore)
    finally:
        engine.dispose()
    return summary


def _group(reqs: list[_Request]) -> dict[str, list[_Request]]:
    groups: dict[str, list[_Request]] = defaultdict(list)
    for r in reqs:
        groups[dedupe_key(r.text)].append(r)
    return groups


def _item_rows(groups: dict[str, list[_Request]]) -> list[dict[str, Any]]:
    rows = []
    for key, members in groups.items():
        served = [m for m in members if m.version is not None]
        versions: dict[str, dict[str, Any]] = {}
        for m in served:
            v = versions.setdefault(str(m.version), {"n": 0, "served": {}})
            v["n"] += 1
            if m.served is not None:
                v["served"][m.served] = v["served"].get(m.served, 0) + 1
        majority = {v: max(d["served"].items(), key=lambda kv: kv[1])[0] for v, d in versions.items() if d["served"]}
        rep = served[-1] if served else members[0]
        sources = Counter(m.source for m in members)
        source = "handoff" if sources["handoff"] else "prediction" if served else members[0].source
        rows.append(
            {
                "dedupe_key": key,
                "text": members[0].text,
                "source": source,
                "requests": len(served),
                "versions": versions,
                "top": rep.top,
                "handoff": any(m.handoff for m in members),
                "disagree": len(set(majority.values())) > 1,
                "request_ids": [m.request_id for m in members[:5]],
            }
        )
    return rows


def _insert_queue(
    engine: sa.Engine,
    name: str,
    run: Path | None,
    version: str | None,
    labels: list[str],
    cfg: QueueConfig,
    reqs: list[_Request],
    rescore: bool,
) -> BuildSummary:
    rows = _item_rows(_group(reqs))
    if rescore and run is not None:
        tops, full = _rescore(run, [r["text"] for r in rows])
        scores = uncertainty(full, cfg.measure)
        for r, top in zip(rows, tops, strict=True):
            r["top"] = top
    else:
        scores = uncertainty([[p for _, p in r["top"] if p is not None] for r in rows], cfg.measure)
    rng = np.random.default_rng(cfg.seed)
    n = len(rows)
    mult = np.asarray([max(r["requests"], 0) for r in rows], dtype=np.float64)
    streams = dict(cfg.mix)
    dropped = []
    for s, flag in (("disagreement", "disagree"), ("handoff", "handoff")):
        if s in streams and not any(r[flag] for r in rows):
            dropped.append(s)
            del streams[s]
    if "random" in streams and not mult.any():
        dropped.append("random")
        del streams["random"]
    if not streams:
        raise DataError(f"no stream of the mix has items to order (dropped: {', '.join(dropped)}); add 'uncertainty'")
    weights: dict[str, np.ndarray] = {}
    for s in streams:
        w = stream_weights(
            s,
            n,
            multiplicity=np.where(mult > 0, mult, 1.0),
            uncertainty_scores=scores,
            disagree=np.asarray([r["disagree"] for r in rows], dtype=np.float64),
            handoff=np.asarray([r["handoff"] for r in rows], dtype=np.float64),
            floor=cfg.floor,
            sharpness=cfg.sharpness,
        )
        weights[s] = w
    now = _now()
    doubles = rng.random(n) < cfg.double_share
    keys = {s: priority_keys(w, rng) for s, w in weights.items()}
    next_keys: dict[str, float | None] = {}
    listed: dict[str, np.ndarray] = {}
    for s, k in keys.items():
        # the random stream samples traffic: uploaded items (no requests) are never in it
        eligible = np.flatnonzero(mult > 0) if s == "random" else np.arange(n)
        order = eligible[np.argsort(k[eligible], kind="stable")]
        listed[s] = order[: cfg.size]
        next_keys[s] = float(k[order[cfg.size]]) if len(order) > cfg.size else None
    with engine.begin() as conn:
        conn.execute(
            review_queues.insert(),
            {
                "name": name,
                "created": now,
                "run": str(run) if run is not None else None,
                "model_version": version,
                "labels": labels,
                "config": {**cfg.model_dump(mode="json"), "mix": streams},
                "next_keys": next_keys,
            },
        )
        ids = []
        for i, r in enumerate(rows):
            res = conn.execute(
                review_items.insert().returning(review_items.c.id),
                {
                    **r,
                    "queue": name,
                    "created": now,
                    "uncertainty": float(scores[i]),
                    "double": bool(doubles[i]),
                    "weights": {s: float(w[i]) for s, w in weights.items()},
                },
            )
            ids.append(int(res.scalar_one()))
        slot_rows = [
            {"queue": name, "stream": s, "item_id": ids[int(i)], "key": float(keys[s][int(i)])}
            for s, order in listed.items()
            for i in order
        ]
        if slot_rows:
            conn.execute(review_slots.insert(), slot_rows)
    return BuildSummary(
        name,
        len(reqs),
        n,
        dict(Counter(r["source"] for r in rows)),
        {s: len(o) for s, o in listed.items()},
        int(doubles.sum()),
        dropped,
    )


def add_file(url: str | None, name: str, path: Path, text_column: str = "text") -> int:
    """Queue the rows of an uploaded file in an existing queue (texts already queued are collapsed into their
    item); they join the uncertainty stream, or the first stream of the mix. Returns the new items."""
    engine = open_engine(url)
    try:
        q = load_queue(engine, name)
        reqs = _file_requests(Path(path), text_column)
        cfg = QueueConfig.model_validate(q.config)
        groups = _group(reqs)
        with engine.connect() as conn:
            have = {
                k for (k,) in conn.execute(sa.select(review_items.c.dedupe_key).where(review_items.c.queue == name))
            }
        rows = [r for r in _item_rows(groups) if r["dedupe_key"] not in have]
        if not rows:
            return 0
        others = [s for s in cfg.mix if s != "random"]
        if not others:
            raise ConfigError(f"queue '{name}' has only the random stream, which samples traffic: uploads need another")
        stream = "uncertainty" if "uncertainty" in cfg.mix else others[0]
        rng = np.random.default_rng([cfg.seed, len(have)])
        now = _now()
        next_key = q.next_keys.get(stream)
        with engine.begin() as conn:
            for r in rows:
                # nothing known about an uploaded text: it gets the highest uncertainty weight of the stream
                w = cfg.floor + 1.0
                key = float(priority_keys(np.asarray([w]), rng)[0])
                iid = conn.execute(
                    review_items.insert().returning(review_items.c.id),
                    {
                        **r,
                        "queue": name,
                        "created": now,
                        "uncertainty": 1.0,
                        "double": bool(rng.random() < cfg.double_share),
                        "weights": {stream: w},
                    },
                ).scalar_one()
                if next_key is None or key < next_key:
                    conn.execute(review_slots.insert(), {"queue": name, "stream": stream, "item_id": iid, "key": key})
        return len(rows)
    finally:
        engine.dispose()


# ---- reading a queue ----------------------------------------------------------------------------------------


@dataclass
class Queue:
    """A queue's definition as stored."""

    name: str
    labels: list[str]
    config: dict[str, Any]
    next_keys: dict[str, float | None]
    run: str | None
    model_version: str | None

    @property
    def allow_new_labels(self) -> bool:
        return bool(self.config.get("allow_new_labels"))


def load_queue(engine: sa.Engine, name: str) -> Queue:
    """The queue ``name``; an unknown name lists the queues there are."""
    q = review_queues.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(review_queues).where(q.name == name)).first()
        if row is None:
            names = [n for (n,) in conn.execute(sa.select(q.name).order_by(q.name))]
            raise ReviewError(
                f"no review queue '{name}' in the store (queues: {', '.join(names) or 'none'})", 404, "unknown_queue"
            )
    return Queue(row.name, list(row.labels), dict(row.config), dict(row.next_keys), row.run, row.model_version)


@dataclass
class ItemState:
    """One item with its answers (active ones only) and what they add up to."""

    id: int
    text: str
    source: str
    top: list[list[Any]]
    versions: dict[str, dict[str, Any]]
    weights: dict[str, float]
    double: bool
    handoff: bool
    disagree: bool
    answers: list[Any] = field(default_factory=list)  # active rows, oldest first

    @property
    def needed(self) -> int:
        return 2 if self.double else 1

    def decided(self) -> list[Any]:
        """Active label/reject answers, one per reviewer (the latest)."""
        by: dict[str, Any] = {}
        for a in self.answers:
            if a.action in ("label", "reject"):
                by[a.reviewer] = a
        return sorted(by.values(), key=lambda a: a.id)

    @property
    def adjudication(self) -> Any | None:
        adj = [a for a in self.answers if a.action == "adjudicate"]
        return adj[-1] if adj else None

    @property
    def done(self) -> bool:
        return self.adjudication is not None or len(self.decided()) >= self.needed

    def outcome(self) -> tuple[str, str | None] | None:
        """("label", label) / ("reject", None) once decided, None while open or disagreeing (adjudicate)."""
        adj = self.adjudication
        if adj is not None:
            return ("reject", None) if adj.label is None else ("label", adj.label)
        dec = self.decided()
        if len(dec) < self.needed:
            return None
        outs = {(a.action, a.label if a.action == "label" else None) for a in dec}
        return next(iter(outs)) if len(outs) == 1 else None

    @property
    def disagreement(self) -> bool:
        dec = self.decided()
        return self.adjudication is None and len(dec) >= 2 and len({(a.action, a.label) for a in dec}) > 1


@dataclass
class Snapshot:
    """A queue's items, streams (item ids in key order, with keys) and active answers, read in one go."""

    queue: Queue
    items: dict[int, ItemState]
    streams: dict[str, list[tuple[int, float]]]


def snapshot(engine: sa.Engine, name: str) -> Snapshot:
    """Read everything the page, the estimate and the exports need about queue ``name``."""
    q = load_queue(engine, name)
    i, s, a = review_items.c, review_slots.c, review_answers.c
    with engine.connect() as conn:
        items = {
            r.id: ItemState(
                r.id, r.text, r.source, list(r.top), dict(r.versions), dict(r.weights), r.double, r.handoff, r.disagree
            )
            for r in conn.execute(sa.select(review_items).where(i.queue == name))
        }
        streams: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for r in conn.execute(sa.select(s.stream, s.item_id, s.key).where(s.queue == name).order_by(s.key, s.id)):
            streams[r.stream].append((int(r.item_id), float(r.key)))
        for r in conn.execute(sa.select(review_answers).where(a.queue == name, a.undone_at.is_(None)).order_by(a.id)):
            items[r.item_id].answers.append(r)
    return Snapshot(q, items, dict(streams))


# ---- handing out items and recording answers ---------------------------------------------------------------


def next_item(snap: Snapshot, reviewer: str, avoid: Iterable[int] = ()) -> tuple[ItemState, str] | None:
    """The next item for ``reviewer`` and the stream it comes from: from the stream furthest behind its share,
    the first item in key order that is open, not yet answered or skipped by this reviewer, and not in ``avoid``
    (items other reviewers have open on their pages). None when nothing is left for this reviewer."""
    avoid = set(avoid)
    mix = {k: v for k, v in snap.queue.config.get("mix", {}).items() if k in snap.streams}
    # streams not in the mix (none today) still get their items handed out last
    order = sorted(snap.streams, key=lambda st: (st not in mix, st))

    def open_for(item_id: int) -> bool:
        it = snap.items[item_id]
        return not it.done and item_id not in avoid and all(x.reviewer != reviewer for x in it.answers)

    delivered: Counter[str] = Counter()
    for it in snap.items.values():
        first = next((a for a in it.answers if a.action in ("label", "reject")), None)
        if first is not None and first.stream:
            delivered[first.stream] += 1

    def behind(st: str) -> float:
        return delivered[st] / mix[st] if st in mix else math.inf

    for st in sorted(order, key=behind):
        for iid, _ in snap.streams[st]:
            if open_for(iid):
                return snap.items[iid], st
    return None


def _check_label(q: Queue, label: str, new_label: bool) -> bool:
    """Whether ``label`` is new (allowed by the queue); an unknown label otherwise is a 422."""
    if label in q.labels:
        return False
    if new_label and q.allow_new_labels:
        return True
    shown = ", ".join(q.labels[:20]) + (" ..." if len(q.labels) > 20 else "")
    hint = " (send new_label=true to add it)" if q.allow_new_labels else ""
    raise ReviewError(f"label '{label}' is not in the queue's label set ({shown}){hint}", 422, "unknown_label")


def record_answer(
    engine: sa.Engine,
    name: str,
    item_id: int,
    reviewer: str,
    action: str,
    label: str | None = None,
    *,
    new_label: bool = False,
    seconds: float | None = None,
    stream: str | None = None,
) -> dict[str, Any]:
    """Store one answer after checking everything; a refused answer leaves the queue unchanged.

    ``stream``: the stream that handed the item out (the page keeps the mix by it). An item that is already
    done (enough reviewers, or adjudicated) means the page was stale: 409. A doubly-reviewed item still takes
    its second opinion after the first.
    """
    if action not in ACTIONS:
        raise ReviewError(f"action must be one of {', '.join(ACTIONS)}, got '{action}'", 422, "unknown_action")
    q = load_queue(engine, name)
    if stream is not None and stream not in q.config.get("mix", {}) and stream != "upload":
        raise ReviewError(f"stream '{stream}' is not one of the queue's streams", 422, "unknown_stream")
    is_new = False
    if action == "label":
        if not label or not label.strip():
            raise ReviewError("a label answer needs the label", 422, "missing_label")
        is_new = _check_label(q, label, new_label)
    elif label is not None:
        raise ReviewError(f"a {action} answer takes no label", 422, "unexpected_label")
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(review_items.c.id, review_items.c.source, review_items.c.double).where(
                review_items.c.queue == name, review_items.c.id == item_id
            )
        ).first()
        if row is None:
            raise ReviewError(f"queue '{name}' has no item {item_id}", 404, "unknown_item")
        a = review_answers.c
        active = conn.execute(
            sa.select(a.reviewer, a.action).where(a.queue == name, a.item_id == item_id, a.undone_at.is_(None))
        ).all()
        if any(r.reviewer == reviewer for r in active):
            raise ReviewError(f"you already answered item {item_id}: undo (u) to change it", 409, "already_answered")
        decided = {r.reviewer for r in active if r.action in ("label", "reject")}
        adjudicated = any(r.action == "adjudicate" for r in active)
        needed = 2 if row.double else 1
        if adjudicated or len(decided) >= needed:
            raise ReviewError(
                f"item {item_id} was answered by someone else meanwhile (stale page): reload for the next item",
                409,
                "stale_item",
            )
        conn.execute(
            review_answers.insert(),
            {
                "queue": name,
                "item_id": item_id,
                "reviewer": reviewer,
                "ts": _now(),
                "action": action,
                "label": label if action == "label" else None,
                "new_label": is_new,
                "source": row.source,
                "stream": stream,
                "seconds": seconds if seconds is None or math.isfinite(seconds) else None,
            },
        )
    return {"item_id": item_id, "action": action, "label": label, "new_label": is_new}


def undo_last(engine: sa.Engine, name: str, reviewer: str) -> int | None:
    """Withdraw ``reviewer``'s latest active answer in queue ``name`` (kept, stamped undone); its item id."""
    load_queue(engine, name)
    a = review_answers.c
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(a.id, a.item_id)
            .where(a.queue == name, a.reviewer == reviewer, a.undone_at.is_(None), a.action != "adjudicate")
            .order_by(a.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        conn.execute(review_answers.update().where(a.id == row.id).values(undone_at=_now()))
    return int(row.item_id)


def adjudicate(engine: sa.Engine, name: str, item_id: int, by: str, label: str | None) -> None:
    """Settle an item (a disagreement, usually): ``label`` or None for "not in scope"."""
    q = load_queue(engine, name)
    if label is not None:
        _check_label(q, label, q.allow_new_labels)
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(review_items.c.source).where(review_items.c.queue == name, review_items.c.id == item_id)
        ).first()
        if row is None:
            raise ReviewError(f"queue '{name}' has no item {item_id}", 404, "unknown_item")
        conn.execute(
            review_answers.insert(),
            {
                "queue": name,
                "item_id": item_id,
                "reviewer": by,
                "ts": _now(),
                "action": "adjudicate",
                "label": label,
                "new_label": label is not None and label not in q.labels,
                "source": row.source,
                "seconds": None,
            },
        )


def progress(engine: sa.Engine, snap: Snapshot, reviewer: str, window_minutes: float = 10.0) -> dict[str, Any]:
    """Items done of listed, and this reviewer's answers and rate (answers per minute over the last window)."""
    listed = {iid for st in snap.streams.values() for iid, _ in st}
    done = sum(1 for iid in listed if snap.items[iid].done)
    a = review_answers.c
    since = _now() - dt.timedelta(minutes=window_minutes)
    with engine.connect() as conn:
        mine = conn.execute(
            sa.select(sa.func.count()).where(
                a.queue == snap.queue.name, a.reviewer == reviewer, a.undone_at.is_(None), a.action != "skip"
            )
        ).scalar_one()
        recent = conn.execute(
            sa.select(sa.func.count(), sa.func.min(a.ts), sa.func.max(a.ts)).where(
                a.queue == snap.queue.name, a.reviewer == reviewer, a.ts >= since, a.action != "skip"
            )
        ).one()
    # answers per minute between the first and the last answer of the window (n - 1 gaps): one answer has no rate
    n_recent, first, last = int(recent[0]), recent[1], recent[2]
    span = (last - first).total_seconds() / 60.0 if n_recent >= 2 else 0.0
    rate = (n_recent - 1) / span if span > 0 else 0.0
    return {
        "done": done,
        "listed": len(listed),
        "percent": round(100.0 * done / len(listed), 1) if listed else 100.0,
        "mine": int(mine),
        "per_minute": round(rate, 1),
        "eta_minutes": round((len(listed) - done) / rate, 1) if rate > 0 else None,
    }


# ---- labels for training --------------------------------------------------------------------------------------


@dataclass
class ReviewedRows:
    """Reviewed (text, label) rows of one queue, with the weight ``retrain`` gives them, and what was left out."""

    queue: str
    texts: list[str]
    labels: list[str]
    weight: float
    skipped: dict[str, int]


def reviewed_rows(url: str, name: str, labels: Sequence[str], weight: float = 2.0) -> ReviewedRows:
    """The decided labels of queue ``name`` as training rows: rejected, undecided (open or disagreeing) and
    new-label items are left out and counted; ``weight`` is how much one reviewed row counts against one
    feedback row (reviewers are paid to be right; users correct in passing)."""
    if not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"the review weight must be > 0 (got {weight})")
    engine = get_engine(url)
    try:
        snap = snapshot(engine, name)
    except sa.exc.OperationalError as exc:
        raise DataError(f"cannot read review queue '{name}' from '{url}': {exc.orig}") from None
    finally:
        engine.dispose()
    known = set(labels)
    texts, out = [], []
    skipped: Counter[str] = Counter()
    for it in snap.items.values():
        res = it.outcome()
        if res is None:
            skipped["disagreement to adjudicate" if it.disagreement else "not reviewed yet"] += 1
        elif res[0] == "reject":
            skipped["rejected (not in scope)"] += 1
        elif res[1] not in known:
            skipped["label not in the run's labels"] += 1
        else:
            texts.append(it.text)
            out.append(str(res[1]))
    return ReviewedRows(name, texts, out, weight, dict(skipped))


def item_view(it: ItemState, stream: str, labels: Sequence[str]) -> dict[str, Any]:
    """What the page shows of an item: text, source, stream, the model's top labels (at most 9)."""
    top = [(str(lab), p) for lab, p in it.top if isinstance(lab, str)][:9]
    shown = [lab for lab, _ in top if lab in labels]
    for lab in labels:  # fill the number keys up with the rest of the label set, so 1-9 always do something
        if len(shown) >= 9:
            break
        if lab not in shown:
            shown.append(lab)
    probs = dict(top)
    return {
        "id": it.id,
        "text": it.text,
        "source": it.source,
        "stream": stream,
        "double": it.double,
        "choices": [{"key": i + 1, "label": lab, "probability": probs.get(lab)} for i, lab in enumerate(shown[:9])],
    }


__all__ = [
    "ACTIONS",
    "BuildSummary",
    "ItemState",
    "Queue",
    "QueueConfig",
    "ReviewError",
    "ReviewedRows",
    "Snapshot",
    "add_file",
    "adjudicate",
    "build_queue",
    "item_view",
    "load_queue",
    "next_item",
    "open_engine",
    "parse_mix",
    "progress",
    "record_answer",
    "reviewed_rows",
    "snapshot",
    "undo_last",
]
