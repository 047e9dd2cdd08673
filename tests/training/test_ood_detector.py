"""The out-of-scope detector of a tiny trained run: fitted and kept at the end of training, separating a
planted out-of-scope cluster; used by `predict` and `evaluate` (AUROC, FPR@95, recall, slices), added to a
run made before detectors with `growthcurve ood fit`, and asked of a run without one: one line naming it."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from growthcurve.cli import main
from tests.conftest import toy_overrides, toy_rows, write_csv

GIBBERISH = ["zxq", "vbnm", "qwrtp", "kjhg", "plmq", "xcvz", "wqkz", "jjfx"]


def planted_oos(n: int, seed: int) -> list[str]:
    """Texts from outside the toy task: strings the tokenizer has never seen whole."""
    rng = random.Random(seed)
    return [" ".join(rng.sample(GIBBERISH, rng.randint(2, 5))) for _ in range(n)]


@pytest.fixture(scope="module")
def ood_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    d = tmp_path_factory.mktemp("ood")
    data = {
        "train": write_csv(d / "train.csv", toy_rows(256, 0)),
        "dev": write_csv(d / "dev.csv", toy_rows(64, 1)),
        "test": write_csv(d / "test.csv", toy_rows(64, 2)),
    }
    return Path(run_finetune(load_finetune_config(None, toy_overrides(tiny_bert, data, d / "run")), False).run_dir)


def _labelled_with_oos(path: Path) -> Path:
    """In-scope toy rows with a language-like slice column, and planted out-of-scope rows labelled 'oos'."""
    rows = [(t, y, "a" if i % 2 else "b") for i, (t, y) in enumerate(toy_rows(120, 5))]
    rows += [(t, "oos", "a") for t in planted_oos(40, 6)]
    write_csv(path, rows, header=("text", "label", "channel"))  # type: ignore[arg-type]
    return path


def test_trained_run_keeps_a_detector_that_separates_a_planted_cluster(ood_run: Path, tmp_path: Path) -> None:
    from growthcurve.training.inference import EvalOptions, Predictor, evaluate_run

    spec = json.loads((ood_run / "model" / "ood.json").read_text())
    assert spec["detector"] == "mahalanobis" and spec["threshold_rule"] == "in_scope_recall=0.95"
    metrics = json.loads((ood_run / "metrics.json").read_text())
    assert metrics["ood"]["dev"]["in_scope_answered"] >= 0.9
    res = evaluate_run(ood_run, _labelled_with_oos(tmp_path / "mixed.csv"), tmp_path / "ev", progress=False,
                       options=EvalOptions(slice_by="channel", n_boot=200))  # fmt: skip
    ood = res["ood"]
    assert ood["oos_rows"] == 40 and ood["in_scope_rows"] == 120
    assert ood["auroc"] >= 0.9 and ood["oos_recall"] >= 0.8  # the planted cluster is found
    assert res["metrics"]["accuracy"] >= 0.85  # in-scope metrics are on the in-scope rows only
    assert {r["value"] for r in res["slices"]["slices"]} == {"a", "b"}
    assert json.loads((tmp_path / "ev" / "slices.json").read_text())["column"] == "channel"
    # the run's card shows its detector, and the slices of an evaluation kept in the run folder
    evaluate_run(ood_run, tmp_path / "mixed.csv", progress=False, options=EvalOptions(slice_by="channel", n_boot=200))
    card = (ood_run / "README.md").read_text(encoding="utf-8")
    assert "## Out-of-scope detection" in card and "Detector **mahalanobis**" in card
    assert "## Slices" in card and "`eval-mixed` by **channel**" in card
    answers = Predictor(ood_run).predict(["so wonderful the film", *planted_oos(5, 9)])
    assert answers[0]["out_of_scope"] is False and answers[0]["ood_score"] <= spec["threshold"]
    assert sum(a["out_of_scope"] for a in answers[1:]) >= 4


def test_ood_fit_adds_a_detector_to_an_older_run(ood_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    old = tmp_path / "old"
    shutil.copytree(ood_run, old)
    for name in ("ood.json", "ood.npz"):
        (old / "model" / name).unlink()  # as a run made before detectors
    mixed = _labelled_with_oos(tmp_path / "older.csv")
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(old), str(mixed), "-q"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "has no out-of-scope detector" in err and f"growthcurve ood fit {old}" in err
    assert not (old / "eval-older").exists()
    main(["ood", "fit", str(old)])
    out = capsys.readouterr().out
    assert "out-of-scope detector mahalanobis" in out
    back = json.loads((old / "model" / "ood.json").read_text())
    assert back["threshold"] == pytest.approx(json.loads((ood_run / "model" / "ood.json").read_text())["threshold"])
    with pytest.raises(SystemExit):
        main(["ood", "fit", str(old)])  # a second fit is refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    main(["evaluate", str(old), str(mixed), "-q"])
    assert "AUROC" in capsys.readouterr().out


def test_detector_from_out_of_scope_examples(tiny_bert: Path, tmp_path: Path) -> None:
    """With data.oos_label the out-of-scope rows never become a class; they choose detector and threshold."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    train = toy_rows(200, 0) + [(t, "oos") for t in planted_oos(30, 1)]
    dev = toy_rows(60, 1) + [(t, "oos") for t in planted_oos(20, 2)]
    test = toy_rows(40, 3) + [(t, "oos") for t in planted_oos(20, 4)]
    data = {name: write_csv(tmp_path / f"{name}.csv", rows) for name, rows in (("train", train), ("dev", dev),
                                                                              ("test", test))}  # fmt: skip
    sets = toy_overrides(tiny_bert, data, tmp_path / "run", **{"data.oos_label": "oos", "train.epochs": 2})
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    assert res.labels == ["neg", "pos"]
    spec = json.loads((tmp_path / "run" / "model" / "ood.json").read_text())
    assert spec["threshold_rule"] == "youden" and spec["dev_oos_rows"] == 50
    assert spec["detector"] == max(spec["dev_auroc"], key=spec["dev_auroc"].get)
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["ood"]["test"]
    assert test["oos_rows"] == 20 and test["auroc"] >= 0.9 and set(test["per_detector"]) == set(spec["dev_auroc"])
    assert np.isfinite(test["fpr95"])
