"""Build the model a config asks for, and load a trained one back from its run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from growthcurve.config import FinetuneConfig
from growthcurve.models.hf import load_pretrained, load_sequence_classifier


def build_model(cfg: FinetuneConfig, model_path: str, labels: list[str], multi_label: bool) -> Any:
    """A sequence classifier on the pretrained encoder at ``model_path``."""
    return load_sequence_classifier(model_path, labels, multi_label, cfg.model.dropout)


def load_trained(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """Model and tokenizer saved by a finished run."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = load_pretrained(AutoModelForSequenceClassification, str(model_dir))
    tokenizer = load_pretrained(AutoTokenizer, str(model_dir))
    return model, tokenizer


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
