"""Every finetune lands in the run registry (finished / failed / interrupted) and feeds its trackers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from growthcurve.config import load_finetune_config
from growthcurve.errors import ConfigError
from growthcurve.store.registry import get_run, list_runs
from growthcurve.training.dispatch import run_finetune
from growthcurve.training.loop import Interrupted, on_epoch_end
from tests.conftest import toy_rows, write_csv


def _sets(tmp_path: Path, epochs: int = 2, **extra: object) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = {
        s: write_csv(tmp_path / f"{s}.csv", toy_rows(n, seed))
        for s, n, seed in [("train", 120, 0), ("dev", 40, 1), ("test", 40, 2)]
    }
    sets = {f"data.{k}": v for k, v in data.items()}
    sets.update(
        {
            "output_dir": tmp_path / "run",
            "model.type": "textcnn",
            "train.epochs": epochs,
            "train.batch_size": 16,
            "train.checkpoint_every_steps": 4,
        }
    )
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_finished_run_is_recorded_with_metrics_and_tensorboard(tmp_path: Path) -> None:
    cfg = load_finetune_config(None, _sets(tmp_path))
    res = run_finetune(cfg, progress=False)
    (rec,) = list_runs(kind="finetune")
    assert rec.status == "finished" and rec.task == "text-classification" and rec.name == "run"
    assert rec.metrics["test"]["accuracy"] == pytest.approx(res.test["accuracy"])
    assert rec.metrics["dev"]["accuracy"] == pytest.approx(res.dev["accuracy"])
    assert rec.metrics["best_epoch"] == res.best_epoch
    assert rec.artefact == str(Path(res.run_dir).resolve())
    assert set(rec.data_fingerprint) == {str(tmp_path / f"{s}.csv") for s in ("train", "dev", "test")}
    assert rec.config["model"]["type"] == "textcnn" and rec.config["train"]["epochs"] == 2
    assert get_run(res.run_dir).id == rec.id  # the run folder finds its row

    scalars = _scalars(Path(res.run_dir))
    assert {"train/loss", "train/lr", "dev/accuracy", "dev/loss", "test/accuracy"} <= set(scalars)
    dev_acc = [v for _, v in scalars["dev/accuracy"]]
    assert dev_acc == pytest.approx([e["dev"]["accuracy"] for e in res.history])
    assert scalars["test/accuracy"][0][1] == pytest.approx(res.test["accuracy"])


def test_parent_from_env_and_registry_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROWTHCURVE_PARENT_RUN", "r-20261201-000000-abcd")
    run_finetune(load_finetune_config(None, _sets(tmp_path / "a", 1)), progress=False)
    assert [r.parent for r in list_runs()] == ["r-20261201-000000-abcd"]
    run_finetune(load_finetune_config(None, [*_sets(tmp_path / "b", 1), "registry=false"]), progress=False)
    assert len(list_runs()) == 1


def test_exception_marks_failed_and_interrupt_marks_interrupted(tmp_path: Path) -> None:
    def boom(epoch: int, dev: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError), on_epoch_end(boom):
        run_finetune(load_finetune_config(None, _sets(tmp_path / "a")), progress=False)
    (failed,) = list_runs(status="failed")
    assert "disk full" in failed.metrics["error"] and failed.finished_at is not None

    def stop(epoch: int, dev: object) -> None:
        raise Interrupted("stopped by the test")

    with pytest.raises(Interrupted), on_epoch_end(stop):
        run_finetune(load_finetune_config(None, _sets(tmp_path / "b")), progress=False)
    assert [r.name for r in list_runs(status="interrupted")] == ["run"]
    assert list_runs(status="running") == []


def test_unreachable_store_warns_and_keeps_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GROWTHCURVE_DB_URL", f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    res = run_finetune(load_finetune_config(None, _sets(tmp_path, 1, **{"train.report_to": "[]"})), progress=False)
    assert (Path(res.run_dir) / "metrics.json").is_file() and res.test is not None
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "run registry did not record" in line]
    assert len(warnings) == 1 and "GROWTHCURVE_DB_URL" in warnings[0]
    assert not (Path(res.run_dir) / "tensorboard").exists()  # report_to=[]: no tracker at all


def test_tracker_not_installed_fails_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    cfg = load_finetune_config(None, _sets(tmp_path, **{"train.report_to": "[tensorboard,wandb]"}))
    with pytest.raises(ConfigError, match=r"wandb, which is not installed: pip install wandb"):
        run_finetune(cfg, progress=False)
    assert not (tmp_path / "run").exists() and list_runs() == []


def test_bad_tracker_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="train.report_to"):
        load_finetune_config(None, ["train.report_to=[neptune]"])
    with pytest.raises(ConfigError, match="more than once"):
        load_finetune_config(None, ["train.report_to=[mlflow,mlflow]"])


@pytest.mark.slow
def test_mlflow_logs_metrics_to_a_local_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="mlflow is the optional 'tracking' extra")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_finetune_config(None, _sets(tmp_path, **{"train.report_to": "[tensorboard,mlflow]"}))
    res = run_finetune(cfg, progress=False)
    client = MlflowClient(f"sqlite:///{(Path(res.run_dir) / 'mlflow.db').resolve()}")
    (exp,) = [e for e in client.search_experiments() if e.name == "growthcurve"]
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    dev = [m.value for m in client.get_metric_history(run.info.run_id, "dev/accuracy")]
    assert dev == pytest.approx([e["dev"]["accuracy"] for e in res.history])
    assert run.data.metrics["test/accuracy"] == pytest.approx(res.test["accuracy"])
    assert run.data.params["model.type"] == "textcnn"
