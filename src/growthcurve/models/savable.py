"""What models trained from scratch share: weights as safetensors plus constructor arguments as JSON.

The BiLSTM/TextCNN baselines, the BiLSTM tagger and the image classifiers are plain ``nn.Module``s
without a Hugging Face config; `Savable` gives them ``save_pretrained`` and `load_savable` rebuilds any
of them from ``architecture.json``, so every run folder reloads with one call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from growthcurve.atomic import atomic_path, write_json
from growthcurve.errors import ModelError

WEIGHTS_FILE = "model.safetensors"
ARCH_FILE = "architecture.json"


@dataclass
class ClassifierOutput:
    """What our own models return: the logits, like a Hugging Face model output."""

    logits: torch.Tensor


class Savable(nn.Module):
    """Weights as safetensors plus the constructor arguments as JSON, so the model rebuilds exactly."""

    architecture: dict[str, Any]

    def save_pretrained(self, path: str | Path, safe_serialization: bool = True) -> None:
        """Write ``model.safetensors`` and ``architecture.json`` into ``path``."""
        from safetensors.torch import save_model

        path = Path(path)
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_model(self, str(tmp))
        write_json(path / ARCH_FILE, {"class": type(self).__name__, "kwargs": self.architecture})


def load_savable(model_dir: str | Path, classes: Mapping[str, type[Savable]]) -> Savable:
    """Rebuild the model saved in ``model_dir`` from its ``architecture.json``; the class must be in ``classes``."""
    from safetensors.torch import load_model

    model_dir = Path(model_dir)
    arch_file = model_dir / ARCH_FILE
    if not arch_file.is_file():
        raise ModelError(f"'{model_dir}' has no {ARCH_FILE}; the run folder is incomplete")
    try:
        arch = json.loads(arch_file.read_text(encoding="utf-8"))
        name, kwargs = arch["class"], arch["kwargs"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ModelError(f"'{arch_file}' is corrupt (not the JSON a growthcurve run writes)") from None
    cls = classes.get(name)
    if cls is None:
        raise ModelError(f"'{arch_file}': unknown model class {name!r} (expected one of {', '.join(classes)})")
    model = cls(**kwargs)
    load_model(model, str(model_dir / WEIGHTS_FILE))
    return model


class NullTokenizer:
    """Stands in for a tokenizer where the model holds its own input processing (TF-IDF, images)."""

    def save_pretrained(self, path: str | Path) -> None:
        """Nothing to write: the model's own preprocessing is saved with the model."""
