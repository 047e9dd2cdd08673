"""Which model version a served run folder is: its lineage name (``intents@v2``) in the store it serves into.

`serve` names every served folder before it loads a model: a finished folder the store knows is that version;
a finished folder the store does not know (trained before lineages, with ``registry: false``, or elsewhere) is
registered now as the next version of its model; an unfinished folder is refused. The folder's weights are
checked by fingerprint, so a folder that was trained over again is never served under its old name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from growthcurve.config import default_model_name
from growthcurve.errors import ConfigError, ModelError
from growthcurve.store.lineage import adopt_folder, version_by_fingerprint, version_of_folder
from growthcurve.store.registry import RunRecord
from growthcurve.training.runfolder import is_finished, model_version, read_meta

__all__ = ["ServedVersion", "check_one_model", "served_version"]


@dataclass
class ServedVersion:
    """A run folder as served: its version's registry row, and whether serve registered it just now."""

    run_dir: Path
    record: RunRecord
    adopted: bool

    @property
    def ref(self) -> str:
        assert self.record.ref is not None
        return self.record.ref


def _config_of(run_dir: Path) -> dict[str, Any]:
    """The run's saved config as a plain mapping ({} when absent or unreadable: only its name is needed)."""
    try:
        raw = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def model_name_of(run_dir: Path, meta: dict[str, Any]) -> str:
    """The lineage name a folder's config gives (``name``, else from its training data), or its folder name."""
    cfg = _config_of(run_dir)
    if cfg.get("name"):
        return str(cfg["name"])
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else None
    if data is not None:
        return default_model_name(data.get("train"))
    return default_model_name(str(run_dir.resolve() / "train.csv"))  # no config: the folder's own name


def served_version(run_dir: str | Path, url: str, kind: str = "finetune") -> ServedVersion:
    """The version ``run_dir`` holds in the store at ``url``; a finished folder without one is registered."""
    run = Path(run_dir)
    model_dir, meta, _labels = read_meta(run)
    check_finished(run)
    fp = model_version(model_dir)
    rec = version_of_folder(run, fp, url) or version_by_fingerprint(fp, url)
    if rec is not None:
        return ServedVersion(run, rec, False)
    metrics: dict[str, Any] = {}
    try:
        summary = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        metrics = {k: summary[k] for k in ("dev", "test", "best_epoch") if summary.get(k) is not None}
    except (OSError, ValueError, AttributeError):  # a compressed run keeps compress.json instead
        pass
    rec = adopt_folder(
        run,
        model=model_name_of(run, meta),
        fingerprint=fp,
        task=meta.get("task"),
        kind=kind,
        config=_config_of(run),
        metrics=metrics,
        url=url,
    )
    return ServedVersion(run, rec, True)


def check_finished(run: Path) -> None:
    """An unfinished folder (still training, interrupted, half-written) is no model version: refused."""
    if not is_finished(run):
        raise ModelError(
            f"'{run}' has not finished (no metrics.json): it is not a model version yet; wait for the run to end, "
            "or serve a finished version"
        )


def check_one_model(folders: list[Path], allow_mixed: bool) -> None:
    """An experiment compares versions of one model; folders whose configs name different models need
    ``allow_mixed`` (checked from the folders alone, before any store is opened)."""
    names = {f: model_name_of(f, {}) for f in folders}
    if len(set(names.values())) > 1 and not allow_mixed:
        served = ", ".join(f"{f} ({n})" for f, n in names.items())
        raise ConfigError(
            f"the runs are versions of different models ({served}): an experiment compares versions of one model; "
            "pass --allow-mixed-models to compare them anyway (the analysis will say so)"
        )
