"""A store with served traffic for the review tests: predictions of two model versions (some texts asked twice,
some with different casing), assistant handoffs, and a queue built from them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

T0 = dt.datetime(2026, 12, 1, 9, 0, 0)
LABELS = ["balance", "card_lost", "refund", "transfer"]


@dataclass
class Traffic:
    url: str
    texts: list[str]
    truth: dict[str, str]  # text -> true label


def traffic_rows(n: int = 60) -> tuple[list[dict], list[dict], dict[str, str]]:
    """Predictions (v1 for all, v2 for every third) and handoff turns; served labels are right on 2 of 3."""
    preds, turns, truth = [], [], {}
    for i in range(n):
        true = LABELS[i % 4]
        text = f"question {i} about {true.replace('_', ' ')}"
        truth[text] = true
        served = true if i % 3 else LABELS[(i + 1) % 4]
        p1 = 0.4 + 0.5 * ((i * 7) % 10) / 10
        top = [{"label": served, "probability": p1}, {"label": LABELS[(i + 2) % 4], "probability": (1 - p1) / 2}]
        preds.append(
            {
                "request_id": f"r{i}",
                "ts": T0 + dt.timedelta(minutes=i),
                "model_name": "intents",
                "model_version": "v1",
                "input_text": text,
                "label": served,
                "score": p1,
                "output": {"label": served, "score": p1, "top_k": top},
            }
        )
        if i % 3 == 0:  # the same text served by v2, which gets it right
            preds.append({**preds[-1], "request_id": f"r{i}-v2", "model_version": "v2", "label": true, "output": {}})
        if i % 10 == 0:  # asked again, shouting: a near-duplicate
            preds.append({**preds[-1], "request_id": f"r{i}-again", "input_text": text.upper() + "!!"})
        if i % 7 == 0:
            turns.append(
                {
                    "session_id": f"s{i}",
                    "turn": 1,
                    "ts": T0 + dt.timedelta(minutes=i),
                    "channel": "http",
                    "model_name": "intents",
                    "model_version": "v1",
                    "request_id": f"r{i}",
                    "question": text,
                    "intent": served,
                    "confidence": p1,
                    "outcome": "handoff",
                    "reason": "low_confidence",
                }
            )
    return preds, turns, truth


@pytest.fixture()
def traffic(tmp_path: Path) -> Traffic:
    from growthcurve.store import init_db, insert_rows
    from growthcurve.store.schema import assist_turns, predictions

    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = init_db(url)
    preds, turns, truth = traffic_rows()
    insert_rows(engine, predictions, preds)
    insert_rows(engine, assist_turns, turns)
    engine.dispose()
    return Traffic(url, list(truth), truth)
