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
    """A validated text, how many labels the caller wants back, and whether to explain the prediction."""

    text: str
    top_k: int = 1
    explain: bool = False


def _text_of(item: Any) -> tuple[str, int, bool]:
    """The text, top_k and explain flag of an item ``{"text": str, "top_k": int, "explain": bool}`` (or a bare
    string); never coerces."""
    if isinstance(item, str):
        text, top_k, explain = item, 1, False
    elif isinstance(item, dict) and "text" in item:
        text, top_k, explain = item["text"], item.get("top_k", 1), item.get("explain", False)
    else:
        raise InputError("each input must be a string or an object with a 'text' string")
    if not isinstance(text, str):
        raise InputError(f"'text' must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("'text' is empty (or only whitespace): send the text to classify")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"'top_k' must be a positive integer, got {top_k!r}")
    if not isinstance(explain, bool):
        raise InputError(f"'explain' must be true or false, got {explain!r}")
    return text, top_k, explain


class TextClassificationHandler:
    """A text-classification run served by the torch `Predictor` or the ONNX `OnnxPredictor` (same interface)."""

    task = "text-classification"

    def __init__(self, predictor: Any, model_name: str, model_version: str, meta: dict[str, Any]) -> None:
        self.predictor = predictor
        self.model_name = model_name
        self.model_version = model_version
        self.meta = meta
        self.labels: list[str] = list(predictor.labels)
        # why `"explain": true` is refused by this handler (checked per request, before the batch), or None
        self.explain_refusal = _explain_refusal(predictor, meta)

    def validate(self, item: Any) -> TextInput:
        text, top_k, explain = _text_of(item)
        if explain and self.explain_refusal is not None:
            raise InputError(self.explain_refusal, 422, "explain_not_available")
        return TextInput(text, min(top_k, len(self.labels)), explain)

    def predict_batch(self, inputs: list[TextInput]) -> list[dict[str, Any]]:
        # the one prediction answer (growthcurve.evaluation.answer), built by the predictor as on the CLI
        texts, top_k, explain = [x.text for x in inputs], [x.top_k for x in inputs], [x.explain for x in inputs]
        answers: list[dict[str, Any]] = self.predictor.answer(texts, top_k=top_k, explain=explain)
        return answers


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
        text, _, explain = _text_of(item)
        if explain:
            raise InputError(
                "explanations cover text-classification runs; this model tags tokens", 422, "explain_not_available"
            )
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


def _explain_refusal(predictor: Any, meta: dict[str, Any]) -> str | None:
    """Why this handler cannot explain its predictions (ONNX graphs give no gradients; int8 runs neither)."""
    if type(predictor).__name__ == "OnnxPredictor":
        return "explanations need the torch model's gradients: this server runs --backend onnx"
    from growthcurve.training.explain import why_no_explanations

    return why_no_explanations(meta)


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
