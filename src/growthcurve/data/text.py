"""Text-classification data: load splits, validate, build the label map, split dev off train."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from growthcurve.config import DataConfig
from growthcurve.data.readers import read_table, require_columns
from growthcurve.data.splits import stratified_indices
from growthcurve.errors import DataError


def bundled_intents_dir() -> Path:
    """Folder of the bundled customer-service intents (train/dev/test CSV, English + Chinese)."""
    return Path(str(resources.files("growthcurve") / "examples" / "intents"))


@dataclass
class TextExamples:
    """One split: texts, optional second texts, and label targets (ids, or multi-hot rows)."""

    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray  # int64 [n] for single-label, float32 [n, num_labels] for multi-label
    # position of each row in its file's table (0-based, header excluded): other columns of the same rows,
    # e.g. `evaluate --slice-by`, are read back by it; None for rows that come from no file
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray | list[int]) -> TextExamples:
        """Rows ``idx`` as a new split."""
        idx = list(idx)
        return TextExamples(
            [self.texts[i] for i in idx],
            None if self.pairs is None else [self.pairs[i] for i in idx],
            self.labels[idx],
            None if self.rows is None else self.rows[idx],
        )


@dataclass
class TextSplits:
    """Train/dev/(test) splits sharing one label map."""

    train: TextExamples
    dev: TextExamples | None
    test: TextExamples | None
    labels: list[str]
    multi_label: bool
    warnings: list[str]
    # out-of-scope rows (``data.oos_label``) per split ("train", "dev", "test"), labels -1: never a class
    oos: dict[str, TextExamples] = field(default_factory=dict)


def _parse_multi(value: object, delimiter: str | None, where: str) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        if delimiter is None:
            raise DataError(f"{where}: multi-label value {value!r} is a string; set data.label_delimiter (e.g. '|')")
        return [v.strip() for v in value.split(delimiter) if v.strip()]
    raise DataError(f"{where}: multi-label value must be a list or a delimited string, got {type(value).__name__}")


def _clean_frame(df: pd.DataFrame, cfg: DataConfig, path: str, warnings: list[str]) -> pd.DataFrame:
    cols = [cfg.text_column, cfg.label_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    require_columns(df, [cfg.text_column], path, "data.text_column")
    require_columns(df, [cfg.label_column], path, "data.label_column")
    if cfg.text_pair_column:
        require_columns(df, [cfg.text_pair_column], path, "data.text_pair_column")
    df = df[cols].copy()
    for col in cols[:1] + cols[2:]:
        _check_text_cells(df, col, path)
    if not cfg.multi_label:
        _check_label_cells(df, cfg.label_column, path)
    text = df[cfg.text_column]
    bad_text = text.isna() | text.astype(str).str.strip().eq("")
    if cfg.text_pair_column:
        pair = df[cfg.text_pair_column]
        bad_text |= pair.isna() | pair.astype(str).str.strip().eq("")
    bad_label = (
        df[cfg.label_column].isna()
        if not cfg.multi_label
        else df[cfg.label_column].map(lambda v: v is None or (isinstance(v, float) and np.isnan(v)))
    )
    bad = bad_text | bad_label
    if bad.all():
        raise DataError(f"'{path}': all {len(df)} rows have an empty text or label; nothing to learn from")
    if bad.any():
        msg = f"'{path}': skipped {int(bad.sum())} of {len(df)} rows with an empty text or label"
        warnings.append(msg)  # the caller prints it (once)
    df = df[~bad]
    df[cfg.text_column] = df[cfg.text_column].astype(str)
    if cfg.text_pair_column:
        df[cfg.text_pair_column] = df[cfg.text_pair_column].astype(str)
    if not cfg.multi_label:
        df[cfg.label_column] = df[cfg.label_column].map(_label_str)
    return df


_MISSING_WORDS = {"nan", "none", "null", "n/a", "na"}


def source_line(df: pd.DataFrame, row: int, path: str) -> str:
    """``file:line`` of a DataFrame row: the reader's recorded line when it kept one, else the row's position
    (header on line 1 for CSV/TSV, one object per line for JSONL, a row number for Parquet)."""
    lines = df.attrs.get("lines")
    if lines is not None and int(row) < len(lines):
        return f"{path}:{lines[int(row)]}"
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return f"{path}: row {int(row) + 1}"
    return f"{path}:{int(row) + (2 if suffix in ('.csv', '.tsv', '.txt') else 1)}"


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _check_text_cells(df: pd.DataFrame, col: str, path: str) -> None:
    """Text cells are strings (or missing, which is skipped and counted): a number, bool or list from JSON or
    Parquet is an error, never a text made by ``str()``."""
    for row, v in df[col].items():
        if not _missing(v) and not isinstance(v, str):
            raise DataError(
                f"{source_line(df, row, path)}: column '{col}' holds {v!r:.40} (type {type(v).__name__}), not a text; "
                "quote it in the file"
            )


def _check_label_cells(df: pd.DataFrame, col: str, path: str) -> None:
    """Single-label cells are strings or integers; a list needs data.multi_label, and 'NaN'-like words are
    missing values, not class names."""
    for row, v in df[col].items():
        if _missing(v):
            continue
        where = source_line(df, row, path)
        if isinstance(v, (list, tuple, dict, np.ndarray)):
            raise DataError(
                f"{where}: label {v!r:.60} is a {type(v).__name__}; set data.multi_label=true for several labels "
                "per row"
            )
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise DataError(f"{where}: label {v!r} is not a class name; use strings or integer ids")
        if isinstance(v, str) and v.strip().lower() in _MISSING_WORDS:
            raise DataError(
                f"{where}: label {v!r} reads as a missing value, not a class; leave the cell empty (the row is then "
                "skipped) or give the class a real name"
            )


def _label_str(v: object) -> str:
    """Labels as strings; 1.0 from a float column reads as '1'."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _to_examples(df: pd.DataFrame, cfg: DataConfig, labels: list[str], path: str) -> TextExamples:
    index = {label: i for i, label in enumerate(labels)}
    raw = df[cfg.label_column].tolist()
    if cfg.multi_label:
        y = np.zeros((len(raw), len(labels)), dtype=np.float32)
        for r, value in enumerate(raw):
            for label in _parse_multi(value, cfg.label_delimiter, path):
                if label not in index:
                    raise DataError(f"'{path}': label '{label}' does not occur in the training data")
                y[r, index[label]] = 1.0
    else:
        unseen = sorted({v for v in raw if v not in index})
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
            raise DataError(
                f"'{path}': {len(unseen)} label(s) never seen in training data: {shown}; "
                "add examples of them to the training file or drop those rows"
            )
        y = np.array([index[v] for v in raw], dtype=np.int64)
    pairs = df[cfg.text_pair_column].tolist() if cfg.text_pair_column else None
    return TextExamples(df[cfg.text_column].tolist(), pairs, y, df.index.to_numpy(dtype=np.int64))


def _split_oos(df: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, TextExamples | None]:
    """In-scope rows, and the rows labelled ``cfg.oos_label`` as out-of-scope examples (labels -1)."""
    if cfg.oos_label is None:
        return df, None
    is_oos = df[cfg.label_column] == cfg.oos_label
    if not is_oos.any():
        return df, None
    out = df[is_oos]
    pairs = out[cfg.text_pair_column].tolist() if cfg.text_pair_column else None
    oos = TextExamples(
        out[cfg.text_column].tolist(), pairs, np.full(len(out), -1, np.int64), out.index.to_numpy(dtype=np.int64)
    )
    return df[~is_oos], oos


def _read_split(
    path: str, cfg: DataConfig, warnings: list[str], name: str, oos: dict[str, TextExamples]
) -> pd.DataFrame:
    """A cleaned split with its out-of-scope rows moved into ``oos[name]``; a split of only such rows is an
    error (nothing to classify)."""
    df = _clean_frame(read_table(path), cfg, path, warnings)
    df, found = _split_oos(df, cfg)
    if found is not None:
        oos[name] = found
        if len(df) == 0:
            raise DataError(
                f"'{path}': all {len(found)} rows are labelled '{cfg.oos_label}' (data.oos_label): the {name} split "
                "needs in-scope rows too"
            )
    return df


def load_text_splits(cfg: DataConfig, seed: int = 0, label_names: list[str] | None = None) -> TextSplits:
    """Read and validate the configured files (bundled intents when ``cfg.train`` is unset)."""
    warnings: list[str] = []
    train_path, dev_path, test_path = cfg.train, cfg.dev, cfg.test
    if train_path is None:
        base = bundled_intents_dir()
        train_path, dev_path, test_path = str(base / "train.csv"), str(base / "dev.csv"), str(base / "test.csv")
    oos: dict[str, TextExamples] = {}
    train_df = _read_split(train_path, cfg, warnings, "train", oos)
    if label_names is None:
        if cfg.multi_label:
            found = {
                lab for v in train_df[cfg.label_column] for lab in _parse_multi(v, cfg.label_delimiter, train_path)
            }
        else:
            found = set(train_df[cfg.label_column])
        label_names = sorted(found)
    if len(label_names) < 2:
        only = label_names[0] if label_names else "none"
        raise DataError(f"'{train_path}': only one class ({only!r}); classification needs at least two labels")
    train = _to_examples(train_df, cfg, label_names, train_path)
    if dev_path is not None:
        dev = _to_examples(_read_split(dev_path, cfg, warnings, "dev", oos), cfg, label_names, dev_path)
    elif cfg.dev_fraction == 0:
        dev = None
        warnings.append("no dev split (data.dev_fraction=0): no per-epoch validation; the last epoch is kept")
    else:
        train, dev = stratified_split(train, cfg.dev_fraction, seed, cfg.multi_label)
        warnings.append(f"no dev file: held out a stratified {cfg.dev_fraction:.0%} of train ({len(dev)} rows)")
    test = None
    if test_path is not None:
        test_df = _read_split(test_path, cfg, warnings, "test", oos)
        test = _to_examples(test_df, cfg, label_names, test_path)
    return TextSplits(train, dev, test, label_names, cfg.multi_label, warnings, oos)


def stratified_split(
    data: TextExamples, fraction: float, seed: int, multi_label: bool = False
) -> tuple[TextExamples, TextExamples]:
    """Split off ``fraction`` of rows keeping class proportions; classes with <2 rows stay in train."""
    # multi-label: the first label is the stratum, a fair approximation
    strata = data.labels.argmax(axis=1) if multi_label else data.labels
    train_idx, dev_idx = stratified_indices(strata, fraction, seed)
    return data.subset(train_idx), data.subset(dev_idx)
