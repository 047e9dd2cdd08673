"""The CLI: bad input is one actionable line with a non-zero exit; predict/evaluate work end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import toy_overrides


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in this process (fast) and return what a subprocess call would."""
    import contextlib
    import io

    from growthcurve.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = old_stdin
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def test_console_entry_point_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "growthcurve.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "finetune" in proc.stdout


def assert_one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), proc.stderr
    import re

    assert re.search(pattern, " ".join(lines)), proc.stderr


@pytest.mark.parametrize(
    ("sets", "pattern"),
    [
        (["data.train=/nonexistent/train.csv"], "does not exist"),
        (["trian.epochs=1"], "did you mean 'train'"),
        (["model.name_or_path=/nonexistent/model"], "model path '/nonexistent/model' does not exist"),
        (["method=qlora"], "method"),
    ],
)
def test_finetune_bad_input_is_one_line(sets: list[str], pattern: str, tmp_path: Path) -> None:
    sets = [*sets, f"output_dir={tmp_path / 'run'}"]
    proc = run_cli("finetune", "-q", *[a for s in sets for a in ("--set", s)])
    assert_one_line_error(proc, pattern)


def test_model_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    proc = run_cli(
        "finetune", "-q", "--set", f"model.name_or_path={tmp_path / 'm'}", "--set", f"output_dir={tmp_path}/r"
    )
    assert_one_line_error(proc, "not a model folder")


def test_bad_column_lists_the_columns(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("utterance,intent\nhi,greet\nbye,leave\n")
    proc = run_cli("finetune", "-q", "--set", f"data.train={tmp_path / 'd.csv'}", "--set", f"output_dir={tmp_path}/r")
    assert_one_line_error(proc, "columns are: utterance, intent")


@pytest.mark.slow
def test_finetune_predict_evaluate_round_trip(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = toy_overrides(tiny_bert, toy_data, run, **{"train.epochs": 4})
    proc = run_cli("finetune", "-q", *[a for s in sets for a in ("--set", s)])
    assert proc.returncode == 0, proc.stderr
    assert "classification_report_test.txt" in proc.stdout and "macro avg" in proc.stdout

    proc = run_cli("predict", str(run), "-", "--top-k", "2", stdin='the film was terrible\n{"text": "so great"}\n')
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["neg", "pos"] and len(rows[0]["top_k"]) == 2

    proc = run_cli("evaluate", str(run), str(toy_data["test"]), "-q")
    assert proc.returncode == 0, proc.stderr
    assert (run / "eval-test" / "classification_report_eval.txt").is_file()

    proc = run_cli("predict", str(run), "-", stdin='{"txt": "x"}\n')
    assert_one_line_error(proc, r"<stdin>:1: no 'text' field")
    proc = run_cli("predict", str(tmp_path / "missing-run"), "-", stdin="x\n")
    assert_one_line_error(proc, "does not exist")
