"""Fingerprints of input data: a run that resumes, or is compared with another, can tell when its files changed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def path_fingerprint(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's relative file names and sizes (image class folders)."""
    p = Path(path)
    if p.is_file():
        return file_sha256(p)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p)}\0{f.stat().st_size}\n".encode())
        return "dir:" + h.hexdigest()
    return "missing"


def data_fingerprint(paths: Iterable[str | None]) -> dict[str, str]:
    """``{path: fingerprint}`` for each configured input (unset ones are skipped: the bundled default data)."""
    return {str(p): path_fingerprint(p) for p in paths if p}
