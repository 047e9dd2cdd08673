"""Route a finetune config to the recipe of its kind (see `growthcurve.training.registry`)."""

from __future__ import annotations

from pathlib import Path

from growthcurve.config import FinetuneConfig
from growthcurve.training.loop import CHECKPOINT, Interrupted
from growthcurve.training.registry import kind_for
from growthcurve.training.runfolder import RunResult
from growthcurve.training.tracking import recorded


def run_finetune(cfg: FinetuneConfig, progress: bool = True) -> RunResult:
    """Run the recipe that fits ``cfg.task`` / ``cfg.model.type``; the run registry marks it failed or
    interrupted when the recipe raises (every recipe passes through here)."""
    recipe = kind_for(cfg.task, cfg.model.type).function("recipe")
    with recorded():
        try:
            result: RunResult = recipe(cfg, progress=progress)
            return result
        except KeyboardInterrupt:
            # Ctrl-C outside the loop's own handler (tokenising, building the model, scoring the best model):
            # the same one line as a stop during training, saying whether there is anything to resume
            raise interrupted_outside_the_loop(cfg) from None


def interrupted_outside_the_loop(cfg: FinetuneConfig) -> Interrupted:
    """The error for a Ctrl-C the training loop did not catch, naming the checkpoint a rerun resumes from."""
    checkpoint = Path(cfg.output_dir) / CHECKPOINT
    if checkpoint.is_file():
        return Interrupted(f"stopped; checkpoint kept in {checkpoint}. Run the same command again to resume")
    return Interrupted(
        "stopped before the first checkpoint (while preparing the data or the model): nothing to resume. "
        "Run the same command again to start"
    )
