"""The run registry round trip on every backend, its ids, hashes, fingerprints and lookups."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from growthcurve.errors import ConfigError, DataError
from growthcurve.store import registry
from growthcurve.store.registry import (
    config_hash,
    find_by_artefact,
    finish_run,
    get_run,
    list_runs,
    start_run,
)


def test_round_trip(registry_url: str, tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\nhi,a\n", encoding="utf-8")
    cfg = {"train": {"epochs": 3, "learning_rate": 0.001}, "model": {"name_or_path": "m"}}
    before = dt.datetime.now(dt.UTC)
    rid = start_run(
        "finetune",
        name="exp1",
        task="text-classification",
        config=cfg,
        data_files=[train, None],
        artefact=tmp_path / "run1",
        url=registry_url,
    )
    assert re.fullmatch(r"r-\d{8}-\d{6}-[0-9a-f]{4}", rid)
    rec = get_run(rid, url=registry_url)
    assert rec.status == "running" and rec.finished_at is None and rec.metrics == {}
    assert rec.config == cfg and rec.kind == "finetune" and rec.task == "text-classification"
    assert rec.data_fingerprint == {str(train): hashlib.sha256(train.read_bytes()).hexdigest()}
    assert rec.artefact == str((tmp_path / "run1").resolve())
    assert rec.started_at >= before.replace(microsecond=0) - dt.timedelta(seconds=1)
    assert rec.code_version.startswith("growthcurve ")

    metrics = {"test": {"accuracy": 0.9, "macro_f1": 0.85}, "dev": {"accuracy": 0.88}}
    finish_run(rid, "finished", metrics=metrics, url=registry_url)
    rec = get_run(rid, url=registry_url)
    assert rec.status == "finished" and rec.metrics == metrics
    assert rec.finished_at is not None and rec.finished_at >= rec.started_at

    child = start_run("tune", name="study", parent=rid, url=registry_url)
    assert get_run(child, url=registry_url).parent == rid
    assert [r.id for r in list_runs(registry_url)] == [rid, child]
    assert [r.id for r in list_runs(registry_url, kind="tune")] == [child]
    assert [r.id for r in list_runs(registry_url, status="finished")] == [rid]
    assert list_runs(registry_url, task="token-classification") == []


def test_config_hash_is_canonical() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "s"}}
    b = {"a": {"x": "s", "y": [1, 2]}, "b": 1}
    expected = hashlib.sha256(b'{"a":{"x":"s","y":[1,2]},"b":1}').hexdigest()[:16]
    assert config_hash(a) == config_hash(b) == expected
    assert config_hash({**a, "b": 2}) != expected


def test_ids_are_unique_within_a_second() -> None:
    ids = {start_run("ab-analyze") for _ in range(40)}
    assert len(ids) == 40


def test_parent_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = start_run("tune", name="study")
    monkeypatch.setenv("GROWTHCURVE_PARENT_RUN", parent)
    assert get_run(start_run("finetune")).parent == parent


def test_lookup_by_prefix_artefact_and_name(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "best"
    (run_dir / "model").mkdir(parents=True)
    rid = start_run("finetune", name="best", artefact=run_dir)
    other = start_run("retrain", name="again")
    common = len(os.path.commonprefix([rid, other]))
    assert get_run(rid[: common + 1]).id == rid  # the shortest prefix that tells the two apart
    assert get_run(str(run_dir)).id == rid
    assert get_run(str(run_dir / "model")).id == rid  # the model folder a Predictor loads
    assert find_by_artefact(run_dir / "model").id == rid  # type: ignore[union-attr]
    assert find_by_artefact(tmp_path / "elsewhere") is None
    assert get_run("best").id == rid


def test_unknown_and_ambiguous_ids() -> None:
    with pytest.raises(DataError, match="nothing is registered"):
        get_run("r-nothing")
    rid = start_run("finetune", name="alpha")
    start_run("finetune", name="alpha2")
    typo = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    with pytest.raises(DataError, match=f"did you mean {rid}"):
        get_run(typo)
    with pytest.raises(DataError, match="ambiguous"):
        get_run("r-")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="run kind must be one of"):
        start_run("train")
    rid = start_run("finetune")
    with pytest.raises(ConfigError, match="finishes as one of"):
        finish_run(rid, "done")
    with pytest.raises(ConfigError, match="cannot be stored as JSON"):
        finish_run(rid, "finished", metrics={"loss": float("nan")})
    with pytest.raises(DataError, match="no run 'r-missing'"):
        finish_run("r-missing", "failed")


def test_unreachable_store_is_one_data_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"
    with pytest.raises(DataError, match="cannot open database"):
        start_run("finetune", url=url)


def test_code_version_without_git(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    registry.code_version.cache_clear()
    monkeypatch.setattr(subprocess, "run", no_git)
    try:
        from growthcurve import __version__

        assert registry.code_version() == f"growthcurve {__version__}"
    finally:
        registry.code_version.cache_clear()


def test_code_version_names_the_git_sha() -> None:
    import shutil
    import subprocess

    root = Path(registry.__file__).resolve().parents[3]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not running from a git checkout")
    sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    registry.code_version.cache_clear()
    assert registry.code_version().endswith(f"+git{sha.stdout.strip()}")


def test_record_is_json_able() -> None:
    rid = start_run("plan-allocate", config={"budget": 3})
    d = get_run(rid).to_dict()
    assert json.loads(json.dumps(d))["config"] == {"budget": 3}
