"""Atomic writes: files (temp file in the same folder + os.replace) and whole folders (`swap_in_dir`), so a
crash never leaves a half-written file or folder; and `check_output_dir`, the check before an output folder is
replaced. Every file growthcurve writes goes through here (the module was ``growthcurve.io``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from growthcurve.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should read like any other file
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that atomically becomes ``path`` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def swap_in_dir(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Replace folder ``final`` by the finished folder ``tmp`` (same parent): the old one is renamed aside
    first, so ``final`` is at every moment either the old complete folder or the new one, never a mix."""
    tmp, final = Path(tmp), Path(final)
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def check_output_dir(out: Path, source: Path, *, marker: str, finished: str, replace_finished: bool) -> None:
    """Refuse an output folder whose replacement would destroy what the command did not write: a folder that is
    or contains ``source``, an existing file, or a non-empty folder without ``marker`` (the file the command
    writes last). A folder with ``marker`` is ``finished`` output of the same command, replaced only when
    ``replace_finished``. (``swap_in_dir`` replaces whatever is at ``out``: this check comes first.)"""
    r, o = source.resolve(), out.resolve()
    if o == r or o in r.parents:
        raise ConfigError(f"--out '{out}' is or contains '{source}'; give a new folder")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"--out '{out}' is an existing file; remove it or give another --out")
    if out.is_dir() and any(out.iterdir()):
        own = (out / marker).is_file()
        if own and replace_finished:
            return
        what = finished if own else f"not empty (no {marker}: not written by this command)"
        raise ConfigError(f"--out '{out}' already exists and is {what}; remove it or give another --out")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_open(path) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> None:
    """Atomically write ``obj`` as pretty JSON (NaN is refused: it is not valid JSON)."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False, default=_default) + "\n")


def _default(obj: Any) -> Any:
    """Make numpy scalars/arrays and paths JSON-serialisable."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
