"""Store test fixtures: one registry URL per backend; PostgreSQL skips with a reason when no server is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa


@pytest.fixture(scope="session")
def registry_pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database on GROWTHCURVE_TEST_PG_URL (as in tests/validation), dropped afterwards."""
    admin = os.environ.get("GROWTHCURVE_TEST_PG_URL")
    if not admin:
        pytest.skip("no PostgreSQL: set GROWTHCURVE_TEST_PG_URL (source .ci/postgres.sh starts one)")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    name = f"gc_reg_{uuid.uuid4().hex[:10]}"
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
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One registry URL per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reg.db'}"
    if request.param == "duckdb":
        pytest.importorskip("duckdb_engine", reason="DuckDB needs the warehouse extra")
        return f"duckdb:///{tmp_path / 'reg.duckdb'}"
    return request.getfixturevalue("registry_pg_url")
