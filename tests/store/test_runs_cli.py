"""`growthcurve runs list|show|compare` on a registry filled through the contract (no training needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from growthcurve.cli import main
from growthcurve.store.registry import finish_run, start_run


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else int(exc.code)
    out, err = capsys.readouterr()
    return code, out, err


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture()
def two_runs(tmp_path: Path) -> tuple[str, str]:
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,x\n", encoding="utf-8")
    cfg = {"data": {"train": str(train), "test": None}, "train": {"learning_rate": 0.001, "epochs": 3}}
    a = start_run("finetune", name="base", task="text-classification", config=cfg, data_files=[train])
    finish_run(a, "finished", metrics={"test": {"accuracy": 0.80, "loss": 0.5}, "dev": {"accuracy": 0.75}})
    train.write_text("text,label\na,x\nb,y\n", encoding="utf-8")  # the data changed between the runs
    cfg_b = {"data": {"train": str(train), "test": None}, "train": {"learning_rate": 0.003, "epochs": 3}}
    b = start_run("finetune", name="tuned", task="text-classification", config=cfg_b, data_files=[train], parent=a)
    finish_run(b, "finished", metrics={"test": {"accuracy": 0.85, "loss": 0.4}, "dev": {"accuracy": 0.79}})
    return a, b


def test_compare_json_has_deltas_config_diff_and_data_change(
    two_runs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_runs
    code, out, _ = _cli(["runs", "compare", a, b, "--json"], capsys)
    assert code == 0
    cmp = json.loads(out)
    deltas = {m["key"]: m["delta"] for m in cmp["metrics"]}
    assert deltas["test.accuracy"] == pytest.approx(0.05)
    assert deltas["test.loss"] == pytest.approx(-0.1)
    assert deltas["dev.accuracy"] == pytest.approx(0.04)
    assert cmp["config"] == [{"key": "train.learning_rate", "a": 0.001, "b": 0.003}]
    assert cmp["data_changed"] is True
    (train,) = [d for d in cmp["data"] if d["input"] == "train"]
    assert train["changed"] and train["a"] != train["b"]


def test_compare_table_flags_the_data_change(two_runs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_runs
    code, out, _ = _cli(["runs", "compare", a, b], capsys)
    assert code == 0
    text = _flat(out)
    assert re.search(r"data changed: train\.csv sha256 [0-9a-f]{4}… → [0-9a-f]{4}…", text), text
    assert "+0.05" in text and "train.learning_rate" in text


def test_same_data_is_not_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.csv"
    f.write_text("text,label\n", encoding="utf-8")
    a = start_run("finetune", config={"data": {"train": str(f)}}, data_files=[f])
    b = start_run("finetune", config={"data": {"train": str(f)}}, data_files=[f])
    code, out, _ = _cli(["runs", "compare", a, b], capsys)
    assert code == 0 and "data changed" not in out and "data unchanged" in out and "same config" in out


def test_list_filters_limit_and_json(
    two_runs: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_runs
    start_run("ab-analyze", name="checkout-test")
    code, out, _ = _cli(["runs", "list", "--json"], capsys)
    assert code == 0 and [r["id"] for r in json.loads(out)][:2] == [a, b]
    code, out, _ = _cli(["runs", "list", "--kind", "ab-analyze", "--json"], capsys)
    assert [r["name"] for r in json.loads(out)] == ["checkout-test"]
    code, out, _ = _cli(["runs", "list", "--limit", "1", "--json", "--status", "finished"], capsys)
    assert [r["id"] for r in json.loads(out)] == [b]
    monkeypatch.setenv("COLUMNS", "220")  # a wide terminal: no column folds
    code, out, _ = _cli(["runs", "list"], capsys)
    assert code == 0 and a in out and b in out and "test.accuracy 0.8000" in _flat(out)


def test_show_by_prefix(two_runs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_runs
    code, out, _ = _cli(["runs", "show", b, "--json"], capsys)
    assert code == 0 and json.loads(out)["parent"] == a
    code, out, _ = _cli(["runs", "show", "tuned"], capsys)
    assert code == 0 and "test.accuracy" in out and "0.85" in out


def test_empty_registry_lists_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(["runs", "list"], capsys)
    assert code == 0 and "no runs recorded yet" in out


def _narrow(argv: list[str], cwd: Path) -> str:
    """The command's output in a real 80-column terminal (a subprocess: rich reads COLUMNS when it starts)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.run(
        [sys.executable, "-m", "growthcurve.cli", *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_runs_and_models_fit_80_columns_without_cutting(tmp_path: Path) -> None:
    """At 80 columns the tables stack into one block per row: no line wider than 80, no value cut to '…', every
    id and number printed whole (they were squeezed to 3-character columns)."""
    from growthcurve.store.registry import finish_run, start_run

    ids = []
    for i, acc in enumerate((0.8123, 0.8567, 0.9012)):
        rid = start_run("finetune", name=f"banking77-run-{i}", task="text-classification", model="banking77")
        finish_run(rid, "finished", metrics={"test": {"accuracy": acc}}, fingerprint=f"fp{i}")
        ids.append(rid)
    for argv in (["runs", "list"], ["models", "list"], ["models", "show", "banking77"]):
        out = _narrow(argv, tmp_path)
        assert max(len(line) for line in out.splitlines()) <= 80, out
        assert "…" not in out, out
        if argv[0] == "runs":
            assert all(i in out for i in ids) and "test.accuracy 0.9012" in out
        else:
            assert "banking77@v3" in out and "0.9012" in out
