"""Text-aware recommender: a two-tower text encoder fine-tuned on interactions, blended with ALS.

Public API: `fit_run`, `evaluate_run`, `RecommenderRun`, `load_recommender_config`, the baselines and
metrics modules, and the synthetic generator.
"""

from growthcurve.apps.recommender.config import RecommenderConfig, load_recommender_config
from growthcurve.apps.recommender.pipeline import (
    EvalResult,
    RecommenderRun,
    evaluate_recommenders,
    evaluate_run,
    fit_run,
)

__all__ = [
    "EvalResult",
    "RecommenderConfig",
    "RecommenderRun",
    "evaluate_run",
    "evaluate_recommenders",
    "fit_run",
    "load_recommender_config",
]
