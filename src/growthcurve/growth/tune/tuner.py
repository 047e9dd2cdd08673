"""The search: ``Tuner`` runs each trial as a normal ``run_finetune`` in ``OUT/trials/<n>/``, pruned from its
per-epoch dev metric, resumes a study, fails the trials of a killed worker and records the study in the run
registry."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from growthcurve.atomic import write_json, write_text
from growthcurve.config import config_yaml, load_finetune_config
from growthcurve.errors import ConfigError, DataError, DivergedError
from growthcurve.growth.tune.outputs import write_plots, write_trials_csv
from growthcurve.growth.tune.space import TuneSpec, describe, format_value, validated_config
from growthcurve.growth.tune.storage import (
    ATTR_BASE,
    ATTR_METRIC,
    ATTR_SPACE,
    base_hash,
    check_storage,
    default_storage,
    open_storage,
    space_changes,
    space_json,
    stored_space,
)
from growthcurve.store import masked_url as mask_url
from growthcurve.store.registry import parent_run

PRUNERS = ("median", "hyperband", "none")


def make_pruner(pruner: str | optuna.pruners.BasePruner, max_epochs: float) -> optuna.pruners.BasePruner:
    """``median`` (prune below the median of earlier trials at the same epoch, from epoch 2 on and after two
    trials, so one noisy first epoch cannot kill a good config), ``hyperband`` or ``none``; a pruner object
    passes through (tests force one)."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, math.ceil(max_epochs)))
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)} (got '{pruner}')")


@dataclass
class TuneSummary:
    """What `tune` reports (the body of ``tune.json``)."""

    study: str
    storage: str  # password masked
    metric: str
    direction: str
    trials: int
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_trial_run_dir: str | None
    wall_seconds: float
    space: dict[str, str]
    default_space: bool
    retried: list[int] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    skipped_plots: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    status: str = "finished"
    best_version: str | None = None  # the best trial's model version (intents@v3), given when the study ends

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.RDBStorage) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker on this host is gone (a killed `growthcurve tune`) and queue
    each again with the same params; returns their numbers. Trials of other hosts are left to the heartbeat,
    which fails them after the grace period (a live worker elsewhere must keep its trial)."""
    host, failed = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or not isinstance(pid, int) or _alive(pid):
            continue
        # Optuna has no public call to fail another worker's trial; this is what its own fail_stale_trials does
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t.number)
                optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)(study, storage.get_trial(t._trial_id))
    return failed


def suggest(trial: optuna.Trial, key: str, d: BaseDistribution) -> Any:
    """Sample one declared parameter through the public ``suggest_*`` call that matches its distribution."""
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(key, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
    assert isinstance(d, FloatDistribution)
    return trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)


class Tuner:
    """Run an Optuna study over a :class:`TuneSpec` (sklearn shape: ``__init__`` stores, ``fit`` returns self).

    After :meth:`fit`: ``study_`` (the Optuna study), ``summary_`` (a :class:`TuneSummary`, also written to
    ``OUT/tune.json``) and ``out_`` (the output folder)."""

    def __init__(
        self,
        trials: int = 20,
        out: str | Path | None = None,
        storage: str | None = None,
        study: str | None = None,
        pruner: str | optuna.pruners.BasePruner = "median",
        seed: int | None = None,
        progress: bool = True,
        echo: Any = print,
    ) -> None:
        self.trials = trials
        self.out = out
        self.storage = storage
        self.study = study
        self.pruner = pruner
        self.seed = seed
        self.progress = progress
        self.echo = echo

    # -- set-up -----------------------------------------------------------------------------------

    def _names(self, spec: TuneSpec) -> tuple[str, str, Path]:
        from growthcurve.store import default_url

        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1 (got {self.trials})")
        study = self.study or spec.config_path.stem
        if not study.strip():
            raise ConfigError("--study must not be empty")
        storage = self.storage or default_storage(default_url())
        check_storage(storage)
        make_pruner(self.pruner, spec.cfg.train.epochs)  # a bad name fails before anything is written
        return study, storage, Path(self.out) if self.out else Path("runs") / f"tune-{study}"

    def _check_out(self, out: Path, study: str, storage: str) -> None:
        """OUT belongs to one study: refuse another study's folder before writing into it."""
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out '{out}' is a file; give a folder")
        meta = out / "tune.json"
        if meta.is_file():
            try:
                old = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = {}
            if (old.get("study"), old.get("storage")) != (study, mask_url(storage)):
                raise ConfigError(
                    f"--out '{out}' holds study '{old.get('study')}' from {old.get('storage')}: "
                    "give another --out for this study"
                )
        elif (out / "trials").is_dir() and any((out / "trials").iterdir()):
            raise ConfigError(f"--out '{out}' holds trial folders of an unknown study: give another --out")

    def _open_study(self, spec: TuneSpec, study_name: str, storage_url: str) -> tuple[optuna.Study, Any]:
        storage = open_storage(storage_url)
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        pruner = make_pruner(self.pruner, spec.cfg.train.epochs)
        try:
            study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:  # a new study
            study = None
        if study is not None:
            stored = stored_space(study)
            changes = space_changes(stored, spec.space) if stored is not None else []
            if changes:
                raise ConfigError(
                    f"study '{study_name}' in {mask_url(storage_url)} was run with another search space: "
                    f"{'; '.join(changes)}. Its trials are not comparable with the new space: start a new study "
                    f"with --study {study_name}-v2, or restore the old space to resume it"
                )
            old_metric = study.user_attrs.get(ATTR_METRIC)
            if old_metric not in (None, spec.metric):
                raise ConfigError(
                    f"study '{study_name}' optimises dev {old_metric}, not {spec.metric}: "
                    f"start a new study with --study {study_name}-v2, or use metric: {old_metric}"
                )
            if study.direction.name.lower() != spec.direction:
                raise ConfigError(
                    f"study '{study_name}' is set to {study.direction.name.lower()}: use --study {study_name}-v2"
                )
            old_base = study.user_attrs.get(ATTR_BASE)
            if old_base not in (None, base_hash(spec)):
                # not an error: fixing a typo in a path or adding data is a user's call, but they should know
                self.echo(
                    f"warning: the finetune config (outside search:) differs from the one study '{study_name}' "
                    "started with: earlier and new trials are not strictly comparable"
                )
            return study, storage
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction=spec.direction,
            load_if_exists=True,  # another worker may have created it a moment ago
        )
        study.set_user_attr(ATTR_SPACE, space_json(spec.space))
        study.set_user_attr(ATTR_METRIC, spec.metric)
        study.set_user_attr(ATTR_BASE, base_hash(spec))
        return study, storage

    # -- one trial --------------------------------------------------------------------------------

    def _trial_overrides(self, spec: TuneSpec, params: Mapping[str, Any], run_dir: Path | None) -> list[str]:
        sets = [*spec.overrides, *(f"{k}={format_value(v)}" for k, v in params.items())]
        if run_dir is None:
            return sets
        sets += [f"output_dir={run_dir}", "data.test=null"]  # the search never sees the test split
        if spec.cfg.data.train is None and spec.cfg.task == "text-classification":
            from growthcurve.data.text import bundled_intents_dir  # the bundled set ships its own test file

            d = bundled_intents_dir()
            sets += [f"data.train={d / 'train.csv'}"] + ([] if spec.cfg.data.dev else [f"data.dev={d / 'dev.csv'}"])
        return sets

    def _objective(self, spec: TuneSpec, out: Path, base_file: Path, tune_id: str | None) -> Any:
        from growthcurve.training.dispatch import run_finetune
        from growthcurve.training.loop import Interrupted, on_epoch_end

        def objective(trial: optuna.Trial) -> float:
            params = {k: suggest(trial, k, d) for k, d in spec.space.items()}
            run_dir = out / "trials" / str(trial.number)
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("run_dir", str(run_dir))
            cfg = load_finetune_config(base_file, self._trial_overrides(spec, params, run_dir))
            seen: dict[str, Any] = {}
            last_epoch = math.ceil(cfg.train.epochs)

            def report(epoch: int, dev: dict[str, float] | None) -> None:
                if dev is None:
                    return
                if spec.metric not in dev:
                    raise ConfigError(f"metric '{spec.metric}' is not computed for this task ({', '.join(dev)})")
                seen.update(epoch=epoch, dev=dev)
                trial.report(float(dev[spec.metric]), epoch)
                # the last epoch's training is already spent: pruning there would only discard a finished result
                if epoch < last_epoch and trial.should_prune():
                    raise optuna.TrialPruned(f"dev {spec.metric} {dev[spec.metric]:.4f} at epoch {epoch}")

            try:
                with parent_run(tune_id, trial=True), on_epoch_end(report):
                    res = run_finetune(cfg, progress=self.progress)
            except optuna.TrialPruned:
                trial.set_user_attr("pruned_at_epoch", seen.get("epoch"))
                self._mark_trial(run_dir, trial.number, "pruned", params, seen)
                raise
            except DivergedError as exc:  # a config of the space that diverges is a result, not the end of the search
                return self._diverged(trial, run_dir, params, seen, str(exc))
            except (KeyboardInterrupt, Interrupted):
                # Optuna marks this trial FAIL; queue its params so the next `growthcurve tune` reruns the config
                trial.study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
                self.echo(
                    f"trial {trial.number} interrupted: marked FAIL, its params queued; "
                    "run the same growthcurve tune again to resume the study"
                )
                raise
            value = float(res.dev[spec.metric])
            if not math.isfinite(value):
                return self._diverged(trial, run_dir, params, seen, f"dev {spec.metric} is {value}")
            self._mark_trial(run_dir, trial.number, "complete", params, {"epoch": res.best_epoch, "dev": res.dev})
            return value

        return objective

    def _diverged(
        self, trial: optuna.Trial, run_dir: Path, params: dict[str, Any], seen: dict[str, Any], reason: str
    ) -> float:
        """Record a trial whose run diverged and hand Optuna nan, which it marks FAIL; the study goes on."""
        trial.set_user_attr("fail_reason", reason[:500])
        self._mark_trial(run_dir, trial.number, "failed", params, seen)
        self.echo(
            f"trial {trial.number} failed ({', '.join(f'{k}={format_value(v)}' for k, v in params.items())}): {reason}"
        )
        return float("nan")

    def _mark_trial(self, run_dir: Path, number: int, state: str, params: dict[str, Any], seen: dict[str, Any]) -> None:
        """``trial.json`` in the trial folder, and the trial's registry row: a pruned run ends ``interrupted``."""
        from growthcurve.store.registry import find_by_artefact, finish_run

        write_json(
            run_dir / "trial.json",
            {"number": number, "state": state, "params": params, "epoch": seen.get("epoch"), "dev": seen.get("dev")},
        )
        if state != "pruned":
            return
        try:
            row = find_by_artefact(run_dir)
            if row is not None:
                metrics = {"pruned": True, "pruned_at_epoch": seen.get("epoch"), "dev": seen.get("dev")}
                finish_run(row.id, "interrupted", metrics=metrics)
        except DataError as exc:  # the registry is unreachable: the study itself holds the truth
            self.echo(f"warning: trial {number} pruned but not marked in the run registry: {exc}")

    # -- the study --------------------------------------------------------------------------------

    def fit(self, spec: TuneSpec) -> Tuner:
        """Create or resume the study and run trials until it holds ``trials`` complete + pruned ones."""
        study_name, storage_url, out = self._names(spec)
        self.out_ = out
        self._check_out(out, study_name, storage_url)
        study, storage = self._open_study(spec, study_name, storage_url)
        known = {str(t.number) for t in study.get_trials(deepcopy=False)}
        if (out / "trials").is_dir():
            foreign = sorted(p.name for p in (out / "trials").iterdir() if p.name not in known)
            if foreign:
                raise ConfigError(
                    f"--out '{out}' has trial folders {', '.join(foreign[:5])} that study '{study_name}' does not "
                    "know: give another --out"
                )
        t0 = time.perf_counter()
        if spec.default_space:
            self.echo(
                f"no search: block; using the default space for method={spec.cfg.method}, "
                f"model.type={spec.cfg.model.type}: " + "; ".join(f"{k} {describe(d)}" for k, d in spec.space.items())
            )
        retried = fail_dead_trials(study, storage)
        for n in retried:
            self.echo(
                f"trial {n} was left RUNNING by a worker that is gone: marked FAIL and queued again with its params"
            )
        base_file = out / "base.yaml"
        write_text(base_file, yaml.safe_dump(spec.base, sort_keys=False, allow_unicode=True))
        tune_id = self._start_row(spec, study_name, storage_url, out)
        done_states = (TrialState.COMPLETE, TrialState.PRUNED)
        done = len(study.get_trials(deepcopy=False, states=done_states))
        todo = max(0, self.trials - done)
        if done:
            self.echo(f"resuming study '{study_name}': {done} trial(s) done, {todo} to go for {self.trials}")
        self._write_summary(study, spec, study_name, storage_url, out, t0, retried, tune_id, status="running")
        status = "failed"
        try:
            if todo:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.optimize(
                        self._objective(spec, out, base_file, tune_id),
                        n_trials=todo,
                        callbacks=[optuna.study.MaxTrialsCallback(self.trials, states=done_states)],
                        show_progress_bar=self.progress,
                        gc_after_trial=True,
                    )
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException as exc:
            status = "interrupted" if getattr(exc, "exit_code", None) == 130 else "failed"
            raise
        finally:
            self.study_ = study
            self.summary_ = self._write_summary(
                study, spec, study_name, storage_url, out, t0, retried, tune_id, status=status
            )
            self._finish_row(tune_id, self.summary_)
            if self.summary_.best_version:  # given by _finish_row: tune.json names it too
                write_json(out / "tune.json", self.summary_.to_dict())
        return self

    def _write_summary(
        self,
        study: optuna.Study,
        spec: TuneSpec,
        name: str,
        storage_url: str,
        out: Path,
        t0: float,
        retried: list[int],
        tune_id: str | None,
        status: str,
    ) -> TuneSummary:
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = None
        if complete:
            best = study.best_trial
        summary = TuneSummary(
            study=name,
            storage=mask_url(storage_url),
            metric=spec.metric,
            direction=spec.direction,
            trials=len(trials),
            complete=len(complete),
            pruned=sum(t.state == TrialState.PRUNED for t in trials),
            failed=sum(t.state == TrialState.FAIL for t in trials),
            best_value=None if best is None else best.value,
            best_params={} if best is None else dict(best.params),
            best_trial=None if best is None else best.number,
            best_trial_run_dir=None if best is None else best.user_attrs.get("run_dir"),
            wall_seconds=round(time.perf_counter() - t0, 3),
            space={k: describe(d) for k, d in spec.space.items()},
            default_space=spec.default_space,
            retried=retried,
            run_id=tune_id,
            status=status,
        )
        if status != "running":
            write_trials_csv(out / "trials.csv", trials, list(spec.space))
            if best is not None:
                self._write_best(spec, best, out)
            if status == "finished":
                summary.plots, summary.skipped_plots = write_plots(study, out, len(spec.space))
                for what, why in summary.skipped_plots.items():
                    self.echo(f"{what} plot skipped: {why}")
        write_json(out / "tune.json", summary.to_dict())
        return summary

    def _write_best(self, spec: TuneSpec, best: FrozenTrial, out: Path) -> None:
        """``best.yaml``: the full resolved config of the best trial (the user's test file back in place),
        ready for ``growthcurve finetune``; it trains into ``OUT/best``."""
        from growthcurve.training.recipe import with_scratch_defaults

        sets = [*self._trial_overrides(spec, best.params, None), f"output_dir={out / 'best'}"]
        cfg = with_scratch_defaults(validated_config(spec.base, sets))
        write_text(out / "best.yaml", config_yaml(cfg))

    # -- the run registry -------------------------------------------------------------------------

    def _start_row(self, spec: TuneSpec, name: str, storage_url: str, out: Path) -> str | None:
        from growthcurve.store.registry import start_run

        config = {
            "finetune": spec.cfg.model_dump(mode="json"),
            "search": {k: describe(d) for k, d in spec.space.items()},
            "metric": spec.metric,
            "trials": self.trials,
            "study": name,
            "storage": mask_url(storage_url),
            "pruner": self.pruner if isinstance(self.pruner, str) else type(self.pruner).__name__,
        }
        try:
            return start_run(
                "tune",
                name=name,
                task=spec.cfg.task,
                config=config,
                data_files=[spec.cfg.data.train, spec.cfg.data.dev],
                artefact=out,
            )
        except DataError as exc:  # the store is down: the search still runs, its study holds the results
            self.echo(f"warning: the tune run is not recorded in the run registry: {exc}")
            return None

    def _finish_row(self, tune_id: str | None, s: TuneSummary) -> None:
        from growthcurve.store.registry import finish_run

        if tune_id is None:
            return
        metrics = {
            k: getattr(s, k)
            for k in ("best_value", "best_params", "best_trial", "trials", "complete", "pruned", "failed")
        }
        metrics["metric"] = s.metric
        try:
            if s.status == "finished" and s.best_trial_run_dir:
                s.best_version = self._version_best(s.best_trial_run_dir)
                metrics["best_version"] = s.best_version
            finish_run(tune_id, s.status, metrics=metrics)
        except DataError as exc:
            self.echo(f"warning: the tune run {tune_id} is not marked {s.status} in the run registry: {exc}")

    def _version_best(self, run_dir: str) -> str | None:
        """The best trial's model becomes the next version of its model (the other trials never do)."""
        from growthcurve.store.registry import assign_version, find_by_artefact, version_ref

        row = find_by_artefact(run_dir)
        if row is None or row.status != "finished":
            return None
        ref = version_ref(row.model, assign_version(row.id))
        if ref:
            self.echo(f"best trial {run_dir} is model version {ref}")
        return ref
