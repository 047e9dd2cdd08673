"""Read CSV, TSV, JSONL and Parquet into a DataFrame, with file/line-numbered errors for bad input."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from growthcurve.errors import ConfigError, DataError

SUPPORTED = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt", ".conll")


def _field_size_limit() -> int:
    """The csv module's per-field limit (default 128 KiB would call a well-formed long row "malformed")."""
    raw = os.environ.get("GROWTHCURVE_CSV_FIELD_LIMIT", "")
    if not raw:
        return 2**31 - 1  # the largest value csv accepts on every platform (a C long on Windows)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"GROWTHCURVE_CSV_FIELD_LIMIT must be a number of characters, got '{raw}'") from None
    if value < 1:
        raise ConfigError(f"GROWTHCURVE_CSV_FIELD_LIMIT must be >= 1, got {value}")
    return value


def _set_field_limit() -> None:
    csv.field_size_limit(_field_size_limit())


def read_table(path: str | Path, what: str = "data") -> pd.DataFrame:
    """Load a table by extension, cells as read (no type inference); raise DataError naming the file (``what``
    file, e.g. "candidates") and line for malformed input."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} file '{p}' does not exist")
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
        try:
            df = _read_jsonl(p)
        except UnicodeDecodeError as exc:
            raise DataError(f"'{p}' is not UTF-8 text (byte {exc.start} of a line)") from None
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
    _set_field_limit()
    frames = list(_parse_delimited(p, io.StringIO(text, newline=""), sep, chunk_rows=None))
    return frames[0]


def _parse_delimited(p: Path, fh: io.TextIOBase, sep: str, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    """Rows of a delimited text stream as DataFrames of strings (None for blanks), ``chunk_rows`` at a time.

    Each frame's ``attrs["lines"]`` holds the file line where each row starts, for file:line messages.
    """
    reader = csv.reader(fh, delimiter=sep, strict=True)
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
    lines: list[int] = []
    start = reader.line_num + 1

    def frame() -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=header, dtype=object).replace({"": None})
        # a numpy array, not a list: pandas deep-copies attrs on every operation, and a list of 200k ints
        # made each column access cost ~0.1 s
        df.attrs["lines"] = np.asarray(lines, dtype=np.int64)
        return df

    emitted = False
    try:
        for row in reader:
            if not row or (len(row) == 1 and row[0].strip() == ""):
                start = reader.line_num + 1
                continue  # blank line
            if len(row) != len(header):
                raise DataError(
                    f"{p}:{reader.line_num}: expected {len(header)} fields ({sep!r}-separated) but found "
                    f"{len(row)}; quote fields that contain the separator"
                )
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
            if chunk_rows is not None and len(rows) >= chunk_rows:
                yield frame()
                emitted = True
                rows.clear()
                lines.clear()
    except csv.Error as exc:
        raise DataError(f"{p}:{reader.line_num}: malformed {'TSV' if sep == chr(9) else 'CSV'} ({exc})") from None
    if rows or not emitted:
        yield frame()


def iter_delimited(path: str | Path, chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
    """Stream a .csv/.tsv/.txt file as DataFrames of strings, with :func:`read_table`'s checks and messages.

    For tables too big to hold twice in memory (experiment events); rows are numbered as in read_table.
    """
    p = _check_file(Path(path))
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".tsv", ".txt"):
        raise DataError(f"'{p}': expected a .csv or .tsv file, got '{suffix}'")
    _check_utf8(p)
    _set_field_limit()
    n = 0
    with p.open(encoding="utf-8-sig", newline="") as fh:
        for df in _parse_delimited(p, fh, "\t" if suffix == ".tsv" else ",", chunk_rows):
            n += len(df)
            if len(df):
                yield df
    if n == 0:
        raise DataError(f"data file '{p}' has a header but no rows")


def _check_file(p: Path) -> Path:
    if not p.exists():
        raise DataError(f"data file '{p}' does not exist")
    if p.is_dir():
        raise DataError(f"'{p}' is a folder; give a .csv, .tsv, .jsonl or .parquet file")
    if p.stat().st_size == 0:
        raise DataError(f"data file '{p}' is empty")
    return p


def _check_utf8(p: Path, block: int = 1 << 20) -> None:
    """Decode the file block by block so a bad byte is reported at its offset without loading the file."""
    dec = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with p.open("rb") as fh:
        while chunk := fh.read(block):
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as exc:
                raise DataError(f"'{p}' is not UTF-8 text (byte {offset + exc.start})") from None
            offset += len(chunk)
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise DataError(f"'{p}' is not UTF-8 text (byte {offset + exc.start})") from None


def line_of(df: pd.DataFrame, pos: int) -> int:
    """The file line of row ``pos`` (0-based position) of a frame from this module (header = line 1)."""
    lines = df.attrs.get("lines")
    return int(lines[pos]) if lines is not None and pos < len(lines) else pos + 2


def require_numeric(
    df: pd.DataFrame, columns: Sequence[str], path: str | Path, *, allow_missing: bool = True
) -> pd.DataFrame:
    """``df`` with ``columns`` as floats; the first cell that is not a finite number is a DataError at file:line.

    Blank cells stay missing (NaN) when ``allow_missing``, else they are errors too. Never coerces text
    to 0 or NaN silently.
    """
    out = df.copy()
    out.attrs = dict(df.attrs)
    for col in columns:
        if col not in df.columns:
            continue
        raw = df[col]
        conv = _fast_float(raw)
        if conv is None:  # some cell is not a number: the slow, cell-by-cell path finds which
            conv = pd.to_numeric(raw, errors="coerce").astype(float)
        blank = raw.isna()
        bad = (conv.isna() & ~blank) | ~(conv.isna() | conv.abs().lt(float("inf")))
        if not allow_missing:
            bad |= blank
        if bad.any():
            pos = int(bad.to_numpy().nonzero()[0][0])
            value = raw.iloc[pos]
            shown = "a blank cell" if value is None or (isinstance(value, float) and pd.isna(value)) else repr(value)
            raise DataError(
                f"{path}:{line_of(df, pos)}: column '{col}' must be a finite number, got {shown}; fix that cell"
            )
        out[col] = conv
    return out


def infer_numeric(df: pd.DataFrame, skip: Sequence[str] = ()) -> pd.DataFrame:
    """Columns whose every non-blank cell is a number become numeric (as pandas.read_csv would infer)."""
    out = df.copy()
    out.attrs = dict(df.attrs)
    for col in df.columns:
        if col in skip or df[col].dtype != object:
            continue
        if not df[col].notna().any():
            continue
        try:
            out[col] = df[col].astype("int64")
        except (TypeError, ValueError, OverflowError):
            conv = _fast_float(df[col])
            if conv is not None:
                out[col] = conv
    return out


def _fast_float(col: pd.Series) -> pd.Series | None:
    """``col`` as floats by numpy's C conversion (blanks → NaN), or None when a cell is not a number.

    pandas.to_numeric(errors="coerce") is ~10x slower on text columns; it only runs on the error path.
    """
    try:
        return col.astype(float)
    except (TypeError, ValueError):
        return None


def _read_jsonl(p: Path) -> pd.DataFrame:
    """JSON Lines (one object per line); a .json file holding one array of objects also works."""
    records: list[dict] = []
    lines: list[int] = []
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
            lines.append(lineno)
    if not records:
        raise DataError(f"data file '{p}' has no records")
    df = pd.DataFrame.from_records(records)
    df.attrs["lines"] = np.asarray(lines, dtype=np.int64)
    return df


def require_columns(df: pd.DataFrame, columns: list[str], path: str | Path, option: str = "") -> None:
    """Fail with the list of existing columns when a configured column is absent."""
    for col in columns:
        if col not in df.columns:
            hint = f" (set {option})" if option else ""
            raise DataError(f"'{path}' has no column '{col}'{hint}; columns are: {', '.join(map(str, df.columns))}")
