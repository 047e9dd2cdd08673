"""The loop says when a run is not learning: a near-zero learning rate gets one warning line (console and
metrics.json); a run that learns gets none, nor does one whose loss falls after a plateau."""

from __future__ import annotations

import json
import math
from pathlib import Path

from growthcurve.config import load_finetune_config
from growthcurve.training.dispatch import run_finetune
from tests.conftest import toy_overrides


def _warnings(run_dir: Path) -> list[str]:
    return [w for w in json.loads((run_dir / "metrics.json").read_text())["warnings"] if "not learning" in w]


def test_not_learning_warning_fires_on_a_broken_run(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    # learning_rate must be > 0, so "0" is 1e-12: no weight moves measurably
    sets = toy_overrides(tiny_bert, toy_data, tmp_path / "run", **{"train.learning_rate": 1e-12, "train.epochs": 2})
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    found = _warnings(res.run_dir)
    assert len(found) == 1 and "train.learning_rate (now 1e-12)" in found[0] and "8/32 steps (25%" in found[0]
    assert found[0] in res.warnings


def test_learning_run_stays_silent(toy_data: dict[str, Path], tmp_path: Path) -> None:
    sets = [f"data.{k}={v}" for k, v in toy_data.items()] + [
        f"output_dir={tmp_path / 'run'}",
        "model.type=textcnn",
        "train.epochs=4",
        "train.batch_size=16",
    ]
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    assert _warnings(res.run_dir) == []
    assert res.test is not None and res.test["accuracy"] > 0.8  # it did learn


def test_plateau_then_learning_is_not_recorded_nor_a_continued_run(
    tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path
) -> None:
    # the random tiny BERT sits at ln 2 for about two epochs, then learns
    sets = toy_overrides(tiny_bert, toy_data, tmp_path / "run", **{"train.epochs": 4})
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    assert res.test is not None and res.test["accuracy"] > 0.9
    assert _warnings(res.run_dir) == []
    # training on from those weights (as retrain and a second fit do) starts at a loss far below ln 2 that has
    # little left to fall: the check used to call that "not learning"
    more = toy_overrides(
        res.run_dir / "model", toy_data, tmp_path / "more", **{"train.epochs": 2, "train.learning_rate": 1e-6}
    )
    again = run_finetune(load_finetune_config(None, more), progress=False)
    losses = [e["train_loss"] for e in again.history]
    assert max(losses) < 0.5 * math.log(2) and abs(losses[-1] - losses[0]) < 0.1 * losses[0]  # low and flat
    assert _warnings(again.run_dir) == []


def test_check_can_be_switched_off(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    sets = toy_overrides(
        tiny_bert,
        toy_data,
        tmp_path / "run",
        **{"train.learning_rate": 1e-12, "train.epochs": 1, "train.stall_check": 0},
    )
    assert _warnings(run_finetune(load_finetune_config(None, sets), progress=False).run_dir) == []
