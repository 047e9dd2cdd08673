"""Route a finetune config to the recipe for its task and model type."""

from __future__ import annotations

from typing import Any

from growthcurve.config import FinetuneConfig
from growthcurve.errors import ConfigError


def run_finetune(cfg: FinetuneConfig, progress: bool = True) -> Any:
    """Run the recipe that fits ``cfg.task`` / ``cfg.model.type``."""
    if cfg.task == "text-classification" and cfg.model.type == "transformer":
        from growthcurve.training.text import finetune_text

        return finetune_text(cfg, progress=progress)
    raise ConfigError(
        f"task={cfg.task} with model.type={cfg.model.type} is not available in this build; "
        "use task=text-classification with model.type=transformer"
    )
