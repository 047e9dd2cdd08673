"""A run whose loss turns non-finite stops with one `error:` line (exit 2) before the bad update, never an
internal error at the metrics write; its folder is refused for resume with what to do, and resume=false reuses it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from growthcurve.cli import main
from tests.conftest import toy_overrides


def _finetune(sets: list[str]) -> int:
    argv = ["finetune", "-q"]
    for s in sets:
        argv += ["--set", s]
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_a_diverging_run_stops_with_a_clear_error(
    tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    wild = {"train.learning_rate": 1e30, "train.max_grad_norm": 1e30, "train.epochs": 2}
    assert _finetune(toy_overrides(tiny_bert, toy_data, out, **wild)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"error: training diverged: the train loss is (nan|inf|-inf) at step \d+/\d+", err[-1])
    assert "Lower train.learning_rate (now 1e+30)" in err[-1] and "internal error" not in "\n".join(err)
    assert not (out / "metrics.json").exists() and not (out / "model").exists()

    # the same folder: refused with the way out, then resume=false starts it over and trains
    sane = {"train.epochs": 1}
    assert _finetune(toy_overrides(tiny_bert, toy_data, out, **sane)) == 2
    assert "stopped before its first checkpoint" in capsys.readouterr().err
    assert _finetune([*toy_overrides(tiny_bert, toy_data, out, **sane), "resume=false"]) == 0
    assert (out / "metrics.json").is_file()
