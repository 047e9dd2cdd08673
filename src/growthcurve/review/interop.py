"""Reviewed labels in and out: JSON lines of our own, Label Studio's task JSON and Argilla's record format, so a
team that already labels elsewhere can join (export the queue there, import what they labelled here).

Label Studio: a JSON list of tasks ``{"data": {"text": ...}, "annotations": [{"result": [{"type": "choices",
"from_name": "label", "to_name": "text", "value": {"choices": [LABEL]}}], "completed_by": ..., "was_cancelled":
...}], "predictions": [...]}`` (a cancelled annotation is our "not in scope"). Argilla (2.x): one record per line,
``{"id", "fields": {"text"}, "suggestions": {"label": {"value", "score", "agent"}}, "responses": {"label":
[{"value", "user_id"}]}, "status"}``. Import validates every row first (file:line for each problem) and then
writes all of them in one transaction, so a bad file changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthcurve.atomic import atomic_open
from growthcurve.errors import ConfigError, DataError
from growthcurve.review.queue import REJECT, ItemState, Snapshot, load_queue, snapshot
from growthcurve.review.sampling import dedupe_key
from growthcurve.store.schema import review_answers, review_items

FORMATS = ("jsonl", "label-studio", "argilla")


def _answers(it: ItemState) -> list[dict[str, Any]]:
    return [
        {
            "reviewer": a.reviewer,
            "action": a.action,
            "label": a.label,
            "ts": a.ts.isoformat(timespec="seconds"),
            "stream": a.stream,
            "new_label": bool(a.new_label),
        }
        for a in it.answers
        if a.action != "skip"
    ]


def _final(it: ItemState) -> str | None:
    out = it.outcome()
    if out is None:
        return None
    return REJECT if out[0] == "reject" else out[1]


def _jsonl(snap: Snapshot) -> Iterator[dict[str, Any]]:
    for it in sorted(snap.items.values(), key=lambda x: x.id):
        out = it.outcome()
        yield {
            "item_id": it.id,
            "text": it.text,
            "source": it.source,
            "label": _final(it),
            "status": "decided" if out else "disagreement" if it.disagreement else "open",
            "answers": _answers(it),
            "model_top": it.top,
            "requests": {v: d.get("n", 0) for v, d in it.versions.items()},
        }


def _label_studio(snap: Snapshot) -> list[dict[str, Any]]:
    def result(label: str) -> list[dict[str, Any]]:
        return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]

    tasks = []
    for it in sorted(snap.items.values(), key=lambda x: x.id):
        anns = [
            {
                "completed_by": a["reviewer"],
                "created_at": a["ts"],
                "was_cancelled": a["action"] == "reject",
                "result": result(a["label"]) if a["action"] in ("label", "adjudicate") and a["label"] else [],
                "ground_truth": a["action"] == "adjudicate",
            }
            for a in _answers(it)
        ]
        preds = []
        if it.top and isinstance(it.top[0][0], str):
            lab, p = it.top[0][0], it.top[0][1]
            preds.append({"model_version": ",".join(it.versions) or "upload", "score": p, "result": result(lab)})
        tasks.append(
            {
                "id": it.id,
                "data": {"text": it.text, "item_id": it.id, "source": it.source},
                "annotations": anns,
                "predictions": preds,
            }
        )
    return tasks


def _argilla(snap: Snapshot) -> Iterator[dict[str, Any]]:
    for it in sorted(snap.items.values(), key=lambda x: x.id):
        responses = [
            {"value": a["label"] if a["action"] != "reject" else REJECT, "user_id": a["reviewer"]}
            for a in _answers(it)
            if a["action"] in ("label", "reject", "adjudicate")
        ]
        rec: dict[str, Any] = {
            "id": str(it.id),
            "fields": {"text": it.text},
            "metadata": {"source": it.source, "requests": sum(d.get("n", 0) for d in it.versions.values())},
            "responses": {"label": responses} if responses else {},
            "status": "completed" if it.outcome() else "pending",
        }
        if it.top and isinstance(it.top[0][0], str):
            rec["suggestions"] = {
                "label": {"value": it.top[0][0], "score": it.top[0][1], "agent": ",".join(it.versions) or None}
            }
        yield rec


def export_queue(engine: sa.Engine, name: str, fmt: str, out: Path) -> int:
    """Write queue ``name`` to ``out`` in ``fmt`` (atomically); returns the items written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)} (got '{fmt}')")
    snap = snapshot(engine, name)
    with atomic_open(out) as fh:
        if fmt == "label-studio":
            tasks = _label_studio(snap)
            json.dump(tasks, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
            return len(tasks)
        n = 0
        for rec in _jsonl(snap) if fmt == "jsonl" else _argilla(snap):
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
        return n


# ---- import -------------------------------------------------------------------------------------------------


@dataclass
class ImportRow:
    where: str  # file:line (or file:task N)
    text: str
    reviewer: str
    action: str  # label | reject
    label: str | None


def _detect(path: Path) -> str:
    head = path.read_text(encoding="utf-8", errors="replace").lstrip()[:1]
    if head == "[":
        return "label-studio"
    first = next((ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()), "")
    try:
        obj = json.loads(first)
    except ValueError:
        return "jsonl"
    return "argilla" if isinstance(obj, dict) and "fields" in obj else "jsonl"


def _str(v: Any) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def _parse_jsonl(path: Path, fmt: str, default_reviewer: str) -> tuple[list[ImportRow], list[str]]:
    rows, errors = [], []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            where = f"{path}:{n}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:  # JSONDecodeError, or a plain ValueError (an integer of 5,000 digits)
                errors.append(f"{where}: not JSON ({getattr(exc, 'msg', exc)})")
                continue
            if not isinstance(obj, dict):
                errors.append(f"{where}: a row must be a JSON object")
                continue
            if fmt == "argilla":
                text = _str((obj.get("fields") or {}).get("text") if isinstance(obj.get("fields"), dict) else None)
                resp = obj.get("responses") or {}
                answers = resp.get("label") if isinstance(resp, dict) else None
                if text is None:
                    errors.append(f"{where}: no fields.text")
                    continue
                if not isinstance(answers, list):
                    continue  # a pending record: nothing to import
                for a in answers:
                    if not isinstance(a, dict) or _str(a.get("value")) is None:
                        errors.append(f"{where}: a response without a value")
                        continue
                    rows.append(_row(where, text, _str(a.get("user_id")) or default_reviewer, str(a["value"]).strip()))
            else:
                text, label = _str(obj.get("text")), obj.get("label")
                if text is None:
                    errors.append(f"{where}: no 'text'")
                    continue
                if label is None:
                    continue  # not labelled yet
                if _str(label) is None:
                    errors.append(f"{where}: 'label' must be a non-empty string, got {label!r}")
                    continue
                rows.append(_row(where, text, _str(obj.get("reviewer")) or default_reviewer, str(label).strip()))
    return rows, errors


def _row(where: str, text: str, reviewer: str, value: str) -> ImportRow:
    if value == REJECT:
        return ImportRow(where, text, reviewer[:128], "reject", None)
    return ImportRow(where, text, reviewer[:128], "label", value)


def _parse_label_studio(path: Path, default_reviewer: str) -> tuple[list[ImportRow], list[str]]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: a Label Studio export is a JSON list of tasks")
    rows, errors = [], []
    for n, task in enumerate(tasks, 1):
        where = f"{path}:task {n}"
        data = task.get("data") if isinstance(task, dict) else None
        text = _str(data.get("text")) if isinstance(data, dict) else None
        if text is None:
            errors.append(f"{where}: no data.text")
            continue
        for ann in task.get("annotations") or []:
            if not isinstance(ann, dict):
                errors.append(f"{where}: an annotation must be an object")
                continue
            who = ann.get("completed_by")
            if isinstance(who, dict):
                who = who.get("email") or who.get("id")
            reviewer = str(who) if who not in (None, "") else default_reviewer
            if ann.get("was_cancelled"):
                rows.append(ImportRow(where, text, reviewer[:128], "reject", None))
                continue
            choices = [
                c
                for r in ann.get("result") or []
                if isinstance(r, dict) and r.get("type") == "choices"
                for c in ((r.get("value") or {}).get("choices") or [])
            ]
            if len(choices) != 1 or not isinstance(choices[0], str):
                errors.append(f"{where}: an annotation needs exactly one choice, got {choices!r}")
                continue
            rows.append(_row(where, text, reviewer, choices[0]))
    return rows, errors


@dataclass
class ImportSummary:
    rows: int
    new_items: int
    answers: int
    already: int  # rows whose reviewer had already answered the item


def import_labels(
    engine: sa.Engine, name: str, path: Path, fmt: str = "auto", reviewer: str = "import"
) -> ImportSummary:
    """Import labelled rows into queue ``name``: texts already queued get the answer (near-duplicates collapse),
    new texts become items of source ``import``. Unknown labels or malformed rows: a DataError listing the
    first problems with file:line, and nothing written."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"import file '{path}' does not exist")
    if fmt == "auto":
        fmt = _detect(path)
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be auto or one of {', '.join(FORMATS)} (got '{fmt}')")
    q = load_queue(engine, name)
    try:
        rows, errors = (
            _parse_label_studio(path, reviewer) if fmt == "label-studio" else _parse_jsonl(path, fmt, reviewer)
        )
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    known = set(q.labels)
    for r in rows:
        if r.label is not None and r.label not in known and not q.allow_new_labels:
            errors.append(f"{r.where}: label '{r.label}' is not in the queue's label set")
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise DataError(f"{len(errors)} bad row(s), nothing imported: " + "; ".join(errors[:5]) + more)
    if not rows:
        raise DataError(f"{path}: no labelled row to import")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    i, a = review_items.c, review_answers.c
    new_items = answers = already = 0
    with engine.begin() as conn:
        ids = {k: iid for k, iid in conn.execute(sa.select(i.dedupe_key, i.id).where(i.queue == name))}
        sources = {iid: s for iid, s in conn.execute(sa.select(i.id, i.source).where(i.queue == name))}
        answered = {
            (iid, who)
            for iid, who in conn.execute(
                sa.select(a.item_id, a.reviewer).where(a.queue == name, a.undone_at.is_(None), a.action != "skip")
            )
        }
        for r in rows:
            key = dedupe_key(r.text)
            if key not in ids:
                iid = conn.execute(
                    review_items.insert().returning(i.id),
                    {
                        "queue": name,
                        "dedupe_key": key,
                        "text": r.text,
                        "source": "import",
                        "created": now,
                        "requests": 0,
                        "versions": {},
                        "top": [],
                        "uncertainty": None,
                        "handoff": False,
                        "disagree": False,
                        "double": False,
                        "weights": {},
                        "request_ids": [],
                    },
                ).scalar_one()
                ids[key], sources[iid] = iid, "import"
                new_items += 1
            iid = ids[key]
            if (iid, r.reviewer) in answered:
                already += 1
                continue
            conn.execute(
                review_answers.insert(),
                {
                    "queue": name,
                    "item_id": iid,
                    "reviewer": r.reviewer,
                    "ts": now,
                    "action": r.action,
                    "label": r.label,
                    "new_label": r.label is not None and r.label not in known,
                    "source": sources[iid],
                    "stream": None,
                    "seconds": None,
                },
            )
            answered.add((iid, r.reviewer))
            answers += 1
    return ImportSummary(len(rows), new_items, answers, already)


__all__ = ["FORMATS", "ImportSummary", "export_queue", "import_labels"]
