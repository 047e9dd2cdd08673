"""Read-only database URLs: a command that only reads must not leave an empty SQLite file behind.

SQLite creates a missing database file on first connect; ``require_existing_database`` refuses such a
URL before any engine is made, so a typo in ``--url``/``--db`` is an error, not a new empty store.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from growthcurve.errors import ConfigError, DataError


def require_existing_database(url: str, option: str = "--url") -> None:
    """DataError when ``url`` is a file-backed SQLite/DuckDB database whose file does not exist."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"{option} '{url}' is not a database URL: {exc}") from None
    if parsed.get_backend_name() not in ("sqlite", "duckdb"):
        return
    db = parsed.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    p = Path(db)
    if p.is_dir():
        raise DataError(f"{option} '{url}': '{p}' is a folder, not a database file")
    if not p.exists():
        raise DataError(
            f"database file '{p}' does not exist ({option} {url}); check the path, or create and fill the "
            "store first (e.g. `growthcurve ab init-db`, `growthcurve plan goals add`)"
        )
