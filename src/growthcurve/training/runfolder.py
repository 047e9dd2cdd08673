"""The run folder: what a finished run leaves behind and how to load it back with one call.

Which loader reads a model folder is the registry's business (`growthcurve.training.registry`); this module
owns the layout, the atomic writes and the result a recipe returns.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from growthcurve.errors import ModelError
from growthcurve.io import write_json, write_text
from growthcurve.training.registry import kind_of

RUN_FILE = "run.json"
MODEL_DIR = "model"


@dataclass
class RunResult:
    """What a finetune recipe returns: where the run is and how it went."""

    run_dir: Path
    labels: list[str]
    best_epoch: int
    dev: dict[str, float]
    test: dict[str, float] | None
    history: list[dict[str, Any]]
    train_seconds: float
    train_samples_per_s: float
    precision: str
    trainable_params: int
    total_params: int
    peak_rss_mb: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class LoadedRun:
    """A reloaded run: the model in eval mode, its tokenizer, labels and metadata."""

    model: Any
    tokenizer: Any
    labels: list[str]
    meta: dict[str, Any]
    path: Path


def save_model_dir(run_dir: Path, model: Any, tokenizer: Any, labels: list[str], meta: dict[str, Any]) -> None:
    """Write the run's ``model/`` folder (see `write_model_folder`)."""
    write_model_folder(run_dir / MODEL_DIR, model, tokenizer, labels, meta)


def write_model_folder(final: Path, model: Any, tokenizer: Any, labels: list[str], meta: dict[str, Any]) -> None:
    """Write model + tokenizer (safetensors), labels and metadata to ``final``, swapped in atomically."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        unwrapped = getattr(model, "module", model)
        unwrapped.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "labels.json", labels)
        write_json(tmp / RUN_FILE, meta)
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_config(run_dir: Path, cfg: Any) -> None:
    """Save the resolved config as YAML so the run can be reproduced."""
    write_text(
        run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    )


def read_meta(run_dir: str | Path) -> tuple[Path, dict[str, Any], list[str]]:
    """Locate the model folder of a run (or a model folder itself) and read its metadata and labels."""
    p = Path(run_dir)
    if not p.exists():
        raise ModelError(f"run folder '{p}' does not exist")
    model_dir = p / MODEL_DIR if (p / MODEL_DIR).is_dir() else p
    meta_file = model_dir / RUN_FILE
    if not meta_file.is_file():
        raise ModelError(
            f"'{p}' is not a growthcurve run folder (no {MODEL_DIR}/{RUN_FILE}); did the run finish an epoch?"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    return model_dir, meta, labels


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run folder's best model for inference: ``load_run("runs/latest").model``."""
    model_dir, meta, labels = read_meta(run_dir)
    model, tokenizer = kind_of(meta).load(model_dir, meta)
    model.eval()
    return LoadedRun(model, tokenizer, labels, meta, model_dir)
