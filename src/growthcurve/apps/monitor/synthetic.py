"""Generated financial headlines (topic + sentiment) and timestamped JSONL streams with a known surge.

The default `monitor fit` trains on these when no data is given (the shared real sets are not shipped),
and the tests and the benchmark replay streams whose injected surge has a known topic, start and size.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

TOPICS = {
    "earnings": ["earnings", "revenue", "profit", "quarter", "guidance"],
    "rates": ["rates", "inflation", "fed", "bonds", "yields"],
    "crypto": ["bitcoin", "crypto", "token", "ether", "blockchain"],
    "energy": ["oil", "gas", "opec", "crude", "pipeline"],
}
SENTIMENT = {
    "negative": ["plunge", "slump", "losses", "downgrade", "miss", "crash", "weak", "fall"],
    "positive": ["surge", "rally", "beat", "upgrade", "gains", "strong", "record", "soar"],
    "neutral": ["report", "update", "meeting", "schedule", "announce", "review", "statement", "filing"],
}
FILLER = ["the", "shares", "market", "after", "on", "as", "for", "investors", "today", "company", "says", "new"]
VOCAB = sorted({w for ws in TOPICS.values() for w in ws} | {w for ws in SENTIMENT.values() for w in ws} | set(FILLER))


def headline(rng: random.Random, topic: str, sentiment: str) -> str:
    """A short headline whose topic and sentiment words say what it is."""
    words = [rng.choice(TOPICS[topic]), rng.choice(SENTIMENT[sentiment]), *rng.sample(FILLER, rng.randint(2, 5))]
    rng.shuffle(words)
    return " ".join(words)


def labelled_rows(n: int, seed: int, shares: tuple[float, float, float] = (0.25, 0.3, 0.45)) -> list[dict[str, str]]:
    """``n`` rows ``{text, topic, sentiment}``; sentiment shares are (negative, positive, neutral)."""
    rng = random.Random(seed)
    topics = list(TOPICS)
    out = []
    for _ in range(n):
        topic = rng.choice(topics)
        sentiment = rng.choices(list(SENTIMENT), weights=shares)[0]
        out.append({"text": headline(rng, topic, sentiment), "topic": topic, "sentiment": sentiment})
    return out


def write_stream(
    path: Path,
    windows: int,
    per_window: int,
    neg_share: float = 0.2,
    surge_topic: str | None = None,
    surge_start: int = 0,
    surge_windows: int = 1,
    surge_share: float = 0.6,
    window_seconds: float = 3600.0,
    seed: int = 0,
    start: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    with_topic: bool = False,
) -> Path:
    """A JSONL stream: ``per_window`` headlines per window over all topics; in windows
    ``surge_start .. surge_start + surge_windows - 1`` the texts of ``surge_topic`` are negative with
    probability ``surge_share`` instead of ``neg_share``. Lines carry an ``id`` so tests can count them."""
    rng = random.Random(seed)
    topics = list(TOPICS)
    i = 0
    with path.open("w", encoding="utf-8") as fh:
        for w in range(windows):
            for j in range(per_window):
                topic = topics[j % len(topics)]
                surging = surge_topic == topic and surge_start <= w < surge_start + surge_windows
                p = surge_share if surging else neg_share
                sentiment = "negative" if rng.random() < p else rng.choice(["positive", "neutral"])
                ts = start + dt.timedelta(seconds=w * window_seconds + (j + 0.5) * window_seconds / per_window)
                rec = {
                    "id": i,
                    "timestamp": ts.isoformat().replace("+00:00", "Z"),
                    "text": headline(rng, topic, sentiment),
                }
                if with_topic:
                    rec["topic"] = topic
                fh.write(json.dumps(rec) + "\n")
                i += 1
    return path
