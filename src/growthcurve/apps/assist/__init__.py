"""Customer-service assistant: intent classifier + FAQ retrieval (faiss) + calibrated handoff to a human.

`fit_assistant(cfg)` writes a run folder, `AssistRun(path)` answers questions from it, `AssistHandler` serves
it on the serving layer (POST /answer), `evaluate_assistant` measures it. See docs/assist.md.
"""

from growthcurve.apps.assist.calibration import apply_temperature, choose_threshold, coverage_curve, fit_temperature
from growthcurve.apps.assist.config import AssistConfig, load_assist_config
from growthcurve.apps.assist.pipeline import AssistRun, evaluate_assistant, fit_assistant

__all__ = [
    "AssistConfig",
    "AssistRun",
    "apply_temperature",
    "choose_threshold",
    "coverage_curve",
    "evaluate_assistant",
    "fit_assistant",
    "fit_temperature",
    "load_assist_config",
]
