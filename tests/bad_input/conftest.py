"""Harness for the table-driven bad-input suite: one :class:`Case` per row, run through the real CLI.

Each row writes its input files into a fresh ``tmp_path``, snapshots the tree (paths + sha256), calls
``growthcurve.cli.main(argv)`` in-process and checks the exit code, the message fragment, that nothing
says "internal error", and, when the command failed, that no file was created, changed or removed.
Usage::

    from tests.bad_input.conftest import Case, cases_param, run_case

    CASES = [Case("ab-plan-negative-days", ["ab", "plan", "--baseline", "0.1", "--mde", "0.05",
             "--daily-units", "-100"], fragment="--daily-units")]

    @cases_param(CASES)
    def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        run_case(case, tmp_path, capsys)
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Case:
    """One bad-input row: the command line, the files it needs, and what the CLI must answer.

    ``fragment`` (one string or several) must appear in stderr when the command fails, or in stdout+stderr
    when ``exit_code`` is 0 (a counted warning); matching ignores case and collapses whitespace so rich's
    line wrapping cannot break it. ``files`` maps a relative path to its content (bytes, or str written
    as UTF-8); ``setup`` runs after the files are written (e.g. to chmod a folder) and before the snapshot.
    """

    id: str
    argv: Sequence[str]
    files: Mapping[str, bytes | str] = field(default_factory=dict)
    exit_code: int = 2
    fragment: str | Sequence[str] = ""
    unchanged: bool = True
    absent: Sequence[str] = ()
    setup: Callable[[Path], None] | None = None
    env: Mapping[str, str] = field(default_factory=dict)


def cases_param(cases: Sequence[Case]) -> Any:
    """``pytest.mark.parametrize`` over ``cases`` with the row ids as test ids (ids must be unique)."""
    ids = [c.id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"duplicate case ids: {dupes}"
    return pytest.mark.parametrize("case", cases, ids=ids)


def snapshot(root: Path) -> dict[str, str]:
    """Every path below ``root`` → sha256 of its bytes ('dir' for folders, 'link' for symlinks)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for d in dirnames:
            p = base / d
            out[str(p.relative_to(root))] = "link" if p.is_symlink() else "dir"
        for f in filenames:
            p = base / f
            rel = str(p.relative_to(root))
            try:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:  # unreadable on purpose (chmod 000 cases): record that it exists
                out[rel] = "unreadable"
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def write_files(root: Path, files: Mapping[str, bytes | str]) -> None:
    """Create each file (and its parent folders) below ``root``."""
    for name, content in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def run_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run one row through ``growthcurve.cli.main`` inside ``tmp_path``; return (stdout, stderr)."""
    from growthcurve.cli import main

    old_cwd = Path.cwd()
    old_env = {k: os.environ.get(k) for k in case.env}
    os.chdir(tmp_path)
    try:
        os.environ.update(case.env)
        write_files(tmp_path, case.files)
        if case.setup is not None:
            case.setup(tmp_path)
        before = snapshot(tmp_path)
        capsys.readouterr()  # drop anything printed while setting up
        code: int | str | None = 0
        try:
            main(list(case.argv))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        after = snapshot(tmp_path)
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    code = 0 if code is None else code
    shown = f"\n--- argv: {list(case.argv)}\n--- exit: {code}\n--- stdout:\n{out}\n--- stderr:\n{err}"
    assert code == case.exit_code, f"expected exit {case.exit_code}, got {code}{shown}"
    everything = _norm(out + "\n" + err)
    assert "internal error" not in everything, f"internal error{shown}"
    assert "traceback" not in everything, f"traceback{shown}"
    where = _norm(err) if case.exit_code != 0 else everything
    fragments = [case.fragment] if isinstance(case.fragment, str) else list(case.fragment)
    for frag in fragments:
        assert _norm(frag) in where, f"fragment {frag!r} not in {'stderr' if case.exit_code else 'output'}{shown}"
    for frag in case.absent:
        assert _norm(frag) not in everything, f"unexpected {frag!r} in output{shown}"
    if case.exit_code != 0 and case.unchanged:
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        assert not (added or removed or changed), (
            f"file tree changed by a failing command: added={added} removed={removed} changed={changed}{shown}"
        )
    return out, err
