"""Bad input for `growthcurve review ...`, one row per case: exit 2, one `error:` line, the store (and every
other file) unchanged. The rows share a store with served predictions and a built queue ``q``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case

STORE = "sqlite:///store.db"
LABELS = "balance,refund,transfer"


def _store(root: Path) -> None:
    """store.db with six served predictions and the queue ``q`` built from them."""
    import datetime as dt

    from growthcurve.review.queue import build_queue
    from growthcurve.store import init_db, insert_rows
    from growthcurve.store.schema import predictions

    url = f"sqlite:///{root / 'store.db'}"
    engine = init_db(url)
    insert_rows(
        engine,
        predictions,
        [
            {
                "request_id": f"r{i}",
                "ts": dt.datetime(2026, 12, 1),
                "model_name": "m",
                "model_version": "v1",
                "input_text": f"text {i}",
                "label": "refund",
                "score": 0.6,
                "output": {},
            }
            for i in range(6)
        ],
    )
    engine.dispose()
    build_queue(url, "q", labels=LABELS.split(","))


def _jsonl(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


CASES = [
    Case("review-build-exists", ["review", "build", "q", "--store", STORE, "--labels", LABELS], setup=_store,
         fragment="queue 'q' already exists"),
    Case("review-build-no-labels", ["review", "build", "q2", "--store", STORE], setup=_store,
         fragment="give the served run folder (--run) or the label set"),
    Case("review-build-bad-mix", ["review", "build", "q2", "--store", STORE, "--labels", LABELS, "--mix",
         "uncertainty=x"], setup=_store, fragment="--mix part 'uncertainty=x' is not STRATEGY=SHARE"),
    Case("review-build-unknown-strategy", ["review", "build", "q2", "--store", STORE, "--labels", LABELS, "--mix",
         "loudest=1"], setup=_store, fragment="unknown strategy loudest"),
    Case("review-build-bad-since", ["review", "build", "q2", "--store", STORE, "--labels", LABELS, "--since", "May"],
         setup=_store, fragment="--since 'May' is not an ISO date"),
    Case("review-build-empty-window", ["review", "build", "q2", "--store", STORE, "--labels", LABELS, "--since",
         "2030-01-01"], setup=_store, fragment="nothing to review"),
    Case("review-build-missing-store", ["review", "build", "q", "--store", "sqlite:///none.db", "--labels", LABELS],
         fragment="does not exist", absent=["internal"]),
    Case("review-build-bad-name", ["review", "build", "a b", "--store", STORE, "--labels", LABELS], setup=_store,
         fragment="queue name 'a b' must be"),
    Case("review-estimate-unknown-queue", ["review", "estimate", "nope", "--store", STORE], setup=_store,
         fragment="no review queue 'nope' in the store (queues: q)"),
    Case("review-estimate-unknown-version", ["review", "estimate", "q", "--store", STORE, "--version", "v9"],
         setup=_store, fragment="holds no request of model version v9"),
    Case("review-status-missing-store", ["review", "status", "q", "--store", "sqlite:///none.db"],
         fragment="store 'sqlite:///none.db' does not exist"),
    Case("review-import-unknown-label", ["review", "import", "q", "in.jsonl", "--store", STORE], setup=_store,
         files={"in.jsonl": _jsonl({"text": "text 1", "label": "refund"}, {"text": "text 2", "label": "crypto"})},
         fragment="in.jsonl:2: label 'crypto' is not in the queue's label set"),
    Case("review-import-malformed", ["review", "import", "q", "in.jsonl", "--store", STORE], setup=_store,
         files={"in.jsonl": _jsonl("{not json", {"label": "refund"})},
         fragment=["in.jsonl:1: not JSON", "in.jsonl:2: no 'text'"]),
    Case("review-import-label-studio-two-choices", ["review", "import", "q", "ls.json", "--store", STORE],
         setup=_store, files={"ls.json": json.dumps([{"data": {"text": "t"}, "annotations": [{"result": [
             {"type": "choices", "value": {"choices": ["refund", "balance"]}}]}]}])},
         fragment="ls.json:task 1: an annotation needs exactly one choice"),
    Case("review-import-missing-file", ["review", "import", "q", "nope.jsonl", "--store", STORE], setup=_store,
         fragment="import file 'nope.jsonl' does not exist"),
    Case("review-export-bad-format", ["review", "export", "q", "--out", "x.csv", "--format", "csv", "--store", STORE],
         setup=_store, fragment="--format must be one of jsonl, label-studio, argilla"),
    Case("review-adjudicate-unknown-item", ["review", "adjudicate", "q", "999", "refund", "--store", STORE],
         setup=_store, fragment="queue 'q' has no item 999"),
    Case("review-adjudicate-unknown-label", ["review", "adjudicate", "q", "1", "crypto", "--store", STORE],
         setup=_store, fragment="label 'crypto' is not in the queue's label set"),
    Case("review-adjudicate-label-and-reject", ["review", "adjudicate", "q", "1", "refund", "--reject", "--store",
         STORE], setup=_store, fragment="give either the final LABEL or --reject"),
    Case("review-token-unknown-queue", ["review", "token", "ann", "--queue", "nope", "--store", STORE],
         setup=_store, fragment="no review queue 'nope'"),
    Case("review-token-bad-hours", ["review", "token", "ann", "--hours", "0", "--store", STORE], setup=_store,
         fragment="--hours"),
    Case("review-add-no-text-column", ["review", "add", "q", "in.csv", "--store", STORE], setup=_store,
         files={"in.csv": "question\nhello\n"}, fragment="text"),
]  # fmt: skip


@cases_param(CASES)
def test_review_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
