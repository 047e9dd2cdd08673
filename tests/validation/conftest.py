"""Shared fixtures of the validation tests: engines for SQLite, DuckDB and (when reachable) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import throwaway_pg_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database, created for the session and dropped afterwards."""
    yield from throwaway_pg_database("gc_test")


@pytest.fixture(params=["sqlite", "duckdb", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """One URL per backend; PostgreSQL skips with a reason when no server is reachable."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    if request.param == "duckdb":
        pytest.importorskip("duckdb_engine", reason="DuckDB needs the warehouse extra")
        return f"duckdb:///{tmp_path / 'events.duckdb'}"
    return request.getfixturevalue("pg_url")
