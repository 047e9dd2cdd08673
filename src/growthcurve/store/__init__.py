"""SQL storage: SQLite by default, PostgreSQL/DuckDB by SQLAlchemy URL; schema managed by Alembic."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthcurve.errors import ConfigError, DataError
from growthcurve.store.decisions import list_decisions, record_decision
from growthcurve.store.schema import decisions, experiment_events, feedback, metadata, predictions

__all__ = [
    "masked_url",
    "decisions",
    "default_url",
    "experiment_events",
    "feedback",
    "get_engine",
    "init_db",
    "insert_rows",
    "list_decisions",
    "metadata",
    "predictions",
    "record_decision",
    "validate_identifier",
]

_ALEMBIC_DIR = Path(__file__).parent / "alembic"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def masked_url(url: str) -> str:
    """``url`` with any password shown as ***, for logs, JSON files and pages that travel (a non-URL as it is)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def default_url() -> str:
    """The store URL: env ``GROWTHCURVE_DB_URL`` or ``growthcurve.db`` (SQLite) in the working dir."""
    return os.environ.get("GROWTHCURVE_DB_URL") or "sqlite:///growthcurve.db"


def validate_identifier(name: str, what: str = "identifier", dotted: bool = False) -> str:
    """Refuse a table/column name that is not a plain SQL identifier (no quoting tricks, no injection)."""
    parts = name.split(".") if dotted else [name]
    if not name or len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
        raise ConfigError(
            f"{what} '{name}' is not a plain SQL identifier (letters, digits and _, not starting with a digit)"
        )
    return name


def get_engine(url: str | None = None) -> sa.Engine:
    """A SQLAlchemy engine for ``url`` (default: :func:`default_url`); a bad URL is a ConfigError."""
    url = url or default_url()
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(f"database URL '{url}' cannot be used: {exc}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"database URL '{url}' needs the driver '{exc.name}': pip install 'growthcurve[warehouse]'"
        ) from None


def init_db(url: str | None = None) -> sa.Engine:
    """Create or upgrade the schema at ``url`` to the newest Alembic revision and return an engine."""
    from alembic import command
    from alembic.config import Config

    engine = get_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.OperationalError as exc:
        raise DataError(f"cannot open database '{engine.url!r}': {exc.orig}") from None
    return engine


def insert_rows(engine: sa.Engine, table: sa.Table, rows: Iterable[Mapping[str, Any]], batch_size: int = 10_000) -> int:
    """Insert ``rows`` in batches (executemany), so memory stays flat for long iterators; returns the count."""
    total = 0
    batch: list[Mapping[str, Any]] = []
    with engine.begin() as conn:
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                conn.execute(table.insert(), batch)
                total += len(batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
            total += len(batch)
    return total
