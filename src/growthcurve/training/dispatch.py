"""Route a finetune config to the recipe of its kind (see `growthcurve.training.registry`)."""

from __future__ import annotations

from growthcurve.config import FinetuneConfig
from growthcurve.training.registry import kind_for
from growthcurve.training.runfolder import RunResult
from growthcurve.training.tracking import recorded


def run_finetune(cfg: FinetuneConfig, progress: bool = True) -> RunResult:
    """Run the recipe that fits ``cfg.task`` / ``cfg.model.type``; the run registry marks it failed or
    interrupted when the recipe raises (every recipe passes through here)."""
    recipe = kind_for(cfg.task, cfg.model.type).function("recipe")
    with recorded():
        return recipe(cfg, progress=progress)
