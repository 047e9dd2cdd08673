"""Bad input to `growthcurve report`: one `error:` line naming the option to fix, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case

CRITERIA = "id_column: name\ncriteria:\n  - {name: coding, kind: benefit, weight: 1.0}\n"
GOALS_FLAT = (
    "objectives:\n  - id: o\n    key_results:\n      - {id: k, start_value: 1, target: 1, "
    "start_date: 2026-10-01, due_date: 2026-12-31}\n"
)

CASES = [
    Case("report-criteria-without-team", ["report", "--criteria", "c.yaml"], {"c.yaml": CRITERIA}, fragment="--team"),
    Case(
        "report-team-without-criteria",
        ["report", "--team", "t.csv"],
        {"t.csv": "name,coding\na,1\n"},
        fragment="--criteria",
    ),
    Case("report-missing-goals-file", ["report", "--goals", "nope.yaml"], fragment="--goals 'nope.yaml' is not a file"),
    Case("report-bad-as-of", ["report", "--as-of", "2026-13-01"], fragment="--as-of '2026-13-01' is not a date"),
    Case("report-out-is-folder", ["report", "--out", "sub"], {"sub/keep.txt": "x"}, fragment="is a folder"),
    Case("report-bad-port", ["report", "--serve", "--port", "0"], fragment="--port must be 1..65535"),
    Case("report-bad-db-url", ["report", "--db", "nosuchdialect://x"], fragment="cannot be used"),
    Case(
        "report-goal-target-equals-start",
        ["report", "--goals", "g.yaml"],
        {"g.yaml": GOALS_FLAT},
        fragment="nothing to move",
    ),
    Case(
        "report-team-missing-criterion-column",
        ["report", "--team", "t.csv", "--criteria", "c.yaml"],
        {"t.csv": "name,ml\na,1\nb,2\n", "c.yaml": CRITERIA},
        fragment="coding",
    ),
]


@cases_param(CASES)
def test_report_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
