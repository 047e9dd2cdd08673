"""The queue: built from served traffic with near-duplicates collapsed, streams in priority order, answers,
undo, stale pages, unknown labels, agreement and the estimate."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from growthcurve.review import queue as rq
from growthcurve.review.analysis import agreement, estimate
from growthcurve.store import get_engine
from tests.review.conftest import LABELS, Traffic


def _table_counts(url: str) -> dict[str, int]:
    engine = get_engine(url)
    with engine.connect() as conn:
        out = {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("review_queues", "review_items", "review_slots", "review_answers")
        }
    engine.dispose()
    return out


def test_build_collapses_duplicates_and_flags_strategies(traffic: Traffic) -> None:
    cfg = rq.QueueConfig(double_share=0.0)
    s = rq.build_queue(traffic.url, "w1", labels=LABELS, config=cfg)
    # 60 texts; v2 copies and the shouted repeats collapse into their item
    assert s.items == 60
    assert s.requests == 60 + 20 + 6  # v1, the v2 copies, the shouted repeats (handoff turns link to requests)
    engine = get_engine(traffic.url)
    snap = rq.snapshot(engine, "w1")
    engine.dispose()
    by_text = {it.text: it for it in snap.items.values()}
    shouted = by_text["question 0 about balance"]
    assert shouted.versions["v1"]["n"] == 1 and shouted.versions["v2"]["n"] == 2  # its repeat was a v2 copy
    assert shouted.handoff and shouted.source == "handoff"
    assert shouted.disagree  # v1 served the wrong label, v2 the right one
    assert set(snap.streams) == {"uncertainty", "random", "disagreement", "handoff"}
    for slots in snap.streams.values():
        keys = [k for _, k in slots]
        assert keys == sorted(keys)
    # the handoff stream puts handoffs first far more often than their share of the pool
    first = [snap.items[i].handoff for i, _ in snap.streams["handoff"][:9]]
    assert sum(first) >= 6


def test_existing_queue_and_empty_pool_are_refused(traffic: Traffic, tmp_path) -> None:
    from growthcurve.errors import ConfigError, DataError

    rq.build_queue(traffic.url, "w1", labels=LABELS)
    before = _table_counts(traffic.url)
    with pytest.raises(ConfigError, match="already exists"):
        rq.build_queue(traffic.url, "w1", labels=LABELS)
    with pytest.raises(DataError, match="nothing to review"):
        rq.build_queue(f"sqlite:///{tmp_path / 'empty.db'}", "w1", labels=LABELS)
    assert _table_counts(traffic.url) == before


def test_answers_undo_and_bad_input_leave_the_queue_unchanged(traffic: Traffic) -> None:
    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=0.0))
    engine = get_engine(traffic.url)
    snap = rq.snapshot(engine, "w1")
    it, _ = rq.next_item(snap, "ann")
    before = _table_counts(traffic.url)
    with pytest.raises(rq.ReviewError) as e:
        rq.record_answer(engine, "w1", it.id, "ann", "label", "not_a_label")
    assert e.value.status == 422 and "not in the queue's label set" in str(e.value)
    with pytest.raises(rq.ReviewError) as e:
        rq.record_answer(engine, "w1", 10**9, "ann", "label", "refund")
    assert e.value.status == 404
    assert _table_counts(traffic.url) == before
    rq.record_answer(engine, "w1", it.id, "ann", "label", "refund")
    # someone else's page still shows the item: their answer is refused as stale
    with pytest.raises(rq.ReviewError) as e:
        rq.record_answer(engine, "w1", it.id, "bob", "label", "balance")
    assert e.value.status == 409 and e.value.code == "stale_item"
    assert rq.undo_last(engine, "w1", "ann") == it.id
    snap = rq.snapshot(engine, "w1")
    assert not snap.items[it.id].done
    with engine.connect() as conn:
        undone = conn.execute(sa.text("select count(*) from review_answers where undone_at is not null")).scalar_one()
    assert undone == 1  # undo keeps the answer, stamped
    engine.dispose()


def test_new_label_only_when_allowed(traffic: Traffic) -> None:
    rq.build_queue(traffic.url, "strict", labels=LABELS)
    rq.build_queue(traffic.url, "open", labels=LABELS, config=rq.QueueConfig(allow_new_labels=True))
    engine = get_engine(traffic.url)
    for name in ("strict", "open"):
        it, _ = rq.next_item(rq.snapshot(engine, name), "ann")
        if name == "strict":
            with pytest.raises(rq.ReviewError, match="not in the queue's label set"):
                rq.record_answer(engine, name, it.id, "ann", "label", "crypto", new_label=True)
        else:
            out = rq.record_answer(engine, name, it.id, "ann", "label", "crypto", new_label=True)
            assert out["new_label"] is True
    engine.dispose()


def test_agreement_matches_a_hand_computed_kappa(traffic: Traffic) -> None:
    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=1.0))
    engine = get_engine(traffic.url)
    snap = rq.snapshot(engine, "w1")
    # ann and bob answer 8 items; they disagree on two
    pairs = [("refund", "refund"), ("balance", "balance"), ("refund", "transfer"), ("card_lost", "card_lost"),
             ("transfer", "transfer"), ("balance", "refund"), ("refund", "refund"), ("balance", "balance")]  # fmt: skip
    ids = [iid for iid, _ in snap.streams["uncertainty"][:8]]
    for iid, (a, b) in zip(ids, pairs, strict=True):
        rq.record_answer(engine, "w1", iid, "ann", "label", a)
        rq.record_answer(engine, "w1", iid, "bob", "label", b)
    ag = agreement(rq.snapshot(engine, "w1"))
    # Cohen's kappa by hand: po = 6/8; pe = sum over labels of p_ann * p_bob
    ann = [a for a, _ in pairs]
    bob = [b for _, b in pairs]
    pe = sum((ann.count(c) / 8) * (bob.count(c) / 8) for c in set(ann) | set(bob))
    assert ag.pairs == 8 and ag.observed == 0.75
    assert ag.cohen == pytest.approx((0.75 - pe) / (1 - pe), abs=1e-4)
    assert len(ag.disagreements) == 2
    # adjudication settles a disagreement
    rq.adjudicate(engine, "w1", ag.disagreements[0]["item_id"], "lead", "refund")
    ag2 = agreement(rq.snapshot(engine, "w1"))
    assert ag2.disagreements[0]["adjudicated"] == "refund"
    engine.dispose()


def test_estimate_reviews_everything_and_recovers_the_true_accuracy(traffic: Traffic) -> None:
    """With every item reviewed the weighted estimate is the exact request-level accuracy of v1."""
    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=0.0))
    engine = get_engine(traffic.url)
    snap = rq.snapshot(engine, "w1")
    for it in snap.items.values():
        rq.record_answer(engine, "w1", it.id, "ann", "label", traffic.truth[it.text])
    est = estimate(rq.snapshot(engine, "w1"), "v1")
    engine.dispose()
    # v1 requests: each text once, and the shouted repeats of i = 10, 20, 40, 50 (0 and 30 repeat a v2
    # copy); v1 served right when i % 3 != 0
    right = sum(1 for i in range(60) if i % 3) + 4
    total = 60 + 4
    assert est.requests == total
    assert est.weighted is not None and est.weighted.estimate == pytest.approx(right / total)
    assert est.weighted.low == est.weighted.high  # a census: no uncertainty left
    assert est.random is not None and est.random.n == est.items


def test_estimate_partial_review_is_close(traffic: Traffic) -> None:
    """Review only the first 30 items the page hands out: both intervals hold the truth (seeded)."""
    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=0.0, seed=3))
    engine = get_engine(traffic.url)
    streams = []
    for _ in range(30):
        snap = rq.snapshot(engine, "w1")
        it, st = rq.next_item(snap, "ann")
        streams.append(st)
        rq.record_answer(engine, "w1", it.id, "ann", "label", traffic.truth[it.text], stream=st)
    est = estimate(rq.snapshot(engine, "w1"), "v1")
    engine.dispose()
    truth = (sum(1 for i in range(60) if i % 3) + 4) / 64
    assert est.random is not None and est.random.covers(truth)
    assert est.weighted is not None and est.weighted.covers(truth)
    assert 0 < est.reviewed < est.items
    # the page keeps the mix: 0.4 / 0.3 / 0.15 / 0.15 of 30 answers
    for name, want in {"uncertainty": 12, "random": 9, "disagreement": 4.5, "handoff": 4.5}.items():
        assert abs(streams.count(name) - want) <= 1, (name, streams.count(name))


def test_reviewed_rows_for_training(traffic: Traffic) -> None:
    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=0.0))
    engine = get_engine(traffic.url)
    snap = rq.snapshot(engine, "w1")
    ids = [iid for iid, _ in snap.streams["random"][:4]]
    rq.record_answer(engine, "w1", ids[0], "ann", "label", "refund")
    rq.record_answer(engine, "w1", ids[1], "ann", "reject")
    rq.record_answer(engine, "w1", ids[2], "ann", "label", "balance")
    engine.dispose()
    rows = rq.reviewed_rows(traffic.url, "w1", LABELS, weight=3)
    assert sorted(rows.labels) == ["balance", "refund"] and rows.weight == 3
    assert rows.skipped["rejected (not in scope)"] == 1


def test_uncertainty_scores() -> None:
    from growthcurve.review.sampling import normalise, uncertainty

    u = uncertainty([[0.9, 0.05], [0.5, 0.45], [0.6], []], "margin")
    assert u[1] > u[0] and u[2] == pytest.approx(1 - (0.6 - 0.4)) and u[3] == 1.0
    e = uncertainty([[0.25, 0.25, 0.25, 0.25], [1.0]], "entropy")
    assert e[0] == pytest.approx(1.0) and e[1] == pytest.approx(0.0)
    assert normalise("  Where's my CARD?? ") == normalise("where s my card")
    assert np.all((u >= 0) & (u <= 1))


def test_progress_counts_and_rate(traffic: Traffic) -> None:
    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=0.0))
    engine = get_engine(traffic.url)
    assert rq.progress(engine, rq.snapshot(engine, "w1"), "ann")["per_minute"] == 0.0  # no answer: no rate
    for _ in range(3):
        it, st = rq.next_item(rq.snapshot(engine, "w1"), "ann")
        rq.record_answer(engine, "w1", it.id, "ann", "label", traffic.truth[it.text], stream=st)
    it, _ = rq.next_item(rq.snapshot(engine, "w1"), "ann")
    rq.record_answer(engine, "w1", it.id, "ann", "skip")  # a skip is not progress
    p = rq.progress(engine, rq.snapshot(engine, "w1"), "ann")
    engine.dispose()
    assert (p["done"], p["listed"], p["mine"]) == (3, 60, 3) and p["percent"] == 5.0
    assert p["per_minute"] > 0 and p["eta_minutes"] is not None


def test_double_item_takes_a_second_reviewer_then_is_done(traffic: Traffic) -> None:
    rq.build_queue(traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(double_share=1.0))
    engine = get_engine(traffic.url)
    it, _ = rq.next_item(rq.snapshot(engine, "w1"), "ann")
    rq.record_answer(engine, "w1", it.id, "ann", "label", "refund")
    assert not rq.snapshot(engine, "w1").items[it.id].done
    # bob's page showed the item before ann answered: his answer is the wanted second opinion, not stale
    rq.record_answer(engine, "w1", it.id, "bob", "label", "refund")
    snap = rq.snapshot(engine, "w1")
    assert snap.items[it.id].outcome() == ("label", "refund")
    with pytest.raises(rq.ReviewError) as e:
        rq.record_answer(engine, "w1", it.id, "cy", "label", "balance")
    assert e.value.code == "stale_item"
    engine.dispose()
