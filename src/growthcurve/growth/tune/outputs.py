"""What a study leaves besides ``best.yaml`` and ``tune.json``: ``trials.csv`` (one row per trial) and
Optuna's importance and parallel-coordinate plots (matplotlib, PNG)."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from growthcurve.atomic import atomic_path, write_text


def write_trials_csv(path: Path, trials: Sequence[FrozenTrial], keys: Sequence[str]) -> None:
    """One row per trial: number, state, value, duration, pruned epoch, why it failed, run folder, every param."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["number", "state", "value", "duration_s", "pruned_at_epoch", "fail_reason", "run_dir", *keys])
    for t in trials:
        dur = t.duration.total_seconds() if t.duration is not None else None
        w.writerow(
            [
                t.number,
                t.state.name.lower(),
                "" if t.value is None else t.value,
                "" if dur is None else round(dur, 3),
                t.user_attrs.get("pruned_at_epoch") or "",
                t.user_attrs.get("fail_reason", ""),
                t.user_attrs.get("run_dir", ""),
                *(t.params.get(k, "") for k in keys),
            ]
        )
    write_text(path, buf.getvalue())


def write_plots(study: optuna.Study, out: Path, n_params: int) -> tuple[dict[str, str], dict[str, str]]:
    """Optuna's parameter-importance and parallel-coordinate plots (matplotlib backend) as PNG; returns the
    written paths and, for each plot skipped, why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    written: dict[str, str] = {}
    skipped: dict[str, str] = {}
    plots: dict[str, tuple[Callable[[optuna.Study], Any], bool, str]] = {
        "importance": (
            ovm.plot_param_importances,
            complete >= 2 and n_params > 1,
            f"needs >= 2 complete trials and > 1 parameter ({complete} complete, {n_params} parameter(s))",
        ),
        # one trial draws flat axes (matplotlib warns of singular limits): there is nothing to compare yet
        "parallel_coordinate": (
            ovm.plot_parallel_coordinate,
            complete >= 2,
            f"needs >= 2 complete trials ({complete} complete)",
        ),
    }
    for name, (plot, ok, why) in plots.items():
        if not ok:
            skipped[name] = why
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a parameter every complete trial shares gives a flat axis; matplotlib widens it and warns
            warnings.filterwarnings("ignore", "Attempting to set identical low and high ylims", UserWarning)
            ax = plot(study)
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(9, 5.5)
        fig.tight_layout()
        path = out / f"{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        written[name] = str(path)
    return written, skipped
