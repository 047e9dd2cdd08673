"""The report's review block: each review queue's estimate of the served version's accuracy on real traffic (the
random stream's Wilson interval and the importance-weighted one) next to that run's offline test accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa


@dataclass
class ReviewSection:
    """One row per review queue with decided labels; ``empty`` says why there is none."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    empty: str | None = None


EMPTY_REVIEW = "No review queue has decided labels yet (growthcurve review build / serve)."


def review_section(url: str) -> ReviewSection:
    """Estimate every queue's served version in the store at ``url`` (queues without decided labels are left out)."""
    from growthcurve.report.sections import store_exists
    from growthcurve.review.analysis import estimate, offline_accuracy
    from growthcurve.review.queue import ReviewError, snapshot
    from growthcurve.store import get_engine
    from growthcurve.store.schema import review_queues

    if not store_exists(url):
        return ReviewSection(empty=EMPTY_REVIEW)
    engine = get_engine(url)
    rows = []
    try:
        if "review_queues" not in set(sa.inspect(engine).get_table_names()):
            return ReviewSection(empty=EMPTY_REVIEW)
        with engine.connect() as conn:
            names = [n for (n,) in conn.execute(sa.select(review_queues.c.name).order_by(review_queues.c.created))]
        for name in names:
            snap = snapshot(engine, name)
            try:
                est = estimate(snap)
            except ReviewError:  # only uploaded items: nothing served to estimate
                continue
            if est.reviewed == 0:
                continue
            same = est.version == snap.queue.model_version
            rows.append(
                {
                    "queue": name,
                    "version": est.version,
                    "requests": est.requests,
                    "reviewed": est.reviewed,
                    "random": est.random,
                    "weighted": est.weighted,
                    "offline": offline_accuracy(snap.queue.run) if same else None,
                }
            )
    finally:
        engine.dispose()
    return ReviewSection(rows=rows, empty=None if rows else EMPTY_REVIEW)


__all__ = ["EMPTY_REVIEW", "ReviewSection", "review_section"]
