"""Bad input to `growthcurve runs` and to the tracker/registry config keys: one `error:` line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case

CASES = [
    Case("runs-show-empty-store", ["runs", "show", "r-nope"], fragment="nothing is registered"),
    Case("runs-list-bad-kind", ["runs", "list", "--kind", "train"], fragment="--kind must be one of"),
    Case("runs-list-bad-status", ["runs", "list", "--status", "done"], fragment="--status must be one of"),
    Case("runs-list-zero-limit", ["runs", "list", "--limit", "0"], fragment="--limit"),
    Case(
        "finetune-unknown-tracker",
        ["finetune", "--set", "train.report_to=[neptune]"],
        fragment=("train.report_to", "'tensorboard', 'mlflow' or 'wandb'"),
    ),
    Case(
        "finetune-tracker-twice",
        ["finetune", "--set", "train.report_to=[tensorboard,tensorboard]"],
        fragment="names tensorboard more than once",
    ),
    Case("finetune-registry-not-bool", ["finetune", "--set", "registry=maybe"], fragment="registry"),
]


@cases_param(CASES)
def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)


def test_unknown_id_names_close_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from growthcurve.store.registry import start_run

    rid = start_run("finetune", name="base")
    typo = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    show = Case("runs-show-typo", ["runs", "show", typo], fragment=f"did you mean {rid}")
    _, err = run_case(show, tmp_path, capsys)
    assert err.count("error:") == 1
    run_case(Case("runs-compare-typo", ["runs", "compare", rid, "r-zzz"], fragment="no run 'r-zzz'"), tmp_path, capsys)


def test_wandb_not_installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    case = Case(
        "finetune-wandb-missing",
        ["finetune", "--set", "train.report_to=[wandb]", "--set", "output_dir=out"],
        fragment="wandb, which is not installed: pip install wandb",
    )
    run_case(case, tmp_path, capsys)
