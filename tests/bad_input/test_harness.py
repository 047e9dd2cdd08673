"""The harness itself: it must catch a wrong exit code, a missing fragment and a changed tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, run_case, snapshot


def test_harness_passes_a_good_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(Case("ok", ["survey", "analyze", "missing.csv"], fragment="missing.csv"), tmp_path, capsys)


def test_harness_catches_wrong_exit_and_fragment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(AssertionError, match="expected exit 0"):
        run_case(Case("bad-exit", ["survey", "analyze", "missing.csv"], exit_code=0), tmp_path, capsys)
    with pytest.raises(AssertionError, match="fragment"):
        run_case(Case("bad-frag", ["survey", "analyze", "missing.csv"], fragment="no such words"), tmp_path, capsys)


def test_snapshot_sees_changes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    before = snapshot(tmp_path)
    (tmp_path / "a" / "f.txt").write_text("y")
    assert snapshot(tmp_path) != before
    assert set(before) == {"a", "a/f.txt"}
