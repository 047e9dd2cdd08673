"""Serve run folders over HTTP: micro-batched predictions, feedback into the store, model-version A/B.

``create_app(handlers, settings, store_url)`` builds the FastAPI app; ``load_handler(run_dir)`` turns a run
folder into a handler; applications write their own `Handler` (see docs/serving.md).
"""

from growthcurve.serving.app import FeedbackRequest, PredictRequest, ServingCore, create_app, get_core, require_api_key
from growthcurve.serving.assign import assign_variant, parse_weights, unit_uniform, variant_names
from growthcurve.serving.handlers import (
    Handler,
    InputError,
    TextClassificationHandler,
    TokenClassificationHandler,
    load_handler,
    model_version,
)
from growthcurve.serving.settings import ServeSettings

__all__ = [
    "FeedbackRequest",
    "Handler",
    "InputError",
    "PredictRequest",
    "ServeSettings",
    "ServingCore",
    "TextClassificationHandler",
    "TokenClassificationHandler",
    "assign_variant",
    "create_app",
    "get_core",
    "load_handler",
    "model_version",
    "parse_weights",
    "require_api_key",
    "unit_uniform",
    "variant_names",
]
