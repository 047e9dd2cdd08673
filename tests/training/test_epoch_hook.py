"""`loop.on_epoch_end` lets an observer (hyperparameter search) see each epoch's dev metrics and stop a fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from growthcurve.config import load_finetune_config
from growthcurve.training.dispatch import run_finetune
from growthcurve.training.loop import on_epoch_end
from tests.conftest import toy_rows, write_csv


class _Stop(Exception):
    pass


def _sets(tmp_path: Path, epochs: int) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = {
        s: write_csv(tmp_path / f"{s}.csv", toy_rows(n, seed))
        for s, n, seed in [("train", 120, 0), ("dev", 40, 1), ("test", 40, 2)]
    }
    return [f"data.{k}={v}" for k, v in data.items()] + [
        f"output_dir={tmp_path / 'run'}",
        "model.type=textcnn",
        f"train.epochs={epochs}",
        "train.batch_size=16",
    ]


def test_callback_sees_every_epoch_with_dev_metrics(tmp_path: Path) -> None:
    seen: list[tuple[int, float]] = []
    with on_epoch_end(lambda epoch, dev: seen.append((epoch, dev["accuracy"]))):
        res = run_finetune(load_finetune_config(None, _sets(tmp_path, 3)), progress=False)
    assert [e for e, _ in seen] == [1, 2, 3]
    assert seen[-1][1] == pytest.approx(res.history[-1]["dev"]["accuracy"])
    # outside the block nothing is called any more
    seen.clear()
    run_finetune(load_finetune_config(None, _sets(tmp_path / "b", 1)), progress=False)
    assert seen == []


def test_callback_exception_stops_the_fit(tmp_path: Path) -> None:
    calls: list[int] = []

    def stop(epoch: int, dev: dict[str, float] | None) -> None:
        calls.append(epoch)
        raise _Stop

    with pytest.raises(_Stop), on_epoch_end(stop):
        run_finetune(load_finetune_config(None, _sets(tmp_path, 4)), progress=False)
    assert calls == [1]
