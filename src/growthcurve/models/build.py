"""Build the model a config asks for, and load a trained one back from its run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from growthcurve.config import FinetuneConfig
from growthcurve.models.hf import load_pretrained, load_sequence_classifier


def build_model(cfg: FinetuneConfig, model_path: str, labels: list[str], multi_label: bool) -> Any:
    """A sequence classifier on the pretrained encoder at ``model_path``, wrapped for ``cfg.method``."""
    model = load_sequence_classifier(model_path, labels, multi_label, cfg.model.dropout)
    return with_method(model, cfg, model_path)


def with_method(model: Any, cfg: FinetuneConfig, model_path: str) -> Any:
    """Apply the parameter-efficient method of ``cfg`` (LoRA, adapters...) to a freshly built model."""
    if cfg.method == "full":
        return model
    from growthcurve.models.peft_methods import apply_method

    return apply_method(model, cfg, model_path)


def load_trained(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """Model and tokenizer saved by a finished run."""
    if meta.get("task") == "token-classification":
        from growthcurve.training.token import load_tagger

        return load_tagger(model_dir, meta)
    if meta.get("task", "text-classification") == "text-classification" and meta.get("model_type") in (
        "rnn",
        "textcnn",
        "tfidf",
    ):
        from growthcurve.models.baselines import load_baseline

        return load_baseline(model_dir, meta)
    if meta.get("task") == "image-classification":
        from growthcurve.models.vision import load_image_model

        return load_image_model(model_dir, meta)
    if meta.get("method", "full") != "full":  # PEFT: base model + the run's task-specific weights
        from growthcurve.models.hf import load_tokenizer
        from growthcurve.models.peft_methods import load_method_model

        return load_method_model(model_dir, meta), load_tokenizer(str(model_dir))
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = load_pretrained(AutoModelForSequenceClassification, str(model_dir))
    tokenizer = load_pretrained(AutoTokenizer, str(model_dir))
    return model, tokenizer


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
