"""Read CSV, TSV, JSONL and Parquet into a DataFrame, with file/line-numbered errors for bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from growthcurve.errors import DataError

SUPPORTED = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt", ".conll")


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a table by extension; raise DataError naming file and line for malformed input."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file '{p}' does not exist")
    if p.is_dir():
        raise DataError(f"'{p}' is a folder; give a .csv, .tsv, .jsonl or .parquet file")
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED:
        raise DataError(f"'{p}': unsupported extension '{suffix}' (use .csv, .tsv, .jsonl or .parquet)")
    if p.stat().st_size == 0:
        raise DataError(f"data file '{p}' is empty")
    if suffix in (".csv", ".tsv", ".txt"):
        df = _read_delimited(p, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".json"):
        df = _read_jsonl(p)
    elif suffix == ".parquet":
        try:
            df = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"'{p}' is not a readable Parquet file ({exc.__class__.__name__})") from None
    else:
        raise DataError(f"'{p}': use task=token-classification for CoNLL files")
    if len(df) == 0:
        raise DataError(f"data file '{p}' has a header but no rows")
    return df


def _read_delimited(p: Path, sep: str) -> pd.DataFrame:
    """Parse with the csv module first so a malformed row is reported with its line number."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"'{p}' is not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"data file '{p}' is empty") from None
    except csv.Error as exc:
        raise DataError(f"{p}:1: malformed header ({exc})") from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise DataError(f"{p}:1: duplicate column names in header {header}")
    rows: list[list[str]] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and row[0].strip() == ""):
                continue  # blank line
            if len(row) != len(header):
                raise DataError(
                    f"{p}:{reader.line_num}: expected {len(header)} fields ({sep!r}-separated) but found "
                    f"{len(row)}; quote fields that contain the separator"
                )
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{p}:{reader.line_num}: malformed {'TSV' if sep == chr(9) else 'CSV'} ({exc})") from None
    df = pd.DataFrame(rows, columns=header, dtype=object)
    return df.replace({"": None})


def _read_jsonl(p: Path) -> pd.DataFrame:
    """JSON Lines (one object per line); a .json file holding one array of objects also works."""
    records: list[dict] = []
    with p.open(encoding="utf-8-sig") as fh:
        first = fh.read(1)
        fh.seek(0)
        if first == "[" and p.suffix.lower() == ".json":
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{exc.lineno}: malformed JSON ({exc.msg})") from None
            if not all(isinstance(r, dict) for r in data):
                raise DataError(f"'{p}': expected an array of objects")
            return pd.DataFrame(data)
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{p}:{lineno}: expected a JSON object per line, found {type(obj).__name__}")
            records.append(obj)
    if not records:
        raise DataError(f"data file '{p}' has no records")
    return pd.DataFrame.from_records(records)


def require_columns(df: pd.DataFrame, columns: list[str], path: str | Path, option: str = "") -> None:
    """Fail with the list of existing columns when a configured column is absent."""
    for col in columns:
        if col not in df.columns:
            hint = f" (set {option})" if option else ""
            raise DataError(f"'{path}' has no column '{col}'{hint}; columns are: {', '.join(map(str, df.columns))}")
