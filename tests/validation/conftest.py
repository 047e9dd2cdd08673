"""Shared fixtures of the validation tests: engines for SQLite, DuckDB and (when reachable) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa


def _pg_admin_url() -> str | None:
    return os.environ.get("GROWTHCURVE_TEST_PG_URL")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database, created for the session and dropped afterwards."""
    admin = _pg_admin_url()
    if not admin:
        pytest.skip("no PostgreSQL: set GROWTHCURVE_TEST_PG_URL (source .ci/postgres.sh starts one)")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    name = f"gc_test_{uuid.uuid4().hex[:10]}"
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL at GROWTHCURVE_TEST_PG_URL is not reachable: {str(exc.orig).strip()[:120]}")
    url = sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "duckdb", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """One URL per backend; PostgreSQL skips with a reason when no server is reachable."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    if request.param == "duckdb":
        pytest.importorskip("duckdb_engine", reason="DuckDB needs the warehouse extra")
        return f"duckdb:///{tmp_path / 'events.duckdb'}"
    return request.getfixturevalue("pg_url")
