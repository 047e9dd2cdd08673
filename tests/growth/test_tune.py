"""`growthcurve tune`: a study over tiny textcnn runs completes, prunes, resumes, refuses a changed space, and
writes a best config that `growthcurve finetune` accepts plus valid PNG plots."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from growthcurve.cli import main
from growthcurve.config import load_finetune_config
from growthcurve.growth.tune import Tuner, default_storage, load_tune_spec, mask_url, parse_space, space_changes
from growthcurve.store.registry import find_by_artefact, list_runs
from tests.conftest import toy_rows, write_csv

PNG = b"\x89PNG\r\n\x1a\n"
SEARCH = {
    "train.learning_rate": {"low": "1e-3", "high": "1e-2", "log": True},
    "train.batch_size": {"choices": [8, 16]},
}


def _config(tmp_path: Path, search: dict | None = SEARCH, **extra: object) -> Path:
    """A tune config of a tiny textcnn (2 epochs, 32 wide) on the toy sentiment task."""
    data = {
        s: str(write_csv(tmp_path / f"{s}.csv", toy_rows(n, seed)))
        for s, n, seed in [("train", 96, 0), ("dev", 40, 1), ("test", 40, 2)]
    }
    cfg: dict = {
        "model": {"type": "textcnn", "hidden_size": 32, "max_length": 16},
        "data": data,
        "train": {"epochs": 2, "batch_size": 16},
        "metric": "accuracy",
        **extra,
    }
    if search is not None:
        cfg["search"] = search
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return p


def _tune(*argv: str) -> int:
    try:
        main(["tune", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def _study(tmp_path: Path, name: str = "toy") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=_storage(tmp_path))


def test_three_trials_write_best_config_csv_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, out = _config(tmp_path), tmp_path / "out"
    assert (
        _tune(str(cfg), "--trials", "3", "--out", str(out), "--storage", _storage(tmp_path), "--seed", "0", "-q") == 0
    )
    summary = json.loads((out / "tune.json").read_text())
    assert (summary["trials"], summary["complete"], summary["pruned"], summary["status"]) == (3, 3, 0, "finished")
    study = _study(tmp_path)
    assert summary["best_value"] == pytest.approx(study.best_value)
    assert summary["best_params"] == study.best_params
    assert summary["best_value"] > 0.6  # the toy task is learnable: the best trial beats chance (0.5)

    # best.yaml is a full finetune config with the best params, the user's test file back, a fresh output_dir
    best = load_finetune_config(out / "best.yaml")
    assert best.train.learning_rate == pytest.approx(study.best_params["train.learning_rate"])
    assert best.train.batch_size == study.best_params["train.batch_size"]
    assert best.data.test == str(tmp_path / "test.csv") and best.output_dir == str(out / "best")
    assert best.train.epochs == 2 and best.model.hidden_size == 32

    # the search never looked at the test split: trial runs have no test file and no test metrics
    for n in range(3):
        run = out / "trials" / str(n)
        assert yaml.safe_load((run / "config.yaml").read_text())["data"]["test"] is None
        assert not json.loads((run / "metrics.json").read_text()).get("test")
        assert json.loads((run / "trial.json").read_text())["state"] == "complete"

    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"complete"}
    assert float(rows[study.best_trial.number]["value"]) == pytest.approx(study.best_value)

    for name in ("importance", "parallel_coordinate"):
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == PNG and len(png) > 1000

    # the registry holds the tune row and its three finetune children
    (tune_row,) = list_runs(kind="tune")
    assert tune_row.status == "finished" and tune_row.metrics["best_value"] == pytest.approx(study.best_value)
    children = [r for r in list_runs(kind="finetune") if r.parent == tune_row.id]
    assert len(children) == 3 and {r.status for r in children} == {"finished"}
    assert "study toy" in capsys.readouterr().out  # the rich table of trials


class _PruneSecond(optuna.pruners.BasePruner):
    """Prunes trial 1 at its first report; every other trial runs to the end."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == 1


def test_forced_pruner_prunes_and_marks_the_run_interrupted(tmp_path: Path) -> None:
    spec = load_tune_spec(_config(tmp_path))
    out = tmp_path / "out"
    tuner = Tuner(trials=2, out=out, storage=_storage(tmp_path), pruner=_PruneSecond(), seed=0, progress=False)
    s = tuner.fit(spec).summary_
    assert (s.complete, s.pruned, s.best_trial) == (1, 1, 0)
    pruned = tuner.study_.trials[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED and list(pruned.intermediate_values) == [1]
    assert json.loads((out / "trials" / "1" / "trial.json").read_text())["state"] == "pruned"
    # the pruned run stopped after epoch 1 of 2
    assert len(json.loads((out / "trials" / "1" / "metrics.json").read_text())["epochs"]) == 1
    row = find_by_artefact(out / "trials" / "1")
    assert row is not None and row.status == "interrupted" and row.metrics["pruned_at_epoch"] == 1
    assert "needs >= 2 complete trials" in s.skipped_plots["importance"]
    assert "needs >= 2 complete trials (1 complete)" in s.skipped_plots["parallel_coordinate"]
    assert not (out / "importance.png").exists() and not (out / "parallel_coordinate.png").exists()


class _PruneAlways(optuna.pruners.BasePruner):
    """Says prune at every report."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_a_trial_is_never_pruned_at_its_last_epoch(tmp_path: Path) -> None:
    # a 1-epoch study: every report is the last one, so even a pruner that always says prune keeps the result
    spec = load_tune_spec(_config(tmp_path, **{"train": {"epochs": 1, "batch_size": 16}}))
    tuner = Tuner(trials=2, out=tmp_path / "out", storage=_storage(tmp_path), pruner=_PruneAlways(), progress=False)
    s = tuner.fit(spec).summary_
    assert (s.complete, s.pruned) == (2, 0)
    # with 2 epochs the same pruner stops every trial after epoch 1
    two = tmp_path / "two"
    two.mkdir()
    tuner2 = Tuner(trials=1, out=two / "out", storage=_storage(two), pruner=_PruneAlways(), progress=False)
    s2 = tuner2.fit(load_tune_spec(_config(two))).summary_
    assert (s2.complete, s2.pruned) == (0, 1)


def test_a_diverging_trial_fails_and_the_study_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # one point of the space blows the loss up: that trial is FAIL with its reason, the others still run
    space = {"train.learning_rate": {"choices": [1e30, 3e-3]}}
    cfg = _config(tmp_path, search=space, **{"train": {"epochs": 1, "batch_size": 16, "max_grad_norm": 1e30}})
    out = tmp_path / "out"
    url = _storage(tmp_path)
    assert _tune(str(cfg), "--trials", "3", "--out", str(out), "--storage", url, "--seed", "0", "-q") == 0
    trials = _study(tmp_path).trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert failed and complete and len(trials) == 3
    assert all(t.params["train.learning_rate"] == 1e30 for t in failed)
    assert all(t.params["train.learning_rate"] == 3e-3 for t in complete)
    assert all("training diverged" in t.user_attrs["fail_reason"] for t in failed)
    summary = json.loads((out / "tune.json").read_text())
    assert summary["status"] == "finished" and summary["failed"] == len(failed)
    assert summary["best_params"] == {"train.learning_rate": 3e-3}
    n = failed[0].number
    assert json.loads((out / "trials" / str(n) / "trial.json").read_text())["state"] == "failed"
    rows = {r["number"]: r for r in csv.DictReader((out / "trials.csv").open())}
    assert rows[str(n)]["state"] == "fail" and "diverged" in rows[str(n)]["fail_reason"]
    assert f"trial {n} failed (train.learning_rate=1e+30): training diverged" in capsys.readouterr().out


def test_study_resumes_to_n_then_refuses_a_changed_space(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, out, url = _config(tmp_path), tmp_path / "out", _storage(tmp_path)
    assert _tune(str(cfg), "--trials", "2", "--out", str(out), "--storage", url, "-q") == 0
    assert len(_study(tmp_path).trials) == 2
    assert _tune(str(cfg), "--trials", "4", "--out", str(out), "--storage", url, "-q") == 0
    assert "2 trial(s) done, 2 to go" in capsys.readouterr().out
    trials = _study(tmp_path).trials
    assert len(trials) == 4 and [t.number for t in trials] == [0, 1, 2, 3]
    assert json.loads((out / "tune.json").read_text())["trials"] == 4
    # the same N again: nothing to do, nothing added; a changed base config is run but flagged
    assert (
        _tune(str(cfg), "--trials", "4", "--out", str(out), "--storage", url, "-q", "-s", "model.hidden_size=24") == 0
    )
    assert len(_study(tmp_path).trials) == 4
    assert "differs from the one study 'toy' started with" in " ".join(capsys.readouterr().out.split())

    changed = {**SEARCH, "train.batch_size": {"choices": [8, 32]}, "train.weight_decay": {"low": 0.0, "high": 0.1}}
    cfg2 = _config(tmp_path, changed)
    before = (tmp_path / "study.db").read_bytes()
    capsys.readouterr()
    assert _tune(str(cfg2), "--trials", "5", "--out", str(out), "--storage", url, "--study", "toy", "-q") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "--study toy-v2" in err
    assert "train.weight_decay added" in err and "train.batch_size changed" in err
    assert (tmp_path / "study.db").read_bytes() == before and len(_study(tmp_path).trials) == 4


def test_trial_of_a_killed_worker_is_failed_and_retried(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_tune_spec(_config(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study = optuna.create_study(study_name="toy", storage=_storage(tmp_path), direction="maximize")
    # what a killed `growthcurve tune` leaves behind: a RUNNING trial with params, owned by a gone pid
    trial = study.ask({k: d for k, d in spec.space.items()})
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", int(dead.stdout))
    params = dict(study.trials[0].params)
    lines: list[str] = []
    tuner = Tuner(trials=1, out=tmp_path / "out", storage=_storage(tmp_path), progress=False, echo=lines.append)
    s = tuner.fit(spec).summary_
    states = [t.state.name for t in tuner.study_.trials]
    assert states == ["FAIL", "COMPLETE"] and s.retried == [0]
    assert tuner.study_.trials[1].params == params  # the retry runs the same config
    assert any("trial 0 was left RUNNING" in line and "queued again" in line for line in lines)


def test_interrupted_trial_is_queued_and_rerun_on_resume(tmp_path: Path) -> None:
    from growthcurve.training.loop import Interrupted, on_epoch_end

    spec = load_tune_spec(_config(tmp_path))
    lines: list[str] = []

    def tuner() -> Tuner:
        return Tuner(trials=1, out=tmp_path / "out", storage=_storage(tmp_path), progress=False, echo=lines.append)

    def ctrl_c(epoch: int, dev: object) -> None:  # what SIGTERM / Ctrl-C does to a fit: Interrupted, exit 130
        raise Interrupted("interrupted at epoch 1")

    with pytest.raises(Interrupted), on_epoch_end(ctrl_c):
        tuner().fit(spec)
    first = _study(tmp_path).trials
    assert [t.state.name for t in first] == ["FAIL", "WAITING"]
    assert any("trial 0 interrupted" in line for line in lines)
    assert json.loads((tmp_path / "out" / "tune.json").read_text())["status"] == "interrupted"
    s = tuner().fit(spec).summary_
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[1].params == first[0].params
    assert (s.complete, s.status) == (1, "finished")


def test_default_space_when_no_search_block(tmp_path: Path) -> None:
    spec = load_tune_spec(_config(tmp_path, search=None))
    assert spec.default_space and "train.learning_rate" in spec.space and "peft.lora_r" not in spec.space
    lora = load_tune_spec(_config(tmp_path, search=None), overrides=["method=lora", "model.type=transformer"])
    assert "peft.lora_r" in lora.space and lora.space["train.learning_rate"].high <= 3e-3  # type: ignore[attr-defined]
    lines: list[str] = []
    Tuner(trials=1, out=tmp_path / "out", storage=_storage(tmp_path), progress=False, echo=lines.append).fit(spec)
    assert any(line.startswith("no search: block; using the default space") for line in lines)


def test_space_parsing_and_changes() -> None:
    space = parse_space(
        {"train.epochs": {"low": 2, "high": 6, "step": 1}, "train.batch_size": {"low": 8, "high": 64, "log": True}},
        {},
        [],
    )
    assert isinstance(space["train.epochs"], optuna.distributions.FloatDistribution)  # epochs is a float field
    assert isinstance(space["train.batch_size"], optuna.distributions.IntDistribution)
    assert space["train.batch_size"].log  # type: ignore[attr-defined]
    changes = space_changes(space, {"train.epochs": space["train.epochs"]})
    assert changes == ["train.batch_size removed (was int 8..64 log)"]


def test_storage_defaults_and_masking() -> None:
    assert default_storage("sqlite:///x/growthcurve.db") == "sqlite:///x/growthcurve-optuna.db"
    assert default_storage("postgresql://u:pw@h/optuna") == "postgresql://u:pw@h/optuna"
    assert mask_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_shipped_example_config_parses() -> None:
    from growthcurve.data.text import bundled_intents_dir

    path = bundled_intents_dir().parent / "tune" / "intents_lora.yaml"
    spec = load_tune_spec(path)
    assert spec.cfg.method == "lora" and spec.metric == "accuracy" and not spec.default_space
    assert set(spec.space) >= {"train.learning_rate", "peft.lora_r"}
