"""Store test fixtures: one registry URL per backend; PostgreSQL skips with a reason when no server is set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import throwaway_pg_database


@pytest.fixture(scope="session")
def registry_pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for the registry tests, dropped afterwards."""
    yield from throwaway_pg_database("gc_reg")


@pytest.fixture(params=["sqlite", "duckdb", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One registry URL per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reg.db'}"
    if request.param == "duckdb":
        pytest.importorskip("duckdb_engine", reason="DuckDB needs the warehouse extra")
        return f"duckdb:///{tmp_path / 'reg.duckdb'}"
    return request.getfixturevalue("registry_pg_url")
