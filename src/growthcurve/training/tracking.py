"""How a training run is recorded outside its run folder: experiment trackers (``train.report_to``) through
accelerate's tracker API, and one row in the run registry (``store/registry.py``).

The recipes call three hooks (via ``recipe.start_run`` / ``open_folder`` / ``finish_run``) and
``dispatch.run_finetune`` wraps every recipe in :func:`recorded`, so a failed or interrupted fit is marked
as such. Only the main process tracks and records. A store that cannot be reached never costs a finished
training run: it is one warning line and training goes on.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from growthcurve.config import FinetuneConfig
from growthcurve.errors import ConfigError, GrowthcurveError
from growthcurve.training.loop import Interrupted, end_trackers

__all__ = ["TRACKER_PACKAGES", "finish_tracking", "make_trackers", "recorded", "start_tracking"]

# report_to name -> the pip package that provides it (its import name is the same)
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
MLFLOW_EXPERIMENT = "growthcurve"  # MLFLOW_EXPERIMENT_NAME overrides it (accelerate's MLflowTracker reads it)


@dataclass
class _Live:
    """The run being recorded in this context: its registry id (None: not recorded) and its accelerator."""

    run_id: str | None = None
    accelerator: Any = None


_LIVE: ContextVar[_Live | None] = ContextVar("growthcurve_live_run", default=None)


def make_trackers(cfg: FinetuneConfig) -> list[Any]:
    """accelerate trackers for ``train.report_to``; a tracker that is not installed is a ConfigError now, before
    any data is read or any step is trained (accelerate itself would drop it with a debug-level log line)."""
    missing = [n for n in cfg.train.report_to if not _importable(TRACKER_PACKAGES[n])]
    if missing:
        names = ", ".join(missing)
        pip = " ".join(TRACKER_PACKAGES[n] for n in missing)
        raise ConfigError(
            f"train.report_to names {names}, which is not installed: pip install {pip} "
            f"(or remove it from train.report_to)"
        )
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    run_dir = Path(cfg.output_dir)
    trackers: list[Any] = []
    for name in cfg.train.report_to:
        if name == "tensorboard":  # RUN/tensorboard, where the event files have always been
            trackers.append(TensorBoardTracker("tensorboard", run_dir))
        elif name == "mlflow":
            trackers.append(MLflowTracker(MLFLOW_EXPERIMENT, run_name=run_dir.name))
        else:
            trackers.append(WandBTracker(MLFLOW_EXPERIMENT, name=run_dir.name, dir=str(run_dir)))
    return trackers


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a half-installed package raises instead of answering
        return False


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def mlflow_uri(run_dir: Path) -> str:
    """``MLFLOW_TRACKING_URI``, else an SQLite store in the run folder: no server. (MLflow 3 refuses the plain
    ``file:`` store unless MLFLOW_ALLOW_FILE_STORE is set, so SQLite is the local default.)"""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def start_tracking(cfg: FinetuneConfig, accelerator: Any, run_dir: Path) -> None:
    """Main process, once the run folder exists: start the trackers and register the run as ``running``."""
    live = _LIVE.get()
    if live is None:  # a recipe called directly, outside run_finetune
        live = _Live()
        _LIVE.set(live)
    live.accelerator = accelerator
    if cfg.train.report_to:
        if "mlflow" in cfg.train.report_to:
            import mlflow

            mlflow.set_tracking_uri(mlflow_uri(run_dir))  # set each run: the URI is process-global in mlflow
        if "wandb" in cfg.train.report_to:
            os.environ.setdefault("WANDB_MODE", "offline")
        accelerator.init_trackers(MLFLOW_EXPERIMENT)
        params = _flat(cfg.model_dump(mode="json"))
        for tracker in accelerator.trackers:
            if tracker.name != "tensorboard":  # TensorBoard's hparams would open a second event folder per run
                tracker.store_init_configuration(params)
    if cfg.registry:
        from growthcurve.store.registry import start_run

        live.run_id = _safely(
            lambda: start_run(
                "finetune",
                name=run_dir.name,
                task=cfg.task,
                config=cfg.model_dump(mode="json"),
                data_files=[cfg.data.train, cfg.data.dev, cfg.data.test],
                artefact=run_dir,
                model=cfg.model_name,
            )
        )


def finish_tracking(cfg: FinetuneConfig, accelerator: Any, run_dir: Path, summary: dict[str, Any]) -> str | None:
    """Main process, after ``metrics.json``: log the best model's test metrics, end the trackers, and mark the
    registry row ``finished`` with the dev/test metrics; the run becomes the next version of its model, whose
    name (``intents@v2``) is returned (None when the run is not recorded, or is a tune trial)."""
    test = summary.get("test") or {}
    if accelerator.trackers and test:
        step = (summary.get("train") or {}).get("steps", 0)
        accelerator.log({f"test/{k}": v for k, v in test.items() if isinstance(v, (int, float))}, step=step)
    end_trackers(accelerator)
    live = _LIVE.get()
    if live is None or live.run_id is None:
        return None
    run_id, live.run_id = live.run_id, None  # finished: an error after this point must not re-mark it
    train = summary.get("train") or {}
    metrics = {
        "dev": summary.get("dev") or {},
        **({"test": summary["test"]} if summary.get("test") else {}),
        "best_epoch": summary.get("best_epoch"),
        "train": {k: train[k] for k in ("seconds", "samples_per_s", "steps") if k in train},
    }
    from growthcurve.store.registry import TRIAL_ENV, finish_run, version_ref
    from growthcurve.training.runfolder import MODEL_DIR, model_version

    version = _safely(
        lambda: finish_run(
            run_id,
            "finished",
            metrics=metrics,
            artefact=run_dir,
            fingerprint=model_version(run_dir / MODEL_DIR),
            versioned=not os.environ.get(TRIAL_ENV),
        )
    )
    return version_ref(cfg.model_name, version)


@contextmanager
def recorded() -> Iterator[None]:
    """Around one recipe call: a run that raises is marked ``interrupted`` (Ctrl-C/SIGTERM, checkpoint kept)
    or ``failed`` in the registry, and its trackers are ended; the exception propagates unchanged."""
    token = _LIVE.set(_Live())
    try:
        yield
    except BaseException as exc:
        live = _LIVE.get()
        if live is not None:
            if live.accelerator is not None:
                end_trackers(live.accelerator)
            if live.run_id is not None:
                from growthcurve.store.registry import finish_run

                status = "interrupted" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "failed"
                error = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                run_id, live.run_id = live.run_id, None
                _safely(lambda: finish_run(run_id, status, metrics=error))
        raise
    finally:
        _LIVE.reset(token)


def _safely(write: Any) -> Any:
    """Run a registry write; if the store fails, warn in one line and go on (the run folder is the result)."""
    import sqlalchemy as sa

    try:
        return write()
    except (GrowthcurveError, sa.exc.SQLAlchemyError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"warning: the run registry did not record this run ({msg}); the run folder is complete. "
            "Fix GROWTHCURVE_DB_URL, or set registry=false to stop recording",
            file=sys.stderr,
        )
        return None
