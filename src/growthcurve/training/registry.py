"""The one map from a kind of run — (task, model type) — to the recipe that trains it, the loader that reads
it back and the functions that use it.

Loaders are called while a run folder is read (`runfolder.load_run`), so they are imported here; they all
live in `growthcurve.models`. Recipes and the inference functions sit above the run folder in the layer
order and are named by ``"module:function"``, imported on first use: that keeps `runfolder` free of every
recipe (no import circle) and keeps start-up light, the way entry points name plugins.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from growthcurve.errors import ConfigError, ModelError
from growthcurve.models.baselines import load_baseline
from growthcurve.models.build import load_hf_run
from growthcurve.models.vision import load_image_model

Loader = Callable[[Path, dict[str, Any]], tuple[Any, Any]]


@dataclass(frozen=True)
class RunKind:
    """One kind of run and the code that serves it.

    ``predict`` is ``(run, texts, pairs, batch_size) -> probabilities [n, labels]`` for classifiers, or
    ``(run, texts, batch_size) -> rows`` when ``predicts_rows`` (token classification: entity spans);
    ``evaluate`` is ``(run, data_path, out_dir, text_column, label_column, progress) -> report dict``.
    """

    name: str
    task: str
    model_types: tuple[str, ...]
    recipe: str
    load: Loader
    predict: str
    evaluate: str
    predicts_rows: bool = False
    input_key: str = "text"
    # ``(run, texts, pairs, batch_size) -> (probabilities, logits, pooled features or None)``: what the
    # out-of-scope detector (growthcurve.training.ood) and explanations read; None where none applies
    scores: str | None = None
    takes_default: bool = False  # also trains configs that left model.type at its default, "transformer"

    def function(self, which: str) -> Callable[..., Any]:
        """The recipe, predictor or evaluator of this kind (``which`` names the field)."""
        module, _, name = getattr(self, which).partition(":")
        function: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return function


_T = "growthcurve.training"
KINDS: tuple[RunKind, ...] = (
    RunKind(
        "text",
        "text-classification",
        ("transformer",),
        f"{_T}.text:finetune_text",
        load_hf_run,
        f"{_T}.inference:text_probs",
        f"{_T}.inference:evaluate_text_file",
        scores=f"{_T}.ood:text_scores",
    ),
    RunKind(
        "text-baseline",
        "text-classification",
        ("rnn", "textcnn"),
        f"{_T}.baseline:train_baseline",
        load_baseline,
        f"{_T}.inference:text_probs",
        f"{_T}.inference:evaluate_text_file",
        scores=f"{_T}.ood:text_scores",
    ),
    RunKind(
        "tfidf",
        "text-classification",
        ("tfidf",),
        f"{_T}.baseline:train_baseline",
        load_baseline,
        f"{_T}.inference:tfidf_probs",
        f"{_T}.inference:evaluate_tfidf_file",
        scores=f"{_T}.ood:tfidf_scores",
    ),
    RunKind(
        "token",
        "token-classification",
        ("transformer",),
        f"{_T}.token:finetune_tokens",
        load_hf_run,
        f"{_T}.inference:entity_rows",
        f"{_T}.inference:evaluate_token_file",
        predicts_rows=True,
    ),
    RunKind(
        "token-bilstm",
        "token-classification",
        ("rnn",),
        f"{_T}.token:finetune_tokens",
        load_baseline,
        f"{_T}.inference:entity_rows",
        f"{_T}.inference:evaluate_token_file",
        predicts_rows=True,
    ),
    # model.type defaults to "transformer" for every task; the image recipe turns that unset default into
    # cnn and refuses it when set explicitly, so it takes the default too.
    RunKind(
        "image",
        "image-classification",
        ("cnn", "vision"),
        f"{_T}.image:finetune_image",
        load_image_model,
        f"{_T}.inference:image_probs_of_paths",
        f"{_T}.inference:evaluate_image_file",
        input_key="image",
        takes_default=True,
    ),
)


def kind_for(task: str, model_type: str) -> RunKind:
    """The kind a config trains; an unknown pairing is one line that lists what the task takes."""
    for kind in KINDS:
        if kind.task == task and (
            model_type in kind.model_types or (kind.takes_default and model_type == "transformer")
        ):
            return kind
    types = [t for k in KINDS if k.task == task for t in k.model_types]
    tasks = sorted({k.task for k in KINDS})
    if not types:
        raise ConfigError(f"task={task} is not available; task is one of {', '.join(tasks)}")
    raise ConfigError(f"model.type={model_type} is not for task={task}; use {' or '.join(types)}")


def kind_of(meta: dict[str, Any]) -> RunKind:
    """The kind of a saved run, from its ``run.json``."""
    task = meta.get("task", "text-classification")
    model_type = meta.get("model_type", "transformer")
    try:
        return kind_for(task, model_type)
    except ConfigError:
        raise ModelError(f"this run's task={task} / model_type={model_type} is unknown to this growthcurve") from None
