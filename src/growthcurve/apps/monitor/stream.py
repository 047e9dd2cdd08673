"""Stream sources: a JSONL file, a folder that receives new ``*.jsonl`` files, or stdin.

Each line is ``{"timestamp": ISO-8601 or epoch seconds, "text": str, "topic": optional str}`` (``ts``
is accepted for ``timestamp``). A file is read in binary from a stored byte offset, one complete line
(ending in a newline) at a time, so a line a writer is still appending is left for the next poll and a
restart continues at the first unread byte. Malformed lines are skipped and counted with their
``file:line``; they never stop the stream (a run whose every new line is malformed is refused: a wrong
file or format, not a quiet hour).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from growthcurve.errors import DataError

STDIN = "-"


@dataclass(frozen=True)
class Record:
    """One parsed line and the position just after it."""

    source: str
    line: int
    epoch: float
    text: str
    topic: str | None
    end_offset: int


@dataclass(frozen=True)
class BadLine:
    """A line that could not be used, with why (``file:line: reason``)."""

    source: str
    line: int
    reason: str
    end_offset: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def parse_timestamp(value: Any) -> float:
    """Epoch seconds of an ISO-8601 string (naive = UTC) or a number of epoch seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be ISO-8601 or epoch seconds, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"timestamp is not finite: {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not ISO-8601 (e.g. 2026-12-01T09:30:00Z)") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return t.timestamp()
    raise ValueError(f"timestamp must be ISO-8601 or epoch seconds, got {type(value).__name__}")


def parse_line(raw: bytes, source: str, line: int, end_offset: int) -> Record | BadLine:
    """One JSONL line → a Record, or a BadLine saying what is wrong with it."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return BadLine(source, line, "not UTF-8", end_offset)
    except json.JSONDecodeError as exc:
        return BadLine(source, line, f"not JSON ({exc.msg})", end_offset)
    if not isinstance(obj, dict):
        return BadLine(source, line, "not a JSON object", end_offset)
    ts = obj.get("timestamp", obj.get("ts"))
    if ts is None:
        return BadLine(source, line, "no 'timestamp'", end_offset)
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return BadLine(source, line, "'text' missing, empty or not a string", end_offset)
    topic = obj.get("topic")
    if topic is not None and (not isinstance(topic, str) or not topic.strip()):
        return BadLine(source, line, "'topic' must be a non-empty string", end_offset)
    try:
        epoch = parse_timestamp(ts)
    except ValueError as exc:
        return BadLine(source, line, str(exc), end_offset)
    return Record(source, line, epoch, text, topic, end_offset)


def read_lines(fh: IO[bytes], source: str, line: int, offset: int, final: bool) -> Iterator[Record | BadLine]:
    """Parse complete lines of ``fh`` from ``offset`` (the file's ``line``-th line is next); with ``final``
    a last line without a newline counts too (the writer is done)."""
    fh.seek(offset)
    while True:
        raw = fh.readline()
        if not raw:
            return
        if not raw.endswith(b"\n") and not final:
            return  # a writer is mid-line: read it on the next poll
        offset += len(raw)
        line += 1
        if raw.strip():
            yield parse_line(raw, source, line, offset)


def stream_files(source: Path) -> list[Path]:
    """The files of a source in reading order: the file itself, or a folder's ``*.jsonl`` by name."""
    if source.is_dir():
        return sorted(p for p in source.glob("*.jsonl") if p.is_file())
    if source.is_file():
        return [source]
    raise DataError(
        f"stream source '{source}' does not exist (give a .jsonl file, a folder of .jsonl files, or - for stdin)"
    )


def stdin_lines(start_line: int) -> Iterator[Record | BadLine]:
    """Lines of stdin; a pipe cannot seek, so the position is the count of lines consumed."""
    line = start_line
    for raw in sys.stdin.buffer:
        line += 1
        if raw.strip():
            yield parse_line(raw, "<stdin>", line, 0)
