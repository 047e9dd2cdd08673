"""Bad input for the application commands (monitor), one row per case, run through the real CLI.

Each row runs in a fresh folder holding a copy of a TF-IDF monitor (fitted once per session in a second) and a
store created beforehand, and asserts exit code 2, the message, no internal error and an unchanged file tree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case


def _store(root: Path) -> None:
    from growthcurve.store import init_db

    init_db(f"sqlite:///{root / 'm.db'}").dispose()


def _lines(*objs: object) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


RUN = ["monitor", "run", "mon", "s.jsonl", "--store", "sqlite:///m.db"]

MONITOR = [
    Case(  # it exited 0 with "0 texts, 3 malformed lines skipped"
        "monitor-run-every-line-malformed",
        RUN,
        files={"s.jsonl": _lines("not json", {"text": "no time"}, {"timestamp": "2026-01-01T00:00:00Z", "text": ""})},
        setup=_store,
        fragment=("none of the 3 new lines", "s.jsonl:1: not JSON", "nothing was recorded"),
    ),
    Case(
        "monitor-run-csv-as-stream",
        RUN,
        files={"s.jsonl": "timestamp,text\n2026-01-01,markets fall\n"},
        setup=_store,
        fragment=("none of the 2 new lines", "not JSON"),
    ),
]


@pytest.fixture(scope="session")
def tfidf_monitor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`monitor fit` on the generated headlines with TF-IDF models (about a second)."""
    from growthcurve.apps.monitor.model import fit_monitor

    out = tmp_path_factory.mktemp("tfidf-monitor") / "mon"
    fit_monitor(out, overrides=["model.type=tfidf"], progress=False, log=lambda m: None)
    return out


@cases_param(MONITOR)
def test_app_command_bad_input(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], tfidf_monitor: Path
) -> None:
    shutil.copytree(tfidf_monitor, tmp_path / "mon")
    run_case(case, tmp_path, capsys)


def test_a_stream_with_some_good_lines_still_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tfidf_monitor: Path
) -> None:
    """Malformed lines among good ones are skipped and counted, as before: only an all-bad stream is refused."""
    shutil.copytree(tfidf_monitor, tmp_path / "mon")
    stream = _lines("not json", {"timestamp": "2026-01-01T00:00:00Z", "text": "shares of the bank fall sharply"})
    out, _ = run_case(
        Case("monitor-run-one-good-line", RUN, files={"s.jsonl": stream}, setup=_store, exit_code=0), tmp_path, capsys
    )
    assert "1 texts" in out and "1 malformed lines skipped" in out


def test_monitor_run_shows_progress_over_the_files_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tfidf_monitor: Path
) -> None:
    shutil.copytree(tfidf_monitor, tmp_path / "mon")
    stream = _lines(*({"timestamp": 1767225600 + 60 * i, "text": f"shares fall {i}"} for i in range(50)))
    argv = [*RUN, "--batch-size", "8"]
    _, err = run_case(
        Case("monitor-run-progress", argv, files={"s.jsonl": stream}, setup=_store, exit_code=0), tmp_path, capsys
    )
    total = f"/{len(stream.encode()) / 1000:.2f}k"  # tqdm's unit_scale: 2590 bytes read as 2.59k
    assert "monitor default:" in err and total in err and "B/s" in err and "texts=" in err
