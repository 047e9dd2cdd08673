"""A deterministic synthetic catalogue with planted, text-driven preferences (tests and the default run).

Every item carries one topic word in its title and tags, and a few per topic are tagged "bestseller";
each user prefers one or two topics and mostly picks unseen items of those, bestsellers more often. So
the next item is predictable from the text of the user's history and of the items, and a model that
reads the text should beat global popularity by a wide margin.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

TOPICS = [
    "dragon",
    "space",
    "cooking",
    "detective",
    "romance",
    "pirate",
    "garden",
    "robot",
    "vampire",
    "money",
    "mountain",
    "ocean",
]
ADJECTIVES = ["silent", "golden", "last", "hidden", "broken", "secret", "little", "endless", "wild", "quiet"]
NOUNS = ["chronicles", "story", "diary", "tales", "journey", "guide", "letters", "year"]
STYLES = ["short", "long", "funny", "dark", "gentle", "epic"]
FILLERS = ["friends", "family", "a city", "the past", "home", "a summer", "winter", "a promise"]
GENERIC_TAGS = ["fiction", "classic", "new", "series", "award", "favourite"]
BESTSELLER = "bestseller"

# Every word the generator writes, so a test can build a tiny WordPiece vocabulary that covers them.
WORDS = sorted(
    {
        *TOPICS,
        *ADJECTIVES,
        *NOUNS,
        *STYLES,
        *GENERIC_TAGS,
        BESTSELLER,
        "the",
        "a",
        "book",
        "about",
        "and",
        *(w for f in FILLERS for w in f.split()),
    }
)


def generate(
    n_users: int = 300,
    items_per_topic: int = 10,
    bestsellers_per_topic: int = 3,
    min_history: int = 6,
    max_history: int = 12,
    p_topic: float = 0.95,
    p_single_topic: float = 0.7,
    bestseller_weight: float = 4.0,
    seed: int = 0,
) -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, list[str]]]:
    """Items, interactions (user_id, item_id, rating, timestamp) and each user's preferred topics."""
    rng = np.random.default_rng(seed)
    items: list[dict[str, str]] = []
    by_topic: dict[str, list[int]] = {}
    weight: list[float] = []
    for topic in TOPICS:
        for j in range(items_per_topic):
            idx = len(items)
            best = j < bestsellers_per_topic
            tags = [topic, str(rng.choice(GENERIC_TAGS))] + ([BESTSELLER] if best else [])
            items.append(
                {
                    "item_id": f"i{idx:04d}",
                    "title": f"the {rng.choice(ADJECTIVES)} {topic} {rng.choice(NOUNS)}",
                    "description": f"a {rng.choice(STYLES)} book about {topic} and {rng.choice(FILLERS)}",
                    "tags": ", ".join(tags),
                }
            )
            by_topic.setdefault(topic, []).append(idx)
            weight.append(bestseller_weight if best else 1.0)
    w = np.array(weight)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    interactions: list[dict[str, str]] = []
    prefs: dict[str, list[str]] = {}
    for u in range(n_users):
        user = f"u{u:04d}"
        n_topics = 1 if rng.random() < p_single_topic else 2
        topics = list(rng.choice(TOPICS, size=n_topics, replace=False))
        topic_p = np.array([1.0] if n_topics == 1 else [0.7, 0.3])
        prefs[user] = [str(t) for t in topics]
        seen: set[int] = set()
        t = start + dt.timedelta(hours=int(rng.integers(0, 24 * 30)))
        for _ in range(int(rng.integers(min_history, max_history + 1))):
            topic = topics[rng.choice(len(topics), p=topic_p)] if rng.random() < p_topic else rng.choice(TOPICS)
            pool = [i for i in by_topic[str(topic)] if i not in seen]
            if not pool:
                pool = [i for i in range(len(items)) if i not in seen]
            pw = w[pool] / w[pool].sum()
            item = int(pool[rng.choice(len(pool), p=pw)])
            seen.add(item)
            t += dt.timedelta(hours=int(rng.integers(1, 72)))
            interactions.append(
                {
                    "user_id": user,
                    "item_id": items[item]["item_id"],
                    "rating": str(int(rng.integers(3, 6))),
                    "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
    # Interleave users by time, as a real event log would be.
    interactions.sort(key=lambda r: (r["timestamp"], r["user_id"]))
    return items, interactions, prefs


def write_synthetic(folder: str | Path, seed: int = 0, n_users: int = 300) -> tuple[Path, Path]:
    """Write ``interactions.csv`` and ``items.csv`` of the planted set to ``folder``; return both paths."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    items, interactions, _ = generate(n_users=n_users, seed=seed)
    paths = []
    for name, rows in (("interactions.csv", interactions), ("items.csv", items)):
        path = d / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        paths.append(path)
    return paths[0], paths[1]
