"""Interactions and item texts for the recommender: reading, checking, and the leave-last-out split.

Files are read through `growthcurve.data.readers` so a malformed row is reported as file:line; the checks
here add what a recommender needs (parsable timestamps, known items, duplicates, items without text).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from growthcurve.data.readers import read_table, require_columns
from growthcurve.errors import DataError


@dataclass
class Catalogue:
    """The items that can be recommended: ids in a fixed order, one text and one short title each."""

    ids: list[str]
    texts: list[str]
    titles: list[str]
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class LoadedData:
    """Checked interactions (columns user, item, ts, rating; time order within user) and the catalogue."""

    interactions: pd.DataFrame
    catalogue: Catalogue
    warnings: list[str]


def _line_of(path: Path, row: int) -> str:
    """``file:line`` of the ``row``-th data row (0-based), counting lines the way the reader skips them.

    The project reader returns a DataFrame without line numbers; errors found after parsing (a bad
    timestamp) re-scan the file here, which only happens on the error path.
    """
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        text = path.read_text(encoding="utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        next(reader, None)
        n = -1
        for rec in reader:
            if not rec or (len(rec) == 1 and rec[0].strip() == ""):
                continue
            n += 1
            if n == row:
                return f"{path}:{reader.line_num}"
    elif suffix in (".jsonl", ".json"):
        n = -1
        with path.open(encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    n += 1
                    if n == row:
                        return f"{path}:{lineno}"
    return f"{path}: row {row + 1}"


def _as_str(values: pd.Series) -> pd.Series:
    """Ids as strings ("12" and 12 are the same item); a float id read from JSON keeps no ".0"."""
    return values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else _id_text(v))


def _id_text(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def parse_timestamps(values: pd.Series, path: Path, column: str, fmt: str | None) -> np.ndarray:
    """Timestamps as int64 for ordering (Unix numbers cut to whole units, dates as epoch ticks); the first
    bad one raises file:line. A mostly numeric column is Unix time; otherwise dates are expected."""
    numeric = pd.to_numeric(values, errors="coerce") if fmt is None else None
    if numeric is not None and numeric.notna().mean() > 0.5:
        # mostly numbers: the column is Unix time, and any text in it is the malformed part
        bad = np.flatnonzero(numeric.isna().to_numpy())
        parsed = numeric
    else:
        parsed = pd.to_datetime(values, errors="coerce", format=fmt or "ISO8601", utc=True)
        bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raw = values.iloc[row]
        expect = f"format '{fmt}'" if fmt else "ISO-8601 (2024-05-01T12:00:00) or a number (Unix seconds)"
        raise DataError(
            f"{_line_of(path, row)}: malformed timestamp {raw!r} in column '{column}' "
            f"({len(bad)} bad in all); expected {expect} (set data.timestamp_format)"
        )
    return parsed.astype("int64").to_numpy()


def read_items(
    path: str | Path, id_column: str, title_column: str | None, text_columns: list[str]
) -> tuple[Catalogue, list[str]]:
    """The catalogue from an items file; duplicate ids fail, items without any text are a counted warning."""
    p = Path(path)
    df = read_table(p)
    require_columns(df, [id_column], p, "data.item_id_column")
    if title_column:
        require_columns(df, [title_column], p, "data.title_column")
    require_columns(df, list(text_columns), p, "data.text_columns")
    ids = _as_str(df[id_column])
    missing = np.flatnonzero(ids.isna().to_numpy())
    if len(missing):
        raise DataError(f"{_line_of(p, int(missing[0]))}: empty item id in column '{id_column}'")
    dup = ids[ids.duplicated()]
    if len(dup):
        row = int(np.flatnonzero(ids.duplicated().to_numpy())[0])
        raise DataError(
            f"{_line_of(p, row)}: item id {dup.iloc[0]!r} appears more than once in '{p}' "
            f"({len(dup)} duplicate ids); give each item one row"
        )

    def clean(v: object) -> str:
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()

    titles = [clean(v) for v in df[title_column]] if title_column else [""] * len(df)
    others = [[clean(v) for v in df[c]] for c in text_columns]
    texts = []
    for i in range(len(df)):
        parts = [titles[i]] + [col[i] for col in others]
        texts.append(". ".join(x for x in parts if x))
    short = [t if t else (txt[:120]) for t, txt in zip(titles, texts, strict=True)]
    warnings = []
    empty = sum(1 for t in texts if not t)
    if empty:
        warnings.append(
            f"{empty} of {len(texts)} items in '{p}' have no text (title and {', '.join(text_columns) or 'no'} "
            "text columns empty); they can be recommended only through the collaborative signal"
        )
    return Catalogue(ids=list(ids), texts=texts, titles=short), warnings


def read_interactions(
    path: str | Path,
    catalogue: Catalogue,
    user_column: str,
    item_column: str,
    rating_column: str | None = None,
    timestamp_column: str | None = None,
    timestamp_format: str | None = None,
    min_rating: float | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Checked interactions in time order (file order where there is no timestamp column).

    Duplicate (user, item) pairs keep their first occurrence and are counted in a warning; interactions
    naming items that are not in the catalogue are dropped with a counted warning (they have no text).
    """
    p = Path(path)
    df = read_table(p)
    require_columns(df, [user_column], p, "data.user_column")
    require_columns(df, [item_column], p, "data.item_column")
    if rating_column:
        require_columns(df, [rating_column], p, "data.rating_column (or null for click data)")
    if timestamp_column:
        require_columns(df, [timestamp_column], p, "data.timestamp_column (or null to use file order)")
    users = _as_str(df[user_column])
    items = _as_str(df[item_column])
    for col, values in ((user_column, users), (item_column, items)):
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            raise DataError(f"{_line_of(p, int(bad[0]))}: empty value in column '{col}' ({len(bad)} rows in all)")
    out = pd.DataFrame({"user": users, "item": items, "row": np.arange(len(df))})
    if timestamp_column:
        out["ts"] = parse_timestamps(df[timestamp_column], p, timestamp_column, timestamp_format)
    else:
        out["ts"] = np.arange(len(df), dtype=np.int64)  # file order is time order (as in goodbooks ratings.csv)
    if rating_column:
        ratings = pd.to_numeric(df[rating_column], errors="coerce")
        bad = np.flatnonzero(ratings.isna().to_numpy())
        if len(bad):
            raise DataError(
                f"{_line_of(p, int(bad[0]))}: rating {df[rating_column].iloc[int(bad[0])]!r} in column "
                f"'{rating_column}' is not a number ({len(bad)} bad in all)"
            )
        out["rating"] = ratings.to_numpy(dtype=np.float64)
    else:
        out["rating"] = 1.0
    warnings: list[str] = []
    if min_rating is not None:
        keep = out["rating"] >= min_rating
        if (~keep).any():
            warnings.append(f"{int((~keep).sum())} interactions rated below {min_rating:g} are not positives; left out")
        out = out[keep]
    known = out["item"].isin(catalogue.index)
    if (~known).any():
        first = int(out.loc[~known, "row"].iloc[0])
        warnings.append(
            f"{int((~known).sum())} interactions name {out.loc[~known, 'item'].nunique()} items that are not in the "
            f"items file (first at {_line_of(p, first)}: {out.loc[~known, 'item'].iloc[0]!r}); left out, "
            "since they have no text"
        )
        out = out[known]
    out = out.sort_values(["user", "ts", "row"], kind="stable")
    dup = out.duplicated(["user", "item"], keep="first")
    if dup.any():
        warnings.append(
            f"{int(dup.sum())} duplicate (user, item) interactions in '{p}'; kept the earliest of each pair once"
        )
        out = out[~dup]
    if len(out) == 0:
        raise DataError(f"'{p}' has no usable interactions left after the checks above ({'; '.join(warnings)})")
    return out.reset_index(drop=True), warnings


@dataclass
class Split:
    """Leave-last-out roles: per user the latest interaction is the test, the one before it validation.

    ``cold_items`` never appear in ``train`` or ``val``; users whose test item is cold are scored apart.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    cold_items: set[str]
    seen: pd.DataFrame  # every pre-test (user, item), cold ones included: excluded from the test ranking


def leave_last_out(interactions: pd.DataFrame, cold_fraction: float = 0.0, seed: int = 0) -> Split:
    """Hold out each user's latest interaction (test) and the one before (validation); users with fewer
    than 3 interactions only train. A ``cold_fraction`` of the interacted items is removed from training.
    """
    df = interactions.sort_values(["user", "ts", "row"], kind="stable").reset_index(drop=True)
    pos_from_end = df.groupby("user").cumcount(ascending=False).to_numpy()
    size = df.groupby("user")["item"].transform("size").to_numpy()
    role = np.where(size < 3, "train", np.where(pos_from_end == 0, "test", np.where(pos_from_end == 1, "val", "train")))
    df["role"] = role
    cold: set[str] = set()
    if cold_fraction > 0:
        rng = np.random.default_rng(seed)
        items = np.array(sorted(df["item"].unique()))
        n_cold = int(round(cold_fraction * len(items)))
        cold = set(rng.choice(items, size=n_cold, replace=False).tolist()) if n_cold else set()
    is_cold = df["item"].isin(cold).to_numpy()
    test = df[df["role"] == "test"]
    seen = df[df["role"] != "test"][["user", "item"]]
    train = df[(df["role"] == "train") & ~is_cold]
    val = df[(df["role"] == "val") & ~is_cold]
    cols = ["user", "item", "ts", "rating", "row"]
    return Split(
        train=train[cols].reset_index(drop=True),
        val=val[cols].reset_index(drop=True),
        test=test[cols].reset_index(drop=True),
        cold_items=cold,
        seen=seen.reset_index(drop=True),
    )


def user_item_matrix(df: pd.DataFrame, users: dict[str, int], catalogue: Catalogue) -> sp.csr_matrix:
    """Binary users x items CSR matrix of the (user, item) pairs in ``df`` (rows of unknown users are absent)."""
    df = df[df["user"].isin(users)]
    rows = df["user"].map(users).to_numpy()
    cols = df["item"].map(catalogue.index).to_numpy()
    data = np.ones(len(df), dtype=np.float32)
    m = sp.csr_matrix((data, (rows, cols)), shape=(len(users), len(catalogue)), dtype=np.float32)
    m.data[:] = 1.0  # a pair listed twice stays one interaction
    return m


def histories(df: pd.DataFrame) -> dict[str, list[str]]:
    """Each user's items in time order (``df`` is sorted by user, ts)."""
    return {u: list(g["item"]) for u, g in df.sort_values(["user", "ts", "row"], kind="stable").groupby("user")}
