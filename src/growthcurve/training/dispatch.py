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
    if cfg.task == "text-classification" and cfg.model.type in ("rnn", "textcnn", "tfidf"):
        from growthcurve.training.baseline import finetune_baseline

        return finetune_baseline(cfg, progress=progress)
    if cfg.task == "token-classification":
        from growthcurve.training.token import finetune_tokens

        return finetune_tokens(cfg, progress=progress)
    if cfg.task == "image-classification":
        from growthcurve.training.image import finetune_image

        return finetune_image(cfg, progress=progress)
    raise ConfigError(
        f"task={cfg.task} with model.type={cfg.model.type} is not available in this build; "
        "use task=text-classification with model.type=transformer"
    )
