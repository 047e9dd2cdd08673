"""`ab analyze` and `plan allocate` each leave one finished row with their summary in the run registry."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from growthcurve.cli import main
from growthcurve.store.registry import list_runs


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_ab_analyze_is_recorded(tmp_path: Path) -> None:
    cfg = resources.files("growthcurve") / "examples" / "ab" / "ab.yaml"
    assert _run(["ab", "analyze", str(cfg), "--out", str(tmp_path), "--no-report"]) == 0
    (rec,) = list_runs(kind="ab-analyze")
    data = json.loads((tmp_path / "result.json").read_text())
    conv = data["metrics"][0]["comparisons"][0]
    assert rec.status == "finished" and rec.artefact == str(tmp_path.resolve())
    row = rec.metrics["conversion"]["treatment"]
    expected = conv["frequentist"]["rel_p_value" if row["scale"] == "relative" else "p_value"]
    assert row["p"] == pytest.approx(expected) and row["p_adjusted"] == pytest.approx(conv["p_adjusted"])
    assert rec.metrics["srm_alarm"] == data["srm"]["alarm"]
    assert len(rec.data_fingerprint) == 1 and next(iter(rec.data_fingerprint)).endswith("events.csv")


def test_plan_allocate_is_recorded(tmp_path: Path) -> None:
    ex = resources.files("growthcurve") / "examples" / "planning" / "portfolio.yaml"
    out = tmp_path / "plan"
    assert _run(["plan", "allocate", str(ex), "--out", str(out), "--no-what-if"]) == 0
    (rec,) = list_runs(kind="plan-allocate")
    plan = json.loads((out / "plan.json").read_text())
    assert rec.metrics["expected_gain"] == pytest.approx(plan["expected_gain"])
    assert rec.metrics["projects"] == plan["chosen"] and rec.name == "portfolio"
    assert rec.config["objective"] == "expected"
