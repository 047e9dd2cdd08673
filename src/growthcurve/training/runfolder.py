"""The run folder: what a finished run leaves behind and how to load it back with one call.

Which loader reads a model folder is the registry's business (`growthcurve.training.registry`); this module
owns the layout, the atomic writes and the result a recipe returns.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from safetensors import SafetensorError

from growthcurve.atomic import swap_in_dir, write_json, write_text
from growthcurve.config import config_yaml
from growthcurve.errors import ModelError
from growthcurve.models.quantize import quantize_dynamic_int8
from growthcurve.training.registry import kind_of

RUN_FILE = "run.json"
MODEL_DIR = "model"
# What a run writes into its folder (and what `clear_run` removes when a run starts over with resume=false).
RUN_ARTEFACTS = (
    "config.yaml",
    "metrics.json",
    MODEL_DIR,
    "checkpoints",
    "tensorboard",
    "training_curves.png",
    "README.md",
    "classification_report_*",
    "confusion_matrix_*",
    "ner_report_*",
    "ner_f1_*",
    "predictions_*",
    "probabilities_*",
    "explanations_*",
    "eval-*",
    "merged",
    "onnx",
)


# Files whose bytes decide what a model answers; tokenizer files are left out on purpose (they rarely change
# alone and some tokenizers rewrite them on save), run.json and labels.json are in (they change the meaning), and
# so is ood.json, the out-of-scope detector's choice and threshold (adding or refitting one changes the answers).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".skops", ".joblib", ".pkl", ".data")
_META_FILES = ("run.json", "labels.json", "ood.json")


def model_version(model_dir: str | Path) -> str:
    """The served fingerprint of a model folder: the first 12 hex of sha256 over its weight files and
    run.json/labels.json/ood.json (path + bytes). The lineage (``intents@v2``) names a version; this hash proves which
    weights answered. Stable across copies and restarts of the same model, different for any retrained or
    re-exported one.
    """
    root = Path(model_dir)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and (p.name in _META_FILES or p.suffix in _WEIGHT_SUFFIXES) and not p.name.startswith(".")
    )
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in files):
        raise ModelError(f"'{root}' holds no weight files ({', '.join(_WEIGHT_SUFFIXES)}): is the run half-written?")
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()[:12]


@dataclass(kw_only=True)
class RunResult:
    """What a finetune recipe returns: where the run is and how it went (built by name: ``kw_only``)."""

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
    ref: str | None = None  # the model version this run became (``intents@v2``); None when not recorded


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
        swap_in_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_config(run_dir: Path, cfg: BaseModel) -> None:
    """Save the resolved config as YAML so the run can be reproduced."""
    write_text(run_dir / "config.yaml", config_yaml(cfg))


def is_finished(run_dir: str | Path) -> bool:
    """A run folder whose training ended: ``metrics.json`` (finetune, retrain) or ``compress.json`` (compress)
    is written last, so a folder with neither is still training, was interrupted, or is half-written."""
    p = Path(run_dir)
    return (p / "metrics.json").is_file() or (p / "compress.json").is_file()


def run_artefacts(run_dir: Path) -> list[Path]:
    """The files and folders of a run present in ``run_dir`` (empty for a new or foreign folder)."""
    if not run_dir.is_dir():
        return []
    return sorted({p for pattern in RUN_ARTEFACTS for p in run_dir.glob(pattern)})


def clear_run(run_dir: Path) -> None:
    """Remove a previous run's artefacts so a new run starts clean (``resume=false``); other files stay."""
    for p in run_artefacts(run_dir):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _read_json(path: Path, what: str, kind: type) -> Any:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"'{path}' is missing: the run folder is incomplete; retrain or restore it") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(
            f"'{path}' is corrupt (not valid JSON): the run folder is damaged; retrain or restore it"
        ) from None
    if not isinstance(value, kind):
        raise ModelError(f"'{path}' does not hold {what}: the run folder is damaged; retrain or restore it")
    return value


def read_meta(run_dir: str | Path) -> tuple[Path, dict[str, Any], list[str]]:
    """Locate the model folder of a run (or a model folder itself) and read its metadata and labels."""
    p = Path(run_dir)
    if not p.exists():
        raise ModelError(f"run folder '{p}' does not exist")
    if not p.is_dir():
        raise ModelError(f"'{p}' is a file; give the run folder that `growthcurve finetune` wrote")
    model_dir = p / MODEL_DIR if (p / MODEL_DIR).is_dir() else p
    if not (model_dir / RUN_FILE).is_file():
        raise ModelError(
            f"'{p}' is not a growthcurve run folder (no {MODEL_DIR}/{RUN_FILE}); did the run finish an epoch?"
        )
    meta = _read_json(model_dir / RUN_FILE, "the run's metadata (an object)", dict)
    labels = _read_json(model_dir / "labels.json", "the label list", list)
    if not all(isinstance(x, str) for x in labels):
        raise ModelError(
            f"'{model_dir / 'labels.json'}' does not hold a list of label names: the run folder is damaged"
        )
    return model_dir, meta, labels


# What damaged weights, tokenizers and pipelines raise while loading: safetensors' header errors, torch/
# skops/zip errors on truncated files. The Rust `tokenizers` library raises a bare `Exception` for a broken
# tokenizer.json; our own code never raises a bare Exception, so that one is read as damage too.
_CORRUPT = (OSError, ValueError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile, SafetensorError)


def _is_damage(exc: Exception) -> bool:
    return isinstance(exc, _CORRUPT) or type(exc) is Exception


def load_run(run_dir: str | Path, int8: bool | None = None) -> LoadedRun:
    """Load a run folder's best model for inference: ``load_run("runs/latest").model``.

    ``int8``: apply dynamic int8 quantisation to the Linear layers; None does what the run says (a
    ``compress --quantize dynamic-int8`` run), False gives the stored fp32 model (exporters quantise their own way).
    """
    model_dir, meta, labels = read_meta(run_dir)
    try:
        model, tokenizer = kind_of(meta).load(model_dir, meta)
    except ModelError:
        raise
    except Exception as exc:
        if not _is_damage(exc):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(
            f"cannot load the model in '{model_dir}' ({type(exc).__name__}: {first}): the run folder is damaged "
            "or incomplete; retrain or restore it"
        ) from None
    model.eval()
    if meta.get("quantize_dynamic_int8") if int8 is None else int8:  # such runs store fp32 weights + this flag
        model = quantize_dynamic_int8(model)
    return LoadedRun(model, tokenizer, labels, meta, model_dir)
