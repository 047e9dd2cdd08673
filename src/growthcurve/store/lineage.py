"""Model lineages: every finished run that made a servable model is a *version* of a named model
(``intents@v1``, ``intents@v2``, ...), kept in the run registry's ``runs`` rows (``model``, ``version``,
``fingerprint``). This module reads them back: parse a reference, find a version, list the models, and turn
``intents@v2`` into the run folder that every command accepts.

The served ``model_version`` hash stays the immutable fingerprint of the weights; the lineage name is what
people read. A version's folder is checked against its fingerprint when given, so a folder that was trained
over again answers with its new version, never with a stale name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthcurve.errors import ConfigError, ModelError
from growthcurve.store.registry import (
    MODEL_KINDS,
    RunRecord,
    _norm_path,
    _read_engine,
    _record,
    _unreachable,
    finish_run,
    get_version,
    is_ref,
    parse_ref,
    start_run,
)
from growthcurve.store.schema import runs

__all__ = [
    "ModelSummary",
    "adopt_folder",
    "get_version",
    "is_ref",
    "list_models",
    "model_versions",
    "parse_ref",
    "resolve_run",
    "run_folder",
    "version_by_fingerprint",
    "version_of_folder",
]


@dataclass
class ModelSummary:
    """One model: its versions oldest first (each a registry row) and the latest one's name."""

    name: str
    task: str | None
    versions: list[RunRecord] = field(default_factory=list)

    @property
    def latest(self) -> RunRecord:
        return self.versions[-1]


def _select(engine: sa.Engine, *where: Any) -> list[RunRecord]:
    t = runs
    q = sa.select(t).where(t.c.version.is_not(None), *where).order_by(t.c.model, t.c.version)
    try:
        with engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]
    except sa.exc.OperationalError as exc:
        raise _unreachable(engine, exc) from None


def model_versions(model: str, url: str | None = None) -> list[RunRecord]:
    """The versions of ``model``, oldest first (empty when the store has none)."""
    engine = _read_engine(url)
    return [] if engine is None else _select(engine, runs.c.model == model)


def list_models(url: str | None = None) -> list[ModelSummary]:
    """Every model with at least one version, by name."""
    engine = _read_engine(url)
    if engine is None:
        return []
    out: dict[str, ModelSummary] = {}
    for rec in _select(engine):
        assert rec.model is not None
        summary = out.setdefault(rec.model, ModelSummary(rec.model, rec.task))
        summary.versions.append(rec)
        summary.task = rec.task or summary.task
    return list(out.values())


def version_by_fingerprint(fingerprint: str, url: str | None = None) -> RunRecord | None:
    """The newest version whose model folder had this served ``model_version`` hash, or None."""
    engine = _read_engine(url)
    if engine is None:
        return None
    found = _select(engine, runs.c.fingerprint == fingerprint)
    return found[-1] if found else None


def version_of_folder(path: str | os.PathLike[str], fingerprint: str, url: str | None = None) -> RunRecord | None:
    """The version that ``path`` (a run folder) holds: same folder and same weights; None when it has none."""
    engine = _read_engine(url)
    if engine is None:
        return None
    p = Path(_norm_path(path))
    candidates = [str(p)] + ([str(p.parent)] if p.name == "model" else [])
    found = _select(engine, runs.c.artefact.in_(candidates), runs.c.fingerprint == fingerprint)
    return found[-1] if found else None


def resolve_run(ref: str | os.PathLike[str], url: str | None = None) -> Path:
    """The run folder a command argument means: an existing path as it is; ``intents@v2`` (or ``@latest``) the
    folder of that version, checked to still exist. Anything else comes back unchanged, so the command's own
    "does not exist" message stays the one the user sees."""
    text = os.fspath(ref)
    if Path(text).exists() or not is_ref(text):
        return Path(text)
    rec = get_version(text, url)
    if not rec.artefact or not Path(rec.artefact).is_dir():
        raise ModelError(f"{rec.ref}'s run folder '{rec.artefact}' is gone: restore it or use another version")
    return Path(rec.artefact)


def run_folder(ref: str) -> Path:
    """A CLI argument parser (``typer.Argument(parser=run_folder)``): a run folder, or a model version of the
    workspace store (``intents@v2``, ``intents@latest``) turned into its run folder."""
    return resolve_run(ref)


def adopt_folder(
    path: str | os.PathLike[str],
    *,
    model: str,
    fingerprint: str,
    task: str | None,
    kind: str = "finetune",
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    url: str | None = None,
) -> RunRecord:
    """Register a finished run folder that has no version in this store (trained before lineages, with
    ``registry: false``, or on another machine) as the next version of ``model`` and return its row."""
    if kind not in MODEL_KINDS:
        raise ConfigError(f"only {', '.join(MODEL_KINDS)} runs are model versions (got '{kind}')")
    run_id = start_run(kind, name=Path(path).name, task=task, config=config or {}, artefact=path, model=model, url=url)
    finish_run(run_id, "finished", metrics=metrics or {}, fingerprint=fingerprint, url=url)
    engine = _read_engine(url)
    assert engine is not None
    found = _select(engine, runs.c.id == run_id)
    return found[0]
