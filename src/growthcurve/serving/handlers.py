"""What a served model must offer the server: the `Handler` protocol, and the text and token handlers.

The server core (micro-batching, store, A/B, limits, metrics) only ever talks to this protocol, so an
application (customer service, sentiment monitor, recommender) plugs its own model in by writing one
class with these members instead of a second server. See docs/serving.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from growthcurve.errors import GrowthcurveError, ModelError
from growthcurve.training.runfolder import model_version

__all__ = [
    "Handler",
    "InputError",
    "TextClassificationHandler",
    "TextInput",
    "TokenClassificationHandler",
    "load_handler",
    "model_version",
]


class InputError(Exception):
    """A request the client can fix: the server answers ``status`` with ``message`` and keeps serving."""

    def __init__(self, message: str, status: int = 422, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@runtime_checkable
class Handler(Protocol):
    """One served model. ``validate`` runs on the event loop per item (cheap checks only, raise InputError);
    ``predict_batch`` runs in the inference thread on a micro-batch of validated inputs, one dict each."""

    model_name: str
    model_version: str
    task: str
    meta: dict[str, Any]

    def validate(self, item: Any) -> Any: ...

    def predict_batch(self, inputs: list[Any]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class TextInput:
    """A validated text and how many labels the caller wants back."""

    text: str
    top_k: int = 1


def _text_of(item: Any) -> tuple[str, int]:
    """The text and top_k of an item ``{"text": str, "top_k": int}`` (or a bare string); never coerces."""
    if isinstance(item, str):
        text, top_k = item, 1
    elif isinstance(item, dict) and "text" in item:
        text, top_k = item["text"], item.get("top_k", 1)
    else:
        raise InputError("each input must be a string or an object with a 'text' string")
    if not isinstance(text, str):
        raise InputError(f"'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("'text' is empty (or only whitespace): send the text to classify")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"'top_k' must be a positive integer, got {top_k!r}")
    return text, top_k


class TextClassificationHandler:
    """A text-classification run served by the torch `Predictor` or the ONNX `OnnxPredictor` (same interface)."""

    task = "text-classification"

    def __init__(self, predictor: Any, model_name: str, model_version: str, meta: dict[str, Any]) -> None:
        self.predictor = predictor
        self.model_name = model_name
        self.model_version = model_version
        self.meta = meta
        self.labels: list[str] = list(predictor.labels)

    def validate(self, item: Any) -> TextInput:
        text, top_k = _text_of(item)
        return TextInput(text, min(top_k, len(self.labels)))

    def predict_batch(self, inputs: list[TextInput]) -> list[dict[str, Any]]:
        probs = np.asarray(self.predictor.predict_proba([x.text for x in inputs]))
        multi = bool(self.meta.get("multi_label"))
        out = []
        for x, p in zip(inputs, probs, strict=True):
            order = np.argsort(-p)[: x.top_k]
            row: dict[str, Any] = {}
            if multi:
                row["labels"] = [self.labels[i] for i in np.flatnonzero(p >= 0.5)]
                row["label"] = None
                row["score"] = None
            else:
                row["label"] = self.labels[int(order[0])]
                row["score"] = round(float(p[order[0]]), 6)
            row["top_k"] = [{"label": self.labels[int(i)], "probability": round(float(p[i]), 6)} for i in order]
            out.append(row)
        return out


class TokenClassificationHandler:
    """A token-classification (NER) run: entity spans with character offsets into the sent text."""

    task = "token-classification"

    def __init__(self, predictor: Any, model_name: str, model_version: str, meta: dict[str, Any]) -> None:
        self.predictor = predictor
        self.model_name = model_name
        self.model_version = model_version
        self.meta = meta
        self.labels: list[str] = list(predictor.labels)

    def validate(self, item: Any) -> TextInput:
        text, _ = _text_of(item)
        return TextInput(text, 1)

    def predict_batch(self, inputs: list[TextInput]) -> list[dict[str, Any]]:
        rows = self.predictor.predict([x.text for x in inputs])
        out = []
        for r in rows:
            ents = r["entities"]
            top = max(ents, key=lambda e: e["score"]) if ents else None
            # label/score summarise the answer for the predictions table; the entities are the answer
            out.append(
                {
                    "entities": ents,
                    "label": None if top is None else top["type"],
                    "score": None if top is None else top["score"],
                }
            )
        return out


def _read_meta(run_dir: Path) -> tuple[Path, dict[str, Any], list[str]]:
    """`read_meta` with a corrupt (unreadable JSON) run reported as one ModelError line."""
    from growthcurve.training.runfolder import read_meta

    try:
        return read_meta(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"run folder '{run_dir}' is corrupt: its run.json or labels.json is not JSON ({exc})"
        ) from None
    except FileNotFoundError as exc:
        raise ModelError(f"run folder '{run_dir}' is half-written: {exc.filename} is missing") from None


def check_servable(run: Path, backend: str, quantize: str | None) -> tuple[Path, dict[str, Any], str]:
    """The cheap start-up checks of a run folder (its metadata, task and backend), before any model loads or
    any store is opened; returns (model folder, metadata, task)."""
    if quantize is not None and backend != "onnx":
        raise ModelError("--quantize applies to --backend onnx (the torch backend serves the run's weights)")
    model_dir, meta, _labels = _read_meta(run)
    task = meta.get("task", "text-classification")
    if task not in ("text-classification", "token-classification"):
        raise ModelError(
            f"run '{run}' is a {task} run: serve answers text-classification and token-classification runs"
        )
    if backend == "onnx" and task != "text-classification":
        raise ModelError(f"run '{run}' is a {task} run: the onnx backend serves text-classification runs")
    return model_dir, meta, task


def load_handler(
    run_dir: str | Path,
    backend: str = "torch",
    batch_size: int = 64,
    quantize: str | None = None,
    threads: int | None = None,
) -> Any:
    """Load a run folder into a handler; every way the folder can be unusable is one ModelError line.

    ``backend="onnx"`` serves the run's ONNX export (``quantize="int8"``: its int8 graph).
    """
    run = Path(run_dir)
    model_dir, meta, task = check_servable(run, backend, quantize)
    predictor: Any  # an OnnxPredictor or a Predictor: the same predict/labels contract
    if backend == "onnx":
        try:
            from growthcurve.compression.onnx import OnnxPredictor
        except ImportError as exc:
            raise ModelError(
                f"--backend onnx needs growthcurve.compression.onnx, which cannot be imported ({exc}); "
                "use --backend torch"
            ) from None
        try:
            predictor = OnnxPredictor(run, quantize=quantize, batch_size=batch_size, threads=threads)
        except GrowthcurveError:
            raise  # a missing export already says which `growthcurve export` to run
        except Exception as exc:  # onnxruntime raises its own types for a broken graph
            raise ModelError(f"cannot load the ONNX export of '{run}': {type(exc).__name__}: {exc}") from None
        # the export's own id: an int8 or re-exported graph answers differently from the torch weights
        version = str(getattr(predictor, "model_version", "") or model_version(run / "onnx"))[:12]
    elif backend == "torch":
        version = model_version(model_dir)  # before loading: a folder without weights fails with a clear line
        from growthcurve.training.inference import Predictor

        try:
            predictor = Predictor(run, batch_size=batch_size)
        except ModelError:
            raise
        except Exception as exc:  # transformers/safetensors raise OSError, ValueError, ... on a broken folder
            raise ModelError(f"cannot load run '{run}': {type(exc).__name__}: {exc}") from None
    else:
        raise ModelError(f"--backend must be torch or onnx (got '{backend}')")
    name = str(meta.get("name") or run.resolve().name)
    cls = TokenClassificationHandler if task == "token-classification" else TextClassificationHandler
    return cls(predictor, name, version, meta)
