"""Simulated users for a running `growthcurve serve`: each user asks a few labelled questions and reacts the
way people do with the usual feedback UI: a thumbs-up when the answer was right, a thumbs-down and the right
label when it was wrong, and sometimes nothing at all.

Bounded by design: a fixed number of users and requests, a deadline, and only loopback addresses.

    python examples/loop/simulated_users.py --url http://127.0.0.1:8000 --data ../shared/data/banking77/test.csv \\
        --users 250 --per-user 2 --silent 0.2 --seed 0 [--exclude train_texts.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx


def read_rows(path: Path, text_column: str, label_column: str) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [(r[text_column], r[label_column]) for r in csv.DictReader(fh)]


def run(
    url: str,
    rows: list[tuple[str, str]],
    users: int,
    per_user: int,
    silent: float,
    seed: int,
    deadline_s: float,
    api_key: str | None = None,
) -> dict[str, object]:
    """Send ``users`` x ``per_user`` predictions with feedback; return counts per variant."""
    host = urlparse(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing {url}: the simulated users only talk to a server on this machine")
    rng = random.Random(seed)
    headers = {"X-API-Key": api_key} if api_key else {}
    stats: dict[str, dict[str, int]] = {}
    t_end = time.monotonic() + deadline_s
    with httpx.Client(base_url=url, timeout=30, headers=headers) as c:
        for u in range(users):
            for _ in range(per_user):
                if time.monotonic() > t_end:
                    return {"stopped": "deadline", "variants": stats}
                text, truth = rows[rng.randrange(len(rows))]
                p = c.post("/predict", json={"text": text, "unit_id": f"user-{seed}-{u}"})
                p.raise_for_status()
                body = p.json()
                variant = body.get("variant") or body.get("model_name") or "served"
                s = stats.setdefault(variant, {"requests": 0, "right": 0, "feedback": 0})
                s["requests"] += 1
                served = body["predictions"][0]["label"]
                s["right"] += int(served == truth)
                if rng.random() < silent:
                    continue
                fb = {"thumbs": True} if served == truth else {"thumbs": False, "label": truth}
                r = c.post("/feedback", json={"request_id": body["request_id"], **fb})
                r.raise_for_status()
                s["feedback"] += 1
    return {"stopped": "done", "variants": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--data", type=Path, required=True, help="labelled CSV the users ask from")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--exclude", type=Path, help="a CSV whose texts the users never ask (e.g. a test split)")
    ap.add_argument("--users", type=int, default=250)
    ap.add_argument("--per-user", type=int, default=2)
    ap.add_argument("--silent", type=float, default=0.2, help="share of answers that get no feedback")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deadline", type=float, default=600.0, help="seconds before the client stops")
    args = ap.parse_args()
    rows = read_rows(args.data, args.text_column, args.label_column)
    if args.exclude:
        skip = {t for t, _ in read_rows(args.exclude, args.text_column, args.label_column)}
        rows = [r for r in rows if r[0] not in skip]
    if not rows:
        sys.exit("no rows to ask")
    out = run(args.url, rows, args.users, args.per_user, args.silent, args.seed, args.deadline)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
