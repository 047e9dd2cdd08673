"""Bad input for `growthcurve retrain`, one row per case: exit 2, one actionable `error:` line, nothing written.

The rows need no trained model: a run folder is faked with the files `retrain` reads before it trains (run.json,
labels.json, config.yaml, a weight file), so each row costs milliseconds. The no-usable-feedback case with a real
served model and the real service is in tests/growth/test_retrain.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case

META = {"task": "text-classification", "method": "full", "model_type": "transformer", "multi_label": False}


def _run(**meta: object) -> dict[str, str | bytes]:
    return {
        "served/model/run.json": json.dumps({**META, **meta}),
        "served/model/labels.json": json.dumps(["neg", "pos"]),
        "served/model/model.safetensors": b"weights",
        "served/config.yaml": "task: text-classification\n",
    }


def _argv(*extra: str, run: str = "served", store: str = "sqlite:///store.db") -> list[str]:
    return ["retrain", run, "--feedback", store, "--out", "new", *extra]


CASES = [
    Case("retrain-no-run", _argv(run="nope"), fragment="run folder 'nope' does not exist"),
    Case(
        "retrain-holdout-out-of-range", _argv("--holdout", "1.5"), files=_run(), fragment="--holdout must be in [0, 1)"
    ),
    Case(
        "retrain-rehearsal-out-of-range",
        _argv("--rehearsal", "2"),
        files=_run(),
        fragment="--rehearsal must be a fraction",
    ),
    Case(
        "retrain-rehearsal-flags-contradict",
        _argv("--no-rehearsal", "--rehearsal-rows", "10"),
        files=_run(),
        fragment="--no-rehearsal and --rehearsal-rows contradict",
    ),
    Case("retrain-unknown-method", _argv("--method", "prefix"), files=_run(), fragment="--method must be full or lora"),
    Case("retrain-store-missing", _argv(), files=_run(), fragment="feedback store 'sqlite:///store.db' does not exist"),
    Case(
        "retrain-store-not-a-store",
        _argv(store="sqlite:///empty.db"),
        files={**_run(), "empty.db": b""},
        fragment="cannot read feedback from 'sqlite:///empty.db'",
    ),
    Case("retrain-baseline-run", _argv(), files=_run(model_type="textcnn"), fragment="is a textcnn run"),
    Case("retrain-lora-run", _argv(), files=_run(method="lora"), fragment="growthcurve merge served"),
    Case("retrain-ner-run", _argv(), files=_run(task="token-classification"), fragment="single-label text classifiers"),
]


@cases_param(CASES)
def test_retrain_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
