"""Build the Hugging Face model a config asks for (text or token classification, full or PEFT) and load a
trained one back from its model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from growthcurve.config import FinetuneConfig
from growthcurve.models.fastpath import first_token_last_layer
from growthcurve.models.hf import load_pretrained, load_sequence_classifier, load_tokenizer
from growthcurve.models.peft_methods import apply_method, load_method_model
from growthcurve.models.vocab import VocabExtension


def build_model(
    cfg: FinetuneConfig, model_path: str, labels: list[str], multi_label: bool, vocab: VocabExtension | None = None
) -> Any:
    """A sequence classifier on the pretrained encoder at ``model_path``, its embeddings grown for ``vocab``,
    wrapped for ``cfg.method``."""
    model = load_sequence_classifier(model_path, labels, multi_label, cfg.model.dropout)
    model = with_method(model, cfg, model_path, vocab)
    if cfg.model.first_token_only:
        first_token_last_layer(model)
    return model


def build_token_model(
    cfg: FinetuneConfig, model_path: str, tags: list[str], vocab: VocabExtension | None = None
) -> Any:
    """AutoModelForTokenClassification on the pretrained encoder with our tag map (a new head), its embeddings
    grown for ``vocab``, wrapped for ``cfg.method``."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = load_pretrained(AutoConfig, model_path)
    config.num_labels = len(tags)
    config.id2label = dict(enumerate(tags))
    config.label2id = {t: i for i, t in enumerate(tags)}
    if cfg.model.dropout is not None:
        for key in ("hidden_dropout_prob", "classifier_dropout", "dropout"):
            if hasattr(config, key):
                setattr(config, key, cfg.model.dropout)
    model = load_pretrained(AutoModelForTokenClassification, model_path, config=config)
    return with_method(model, cfg, model_path, vocab)


def with_method(model: Any, cfg: FinetuneConfig, model_path: str, vocab: VocabExtension | None = None) -> Any:
    """Grow the embeddings for ``vocab``, then apply the parameter-efficient method of ``cfg`` (LoRA,
    adapters...) to a freshly built model.

    The resize comes first because a PEFT method trains the new rows through peft's trainable tokens, which
    index the grown table when the method wraps the model.
    """
    if vocab is not None:
        vocab.resize(model)
    if cfg.method == "full":
        return model
    new = range(vocab.old_size, vocab.new_size) if vocab is not None and vocab.extended else range(0)
    return apply_method(model, cfg, model_path, new_tokens=new)


def load_hf_run(model_dir: Path, meta: dict[str, Any]) -> tuple[Any, Any]:
    """Model and tokenizer of a finished transformer run (text or token classification, full or PEFT)."""
    if meta.get("method", "full") != "full":  # PEFT: base model + the run's task-specific weights
        return load_method_model(model_dir, meta), load_tokenizer(str(model_dir))
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    token = meta.get("task") == "token-classification"
    cls = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
    model = load_pretrained(cls, str(model_dir))
    if not token and meta.get("first_token_only", True):  # the last-layer path training used: same logits
        first_token_last_layer(model)
    return model, load_pretrained(AutoTokenizer, str(model_dir))


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
