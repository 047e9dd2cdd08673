"""Bad values of train.compile: exit 2 with one line naming the key and the accepted values, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case
from tests.conftest import toy_rows

GOOD = "text,label\n" + "".join(f"{t},{y}\n" for t, y in toy_rows(40, 7))


def _finetune(value: str) -> list[str]:
    return ["finetune", "--set", "data.train=train.csv", "--set", f"train.compile={value}", "--set", "output_dir=run"]


CASES = [
    Case(
        "compile-unknown-mode",
        _finetune("full"),
        files={"train.csv": GOOD},
        fragment=["train.compile", "'off' or 'regions'", "got 'full'"],
        absent=["run"],
    ),
    Case(
        "compile-yaml-boolean",  # YAML reads "on" as true: not silently taken as "regions"
        _finetune("on"),
        files={"train.csv": GOOD},
        fragment=["train.compile", "'off' or 'regions'"],
        absent=["run"],
    ),
]


@cases_param(CASES)
def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
