"""The report shows each review queue's estimate next to the served run's offline test accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from growthcurve.review import queue as rq
from growthcurve.review.analysis import estimate, offline_accuracy
from growthcurve.store import get_engine
from growthcurve.store.schema import review_queues
from tests.review.conftest import LABELS, Traffic


def test_report_block_matches_review_estimate(traffic: Traffic, tmp_path: Path) -> None:
    from growthcurve.report.build import ReportInputs, build_report, render_html
    from growthcurve.report.review import EMPTY_REVIEW, review_section

    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=0.0))
    assert review_section(traffic.url).empty == EMPTY_REVIEW  # nothing decided yet
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.8125}}))
    engine = get_engine(traffic.url)
    with engine.begin() as conn:  # the queue's served run and version, as `review build --run` records them
        conn.execute(review_queues.update().values(run=str(run), model_version="v1"))
    snap = rq.snapshot(engine, "w1")
    for iid, _ in snap.streams["random"][:25]:
        rq.record_answer(engine, "w1", iid, "ann", "label", traffic.truth[snap.items[iid].text], stream="random")
    est = estimate(rq.snapshot(engine, "w1"))
    engine.dispose()
    sec = review_section(traffic.url)
    assert sec.empty is None and len(sec.rows) == 1
    row = sec.rows[0]
    assert row["version"] == "v1" and row["offline"] == 0.8125 == offline_accuracy(str(run))
    assert row["random"] == est.random and row["weighted"] == est.weighted
    html = render_html(build_report(ReportInputs(db=traffic.url, ranking_samples=10)))
    assert "Accuracy on real traffic, from reviewers" in html
    assert f"{100 * est.random.estimate:.1f}%" in html and "81.2%" in html


def test_offline_accuracy_unknown() -> None:
    assert offline_accuracy(None) is None and offline_accuracy("/nonexistent") is None


def test_no_review_tables_no_block(tmp_path: Path) -> None:
    from growthcurve.report.review import review_section

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table x (a int)"))
    engine.dispose()
    assert review_section(url).rows == []
