"""Aggregation of events to per-variant sufficient statistics, as one SQLAlchemy query per metric.

Two ``GROUP BY`` levels: events → one row per (unit, variant) with the unit's metric value ``y`` and
second value ``x`` (denominator or CUPED covariate), then → per variant n, Σy, Σy², Σx, Σx², Σxy. The
query runs inside SQLite, DuckDB or PostgreSQL; Python only ever sees one row per variant, so memory does
not grow with the number of events. Table and column names come from config: each is checked to be a
plain identifier *and* a real column of the reflected table, and values (experiment, metric names) are
bound parameters, so nothing from a config is pasted into SQL text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthcurve.dbcheck import require_existing_database
from growthcurve.errors import ConfigError, DataError
from growthcurve.store import default_url, get_engine, validate_identifier
from growthcurve.validation.config import MetricConfig, SourceConfig
from growthcurve.validation.stats import SufficientStats


@dataclass
class EventSource:
    """A reflected events table plus the column roles the config gives it."""

    engine: sa.Engine
    table: sa.Table
    cfg: SourceConfig

    def col(self, name: str, what: str) -> sa.ColumnElement[Any]:
        """The table's column ``name``; a ConfigError naming the existing columns when it is absent."""
        validate_identifier(name, what)
        if name not in self.table.c:
            cols = ", ".join(self.table.c.keys())
            raise ConfigError(f"{what} '{name}' is not a column of table '{self.table.name}' (columns: {cols})")
        return self.table.c[name]

    def _where(self, until: Any = None) -> list[sa.ColumnElement[bool]]:
        conds: list[sa.ColumnElement[bool]] = []
        if self.cfg.experiment is not None:
            conds.append(self.col(self.cfg.experiment_column, "source.experiment_column") == self.cfg.experiment)
        if until is not None:
            conds.append(self.col(self.cfg.timestamp_column, "source.timestamp_column") <= until)
        return conds

    def _value(self, name: str, what: str) -> sa.ColumnElement[Any]:
        """A metric's per-event value: its column (wide) or value where metric = name (long)."""
        if self.cfg.format == "wide":
            return sa.cast(self.col(name, what), sa.Double)
        metric = self.col(self.cfg.metric_column, "source.metric_column")
        value = self.col(self.cfg.value_column, "source.value_column")
        return sa.case((metric == name, sa.cast(value, sa.Double)), else_=sa.null())

    def _per_unit(self, m: MetricConfig, until: Any) -> sa.Subquery:
        unit = self.col(self.cfg.unit_column, "source.unit_column")
        variant = self.col(self.cfg.variant_column, "source.variant_column")
        zero = sa.literal(0.0, sa.Double)
        y: sa.ColumnElement[Any]
        x: sa.ColumnElement[Any]
        if m.type == "ratio":
            y = sa.func.coalesce(sa.func.sum(self._value(m.numerator or "", "metric numerator")), zero)
            x = sa.func.coalesce(sa.func.sum(self._value(m.denominator or "", "metric denominator")), zero)
        else:
            v = self._value(m.value, "metric column")
            if m.type == "binomial":
                y = sa.func.coalesce(sa.func.max(sa.case((v > 0, 1.0), else_=0.0)), zero)
            elif m.aggregation == "mean":
                y = sa.func.avg(v)  # a unit without values stays NULL and is left out of this metric
            elif m.aggregation == "count":
                y = sa.cast(sa.func.count(v), sa.Double)
            elif m.aggregation == "max":
                y = sa.func.coalesce(sa.func.max(v), zero)
            else:
                y = sa.func.coalesce(sa.func.sum(v), zero)
            if m.covariate:
                x = sa.func.coalesce(sa.func.sum(self._value(m.covariate, "metric covariate")), zero)
            else:
                x = zero
        q = sa.select(variant.label("variant"), sa.cast(y, sa.Double).label("y"), sa.cast(x, sa.Double).label("x"))
        conds = self._where(until)
        if conds:
            q = q.where(*conds)
        return q.group_by(unit, variant).subquery("per_unit")

    def aggregate(self, metric: MetricConfig, until: Any = None) -> dict[str, SufficientStats]:
        """Per-variant sufficient statistics of ``metric`` over events up to ``until`` (inclusive)."""
        pu = self._per_unit(metric, until)
        y, x = pu.c.y, pu.c.x
        q = (
            sa.select(
                pu.c.variant,
                sa.func.count(),
                sa.func.sum(y),
                sa.func.sum(y * y),
                sa.func.sum(x),
                sa.func.sum(x * x),
                sa.func.sum(x * y),
            )
            .where(y.is_not(None))
            .group_by(pu.c.variant)
            .order_by(pu.c.variant)
        )
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
        except sa.exc.DBAPIError as exc:  # e.g. PostgreSQL refusing CAST('abc' AS DOUBLE)
            raise DataError(
                f"metric '{metric.name}': the database cannot read its values as numbers "
                f"({str(exc.orig).splitlines()[0]}); fix the column type or the bad values"
            ) from None
        return {str(r[0]): SufficientStats(int(r[1]), *(float(v or 0.0) for v in r[2:])) for r in rows}

    def _metric_filter(self, name: str) -> list[sa.ColumnElement[bool]]:
        """Rows that carry metric ``name``'s values: all rows (wide) or those with metric = name (long)."""
        if self.cfg.format == "wide":
            return []
        return [self.col(self.cfg.metric_column, "source.metric_column") == name]

    def _raw(self, name: str, what: str) -> sa.ColumnElement[Any]:
        return self.col(name if self.cfg.format == "wide" else self.cfg.value_column, what)

    def check_values(self, metric: MetricConfig) -> None:
        """Refuse values SQL would silently mangle: text in a number column (SQLite CASTs it to 0) and
        negative counts (binomial values, ratio denominators such as sessions)."""
        roles = [(metric.value, "metric column")] if metric.type != "ratio" else []
        roles += [(metric.numerator or "", "metric numerator"), (metric.denominator or "", "metric denominator")]
        roles += [(metric.covariate, "metric covariate")] if metric.covariate else []
        unit = self.col(self.cfg.unit_column, "source.unit_column")
        with self.engine.connect() as conn:
            for name, what in roles:
                if not name:
                    continue
                raw = self._raw(name, what)
                conds = self._where() + self._metric_filter(name)
                if self.engine.dialect.name == "sqlite":
                    # SQLite stores what it is given; CAST('abc' AS REAL) is 0.0, so look for text that is not
                    # a number (a numeric string such as '1.5' is fine, CAST reads it exactly)
                    text_q = sa.select(unit, raw).where(sa.func.typeof(raw).in_(("text", "blob")), *conds)
                    for u, v in conn.execute(text_q.execution_options(yield_per=10_000)):
                        try:
                            float(v)
                        except (TypeError, ValueError):
                            raise DataError(
                                f"metric '{metric.name}' ({what}): value {v!r} of unit {u!r} is not a number; "
                                "fix the data (text would be counted as 0)"
                            ) from None
                negative_matters = metric.type == "binomial" or what == "metric denominator"
                if negative_matters:
                    neg_q = sa.select(unit, raw).where(sa.cast(raw, sa.Double) < 0, *conds).limit(1)
                    row = conn.execute(neg_q).first()
                    if row is not None:
                        kind = "a conversion flag" if metric.type == "binomial" else "a denominator (count)"
                        raise DataError(
                            f"metric '{metric.name}': unit {row[0]!r} has value {row[1]} < 0 in '{name}', which is "
                            f"{kind} and cannot be negative; fix the data"
                        )

    def unit_counts(self) -> dict[str, int]:
        """Distinct units per variant (the SRM check's input)."""
        unit = self.col(self.cfg.unit_column, "source.unit_column")
        variant = self.col(self.cfg.variant_column, "source.variant_column")
        q = sa.select(variant, sa.func.count(sa.distinct(unit))).group_by(variant).order_by(variant)
        conds = self._where()
        if conds:
            q = q.where(*conds)
        with self.engine.connect() as conn:
            return {str(v): int(n) for v, n in conn.execute(q).all()}

    def units_in_several_variants(self) -> int:
        """How many units appear under more than one variant (a broken assignment)."""
        unit = self.col(self.cfg.unit_column, "source.unit_column")
        variant = self.col(self.cfg.variant_column, "source.variant_column")
        inner = sa.select(unit).group_by(unit).having(sa.func.count(sa.distinct(variant)) > 1)
        conds = self._where()
        if conds:
            inner = inner.where(*conds)
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(inner.subquery())).scalar() or 0)

    def time_range(self) -> tuple[Any, Any]:
        """Earliest and latest timestamp (datetimes or numbers, as the column holds them)."""
        ts = self.col(self.cfg.timestamp_column, "source.timestamp_column")
        q = sa.select(sa.func.min(ts), sa.func.max(ts))
        conds = self._where()
        if conds:
            q = q.where(*conds)
        with self.engine.connect() as conn:
            lo, hi = conn.execute(q).one()
        return lo, hi


def look_cutoffs(lo: Any, hi: Any, looks: int) -> list[Any]:
    """``looks`` evenly spaced cut-offs ending at ``hi`` (cumulative analysis points)."""
    if looks <= 0 or lo is None or hi is None:
        return []
    if isinstance(lo, str):
        try:
            lo, hi = dt.datetime.fromisoformat(lo), dt.datetime.fromisoformat(hi)
        except ValueError:
            return []
    if isinstance(lo, dt.datetime | int | float) and not isinstance(lo, bool):
        span = hi - lo
        return [lo + span * (i + 1) / looks for i in range(looks)]
    return []


def reflect(engine: sa.Engine, table_name: str) -> sa.Table:
    """Reflect ``table_name`` (optionally ``schema.table``); a missing table is a DataError."""
    validate_identifier(table_name, "source.table", dotted=True)
    schema, _, name = table_name.rpartition(".")
    missing = f"table '{table_name}' does not exist at {engine.url!r}: check source.table/url"
    try:
        return sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=engine)
    except sa.exc.NoSuchTableError:
        raise DataError(missing) from None
    except sa.exc.OperationalError as exc:
        raise DataError(f"cannot read database {engine.url!r}: {exc.orig}") from None
    except sa.exc.DBAPIError:
        # duckdb-engine's catalog queries (borrowed from PostgreSQL) fail under SQLAlchemy 2.1: fall back to
        # the column names of an empty SELECT; untyped columns are enough for the aggregation queries.
        probe = sa.select(sa.text("*")).select_from(sa.table(name, schema=schema or None)).limit(0)
        try:
            with engine.connect() as conn:
                keys = list(conn.execute(probe).keys())
        except sa.exc.DBAPIError:
            raise DataError(missing) from None
        return sa.Table(name, sa.MetaData(), *(sa.Column(k) for k in keys), schema=schema or None)


def load_file(
    path: str | Path,
    engine: sa.Engine,
    table: str,
    timestamp_column: str | None,
    chunk_rows: int = 200_000,
    numeric_columns: Sequence[str] = (),
) -> None:
    """Stream a CSV or Parquet file into ``table`` in chunks, so a big file never sits in memory whole.

    CSV goes through the shared reader (``growthcurve.data.readers``: same messages as ``finetune`` for an
    empty file, bad bytes or a broken quote); a non-number in one of ``numeric_columns`` is a DataError at
    file:line, because SQL's CAST would silently turn it into 0.
    """
    import pandas as pd

    from growthcurve.data.readers import infer_numeric, iter_delimited, require_numeric

    p = Path(path)
    if not p.exists():
        raise DataError(f"events file '{p}' does not exist")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        chunks: Any = (
            infer_numeric(require_numeric(c, numeric_columns, p), skip=[timestamp_column or ""])
            for c in iter_delimited(p, chunk_rows)
        )
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        if p.is_dir() or p.stat().st_size == 0:
            raise DataError(f"events file '{p}' is empty or a folder; give a .csv, .tsv or .parquet file")

        def batches() -> Iterator[Any]:
            try:
                yield from pq.ParquetFile(p).iter_batches(batch_size=chunk_rows)
            except Exception as exc:  # pyarrow raises several types for corrupt files, some mid-file
                raise DataError(f"'{p}' is not a readable Parquet file ({exc.__class__.__name__})") from None

        chunks = (require_numeric(b.to_pandas(), numeric_columns, p) for b in batches())
    else:
        raise DataError(f"events file '{p}' must be .csv, .tsv or .parquet")
    n = 0
    for chunk in chunks:
        if timestamp_column and timestamp_column in chunk.columns:
            try:
                chunk[timestamp_column] = pd.to_datetime(chunk[timestamp_column])
            except (ValueError, TypeError):
                raise DataError(f"column '{timestamp_column}' of '{p}' holds values that are not dates") from None
        chunk.to_sql(table, engine, if_exists="append", index=False)
        n += len(chunk)
    if n == 0:
        raise DataError(f"events file '{p}' has no rows")


@contextlib.contextmanager
def open_source(
    cfg: SourceConfig, numeric_columns: Sequence[str] = (), option: str = "source.url"
) -> Iterator[EventSource]:
    """The configured events table; a file is first loaded into a temporary SQLite database.

    ``numeric_columns`` must hold numbers (checked at file:line for files, in SQL for tables). A SQLite
    URL whose file is missing is a DataError: reading must never create an empty database.
    """
    if cfg.path:
        validate_identifier(cfg.table, "source.table")
        with tempfile.TemporaryDirectory(prefix="growthcurve-ab-") as tmp:
            engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'events.db'}")
            try:
                load_file(cfg.path, engine, cfg.table, cfg.timestamp_column, numeric_columns=numeric_columns)
                yield EventSource(engine, reflect(engine, cfg.table), cfg)
            finally:
                engine.dispose()
    else:
        validate_identifier(cfg.table, "source.table", dotted=True)  # config errors before data errors
        require_existing_database(cfg.url or default_url(), option)
        engine = get_engine(cfg.url)
        try:
            yield EventSource(engine, reflect(engine, cfg.table), cfg)
        finally:
            engine.dispose()
