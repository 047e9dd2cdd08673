"""Hyperparameter search over a finetune config with Optuna: `growthcurve tune CONFIG --trials N`.

Reads top to bottom: parse the config and its ``search:`` block into Optuna distributions (every bound checked
against the finetune schema before anything is written) → open or resume an RDB-backed study (SQLite by
default, PostgreSQL by URL: several workers on several machines share one study, Optuna's own distributed
mode) → run each trial as a normal ``run_finetune`` in ``OUT/trials/<n>/``, pruned from its per-epoch dev
metric through ``loop.on_epoch_end`` → write ``best.yaml``, ``trials.csv``, ``tune.json`` and Optuna's
importance and parallel-coordinate plots.

Trials train without the test split (``data.test`` is unset for them): the search only ever sees dev numbers,
so the test score of the best config stays an honest estimate. ``best.yaml`` restores the user's test file.

The package follows the four parts: ``space`` (config and search space), ``storage`` (the study database),
``tuner`` (the search), ``outputs`` (trials.csv and the plots).
"""

from __future__ import annotations

from growthcurve.growth.tune.outputs import write_plots, write_trials_csv
from growthcurve.growth.tune.space import (
    FROZEN,
    TUNE_KEYS,
    TuneSpec,
    default_space,
    describe,
    load_tune_spec,
    parse_space,
)
from growthcurve.growth.tune.storage import check_storage, default_storage, space_changes
from growthcurve.growth.tune.tuner import PRUNERS, Tuner, TuneSummary, fail_dead_trials, make_pruner, suggest
from growthcurve.store import masked_url as mask_url  # tune's name, kept for its callers

__all__ = [
    "FROZEN",
    "PRUNERS",
    "TUNE_KEYS",
    "TuneSpec",
    "TuneSummary",
    "Tuner",
    "check_storage",
    "default_space",
    "default_storage",
    "describe",
    "fail_dead_trials",
    "load_tune_spec",
    "make_pruner",
    "mask_url",
    "parse_space",
    "space_changes",
    "suggest",
    "write_plots",
    "write_trials_csv",
]
