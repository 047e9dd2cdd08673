"""Migration 0007 creates exactly the review tables of store/schema.py, on SQLite and PostgreSQL, downgrades
cleanly, and a queue works end to end on PostgreSQL (sequences, RETURNING, JSON)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from growthcurve.review import queue as rq
from growthcurve.store import init_db, insert_rows
from growthcurve.store.schema import metadata, predictions
from tests.conftest import throwaway_pg_database
from tests.review.conftest import LABELS, traffic_rows

REVIEW_TABLES = {"review_queues", "review_items", "review_slots", "review_answers", "review_reviewers"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 's.db'}"
    else:
        yield from throwaway_pg_database("gc_review")


def _review_diffs(engine: sa.Engine) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)

    def table_of(d: object) -> str:
        item = d[0] if isinstance(d, list) else d
        for x in item[1:]:
            name = getattr(x, "name", None) if not isinstance(x, str) else None
            tbl = getattr(x, "table", None)
            if tbl is not None:
                return str(tbl.name)
            if name:
                return str(name)
        return str(item[2]) if len(item) > 2 and isinstance(item[2], str) else ""

    return [d for d in diffs if table_of(d) in REVIEW_TABLES]


def test_migration_matches_the_schema_and_a_queue_works(url: str) -> None:
    engine = init_db(url)
    assert set(sa.inspect(engine).get_table_names()) >= REVIEW_TABLES
    assert _review_diffs(engine) == []
    preds, _, truth = traffic_rows(12)
    insert_rows(engine, predictions, preds)
    rq.build_queue(url, "q", labels=LABELS)
    snap = rq.snapshot(engine, "q")
    it, st = rq.next_item(snap, "ann")
    rq.record_answer(engine, "q", it.id, "ann", "label", truth[it.text], stream=st)
    assert rq.snapshot(engine, "q").items[it.id].outcome() == ("label", truth[it.text])
    engine.dispose()


def test_downgrade_removes_the_review_tables(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'd.db'}"
    init_db(url).dispose()
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(rq.__file__).parents[1] / "store" / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, "-1")
    engine = sa.create_engine(url)
    assert not REVIEW_TABLES & set(sa.inspect(engine).get_table_names())
    engine.dispose()
    init_db(url).dispose()  # and up again
