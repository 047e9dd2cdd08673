"""SQL storage: SQLite by default, PostgreSQL/DuckDB by SQLAlchemy URL; schema managed by Alembic.

One workspace store serves every command: :func:`default_url` resolves it once (``--store``, env
``GROWTHCURVE_STORE``, the older ``GROWTHCURVE_DB_URL``, else ``growthcurve.db`` in the working folder) and
always as an absolute URL, so a file that refers to it works from any folder. :func:`open_existing` (readers)
and :func:`init_db` (writers) are the two ways in; both turn what SQLAlchemy raises for a missing, corrupt or
unreachable store into one line that names it.
"""

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
    "STORE_ENV",
    "masked_url",
    "decisions",
    "default_url",
    "open_current",
    "open_existing",
    "store_url",
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


STORE_ENV = "GROWTHCURVE_STORE"
_LEGACY_ENV = "GROWTHCURVE_DB_URL"  # the store's earlier name; still read, so existing set-ups keep working


def default_url() -> str:
    """The workspace store as an absolute URL: env ``GROWTHCURVE_STORE`` (or ``GROWTHCURVE_DB_URL``), else
    ``growthcurve.db`` (SQLite) in the working folder."""
    return store_url(None)


def store_url(url: str | None) -> str:
    """``url`` (None: the workspace store) with a relative SQLite/DuckDB file made absolute against the working
    folder, so the same URL means the same file from any folder and in any file that stores it."""
    raw = url or os.environ.get(STORE_ENV) or os.environ.get(_LEGACY_ENV) or "sqlite:///growthcurve.db"
    try:
        parsed = sa.engine.make_url(raw)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"store URL '{raw}' is not a database URL: {exc}") from None
    db = parsed.database
    if parsed.get_backend_name() not in ("sqlite", "duckdb") or not db or db == ":memory:" or db.startswith("file:"):
        return raw
    if Path(db).is_absolute():
        return raw
    return parsed.set(database=str(Path(db).expanduser().resolve())).render_as_string(hide_password=False)


def _file_of(url: str) -> Path | None:
    """The database file of a file-backed SQLite/DuckDB URL (None for servers and in-memory databases)."""
    parsed = sa.engine.make_url(url)
    db = parsed.database
    if parsed.get_backend_name() not in ("sqlite", "duckdb") or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def store_error(url: str, exc: BaseException) -> DataError:
    """One line for what SQLAlchemy (or the driver) raised while opening the store at ``url``."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]
    where = masked_url(url)
    if isinstance(exc, sa.exc.DatabaseError) and "not a database" in text:
        return DataError(f"cannot open database '{where}': not a database file ({text}); point --store at the store")
    return DataError(f"cannot open database '{where}': {text}")


def open_existing(url: str | None = None, option: str = "--store") -> sa.Engine:
    """An engine on a store that must already exist (commands that only read): a missing SQLite/DuckDB file
    is an error naming it and is never created; a corrupt or unreachable one is one DataError line."""
    from growthcurve.dbcheck import require_existing_database

    u = store_url(url)
    require_existing_database(u, option)
    engine = get_engine(u)
    try:
        with engine.connect() as conn:
            sa.inspect(conn).get_table_names()  # touches the file: a corrupt one fails here, not mid-command
    except (sa.exc.DBAPIError, sa.exc.SQLAlchemyError) as exc:
        engine.dispose()
        raise store_error(u, exc) from None
    return engine


def open_current(url: str | None = None, option: str = "--store") -> sa.Engine:
    """An engine on a store that must already exist, upgraded to the newest schema first (readers of tables a
    newer growthcurve added); a missing file is an error naming it and is never created."""
    open_existing(url, option).dispose()
    return init_db(url)


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
    url = store_url(url)
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
    from alembic.util.exc import CommandError

    u = store_url(url)
    file = _file_of(u)
    if file is not None and file.is_dir():
        raise DataError(f"cannot open database '{masked_url(u)}': '{file}' is a folder, not a database file")
    if file is not None and not file.parent.is_dir():
        raise DataError(f"cannot open database '{masked_url(u)}': the folder '{file.parent}' does not exist")
    engine = get_engine(u)
    cfg = Config()
    cfg.set_main_option("script_location", str(_ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except (sa.exc.DBAPIError, sa.exc.SQLAlchemyError) as exc:
        engine.dispose()
        raise store_error(u, exc) from None
    except CommandError as exc:  # e.g. a revision this version does not know: a newer growthcurve wrote it
        engine.dispose()
        raise ConfigError(f"the store '{masked_url(u)}' cannot be migrated: {exc}") from None
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
