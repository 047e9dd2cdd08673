"""Hyperparameter search over a finetune config with Optuna: `growthcurve tune CONFIG --trials N`.

Reads top to bottom: parse the config and its ``search:`` block into Optuna distributions (every bound checked
against the finetune schema before anything is written) → open or resume an RDB-backed study (SQLite by
default, PostgreSQL by URL: several workers on several machines share one study, Optuna's own distributed
mode) → run each trial as a normal ``run_finetune`` in ``OUT/trials/<n>/``, pruned from its per-epoch dev
metric through ``loop.on_epoch_end`` → write ``best.yaml``, ``trials.csv``, ``tune.json`` and Optuna's
importance and parallel-coordinate plots.

Trials train without the test split (``data.test`` is unset for them): the search only ever sees dev numbers,
so the test score of the best config stays an honest estimate. ``best.yaml`` restores the user's test file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import socket
import tempfile
import time
import types
import typing
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel

from growthcurve.atomic import atomic_path, write_json, write_text
from growthcurve.config import (
    FinetuneConfig,
    TrainConfig,
    config_yaml,
    load_finetune_config,
    load_yaml,
    resolve_input_paths,
)
from growthcurve.errors import ConfigError, DataError, DivergedError
from growthcurve.store import masked_url as mask_url  # tune's name, kept for its callers

TUNE_KEYS = ("search", "metric")  # the keys a tune config adds to a finetune config
# Keys a search may not vary: every trial must read the same data and write its own folder.
FROZEN = ("task", "output_dir", "resume", "data.")
PRUNERS = ("median", "hyperband", "none")
_METRICS: tuple[str, ...] = typing.get_args(TrainConfig.model_fields["early_stopping_metric"].annotation)
_SPEC_KEYS = {"low", "high", "log", "step", "choices"}
_ATTR_SPACE, _ATTR_METRIC, _ATTR_BASE = "growthcurve_search_space", "growthcurve_metric", "growthcurve_base_hash"


# ----------------------------------------------------------------------------------------------
# The search space


@dataclass(frozen=True)
class TuneSpec:
    """A parsed tune config: the finetune config without ``search``/``metric``, the space and the metric."""

    config_path: Path
    base: dict[str, Any]  # the finetune YAML mapping, tune keys stripped
    overrides: list[str]  # --set KEY=VALUE applied on top of ``base`` for every trial
    cfg: FinetuneConfig  # base + overrides, validated
    space: dict[str, BaseDistribution]
    metric: str
    default_space: bool  # True: no search block was given; the method's default space is used

    @property
    def direction(self) -> str:
        """Dev loss is minimised, every other metric maximised."""
        return "minimize" if self.metric == "loss" else "maximize"


def _validated(base: Mapping[str, Any], overrides: Sequence[str]) -> FinetuneConfig:
    """``load_finetune_config`` on an in-memory mapping (via a file outside the user's folders, so a failing
    command leaves their tree untouched)."""
    with tempfile.TemporaryDirectory(prefix="growthcurve-tune-") as d:
        p = Path(d) / "base.yaml"
        p.write_text(yaml.safe_dump(dict(base), sort_keys=False, allow_unicode=True), encoding="utf-8")
        return load_finetune_config(p, list(overrides))


def _field_kind(key: str) -> str | None:
    """'int', 'float' or 'other' for a dotted FinetuneConfig key; None when the key does not exist."""
    model: type[BaseModel] = FinetuneConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        f = model.model_fields.get(part)
        if f is None:
            return None
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if i == len(parts) - 1:
                return "other"  # a whole section
            model = ann
            continue
        if i != len(parts) - 1:
            return None
        args = set(typing.get_args(ann)) if isinstance(ann, types.UnionType) else {ann}
        args.discard(type(None))
        if args == {int}:
            return "int"
        return "float" if float in args else "other"
    return None


def _number(key: str, what: str, v: Any) -> float:
    """A bound as a number. PyYAML (YAML 1.1) reads ``1e-5`` (no dot) as a string, so numeric strings are
    read as the numbers the user wrote; anything else is an error naming the key."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ConfigError(f"search key '{key}': {what} must be a number (got {v!r})")
    try:
        x = float(v)
    except ValueError:
        raise ConfigError(f"search key '{key}': {what} must be a number (got {v!r})") from None
    if not math.isfinite(x):
        raise ConfigError(f"search key '{key}': {what} must be finite (got {v!r})")
    return x


def _fmt(v: Any) -> str:
    """A value as the right-hand side of a ``KEY=VALUE`` override (floats keep full precision)."""
    if isinstance(v, float):
        return repr(v)
    if v is None:
        return "null"
    return str(v)


def _distribution(key: str, spec: Any) -> BaseDistribution:
    """One ``search:`` entry → an Optuna distribution; a malformed entry is a ConfigError naming the key."""
    if any(key == f or (f.endswith(".") and key.startswith(f)) for f in FROZEN):
        raise ConfigError(
            f"search key '{key}' cannot be searched: every trial must read the same data and write its own folder"
        )
    kind = _field_kind(key)
    if kind is None:
        try:  # let the config loader name the key and suggest the closest one
            load_finetune_config(None, [f"{key}=0"])
        except ConfigError as exc:
            raise ConfigError(f"search key '{key}': {exc}") from None
        raise ConfigError(f"search key '{key}' is not a finetune config key")
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(
            f"search key '{key}': give {{low: ..., high: ...}} (optional log: true or step: ...) or "
            f"{{choices: [...]}}, not {spec!r}"
        )
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ConfigError(
            f"search key '{key}': unknown field(s) {', '.join(unknown)} (use low, high, log, step or choices)"
        )
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise ConfigError(f"search key '{key}': choices cannot be combined with low/high/log/step")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"search key '{key}': choices must be a non-empty list (got {choices!r})")
        bad = [c for c in choices if c is not None and not isinstance(c, bool | int | float | str)]
        if bad:
            raise ConfigError(
                f"search key '{key}': choices must be plain values (numbers, strings, booleans), not {bad[0]!r}"
            )
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"search key '{key}': choices repeat a value ({choices!r})")
        return CategoricalDistribution(choices)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"search key '{key}': a range needs both low and high (got {sorted(spec)})")
    if kind == "other":
        raise ConfigError(f"search key '{key}' is not numeric: give {{choices: [...]}} instead of a range")
    low, high = _number(key, "low", spec["low"]), _number(key, "high", spec["high"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"search key '{key}': log must be true or false (got {log!r})")
    step = None if spec.get("step") is None else _number(key, "step", spec["step"])
    if low >= high:
        raise ConfigError(f"search key '{key}': low ({low:g}) must be below high ({high:g})")
    if log and low <= 0:
        raise ConfigError(f"search key '{key}': a log range needs low > 0 (got {low:g})")
    if log and step is not None:
        raise ConfigError(f"search key '{key}': log and step cannot be combined (Optuna samples one or the other)")
    if step is not None and step <= 0:
        raise ConfigError(f"search key '{key}': step must be > 0 (got {step:g})")
    if kind == "int":
        if not all(float(x).is_integer() for x in (low, high, step or 1)):
            raise ConfigError(f"search key '{key}' takes whole numbers: low, high and step must be integers")
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(low, high, log=log, step=step)


def _endpoints(d: BaseDistribution) -> list[Any]:
    """The extreme values of a distribution: checking them against the schema checks the whole range."""
    if isinstance(d, CategoricalDistribution):
        return list(d.choices)
    assert isinstance(d, FloatDistribution | IntDistribution)
    return [d.low, d.high]


def parse_space(raw: Any, base: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, BaseDistribution]:
    """The ``search:`` mapping → ``{dotted key: distribution}``, each bound validated by the finetune schema."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            "search must be a mapping of config keys to ranges, e.g. "
            "{train.learning_rate: {low: 1e-5, high: 1e-3, log: true}}"
        )
    space: dict[str, BaseDistribution] = {}
    for key, spec in raw.items():
        key = str(key)
        space[key] = _distribution(key, spec)
        for v in _endpoints(space[key]):
            try:
                _validated(base, [*overrides, f"{key}={_fmt(v)}"])
            except ConfigError as exc:
                raise ConfigError(f"search key '{key}': the value {v!r} is not accepted ({exc})") from None
    return space


def default_space(cfg: FinetuneConfig) -> dict[str, BaseDistribution]:
    """A sensible space when the config declares none: learning rate (log), batch size, warm-up and weight
    decay; the LoRA rank and dropout for LoRA; from-scratch baselines get higher learning rates."""
    if cfg.model.type == "tfidf":
        raise ConfigError(
            "model.type=tfidf has no default search space (it trains no network): declare a search: block"
        )
    batch = CategoricalDistribution([16, 32, 64])
    if cfg.model.type != "transformer":  # textcnn/rnn/cnn trained from scratch: see recipe.SCRATCH_DEFAULTS
        return {
            "train.learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
            "train.batch_size": batch,
            "train.weight_decay": FloatDistribution(0.0, 0.1),
        }
    if cfg.method == "full":
        # around the engine's own default (2e-4, geometric centre of the range): small encoders such as
        # MiniLM-L6 train best at 1e-4..5e-4, large ones lower; a range topping out at the default can only
        # lose to it on a short budget (BANKING77 2,000 rows: 1e-5..2e-4 found 41.9% test vs the default's 51.7%)
        return {
            "train.learning_rate": FloatDistribution(3e-5, 1e-3, log=True),
            "train.batch_size": batch,
            "train.warmup_ratio": FloatDistribution(0.0, 0.2),
            "train.weight_decay": FloatDistribution(0.0, 0.1),
        }
    space: dict[str, BaseDistribution] = {
        "train.learning_rate": FloatDistribution(1e-4, 3e-3, log=True),
        "train.batch_size": batch,
        "train.warmup_ratio": FloatDistribution(0.0, 0.2),
    }
    if cfg.method in ("lora", "adalora"):
        space["peft.lora_r" if cfg.method == "lora" else "peft.adalora_target_r"] = CategoricalDistribution([4, 8, 16])
        space["peft.lora_dropout"] = FloatDistribution(0.0, 0.2)
    return space


def describe(d: BaseDistribution) -> str:
    """A distribution in the words of the search block (for messages and tune.json)."""
    if isinstance(d, CategoricalDistribution):
        return f"choices {list(d.choices)}"
    assert isinstance(d, FloatDistribution | IntDistribution)
    extra = " log" if d.log else f" step {d.step:g}" if d.step not in (None, 1) else ""
    return f"{'int' if isinstance(d, IntDistribution) else 'float'} {d.low:g}..{d.high:g}{extra}"


def load_tune_spec(
    config: str | Path, search: str | Path | None = None, overrides: Sequence[str] = (), metric: str | None = None
) -> TuneSpec:
    """Read a tune config (a finetune YAML + ``search:``/``metric:``) and validate it all before any file is
    written. ``search`` is a separate file holding the space (its own ``search:`` block or the bare mapping)."""
    # data paths are read against the tune config's folder now: ``base`` is copied into the study folder
    raw = resolve_input_paths(FinetuneConfig, load_yaml(config), Path(config).parent)
    space_raw, metric_raw = raw.pop("search", None), raw.pop("metric", None)
    if search is not None:
        extra = load_yaml(search)
        if "search" in extra:
            space_raw = extra.pop("search")
            metric_raw = extra.pop("metric", metric_raw)
            if extra:
                raise ConfigError(
                    f"search file '{search}': unknown key(s) {', '.join(map(str, extra))} next to search:"
                )
        else:
            space_raw = extra
    cfg = _validated(raw, overrides)
    chosen = metric or metric_raw or cfg.train.early_stopping_metric
    if chosen not in _METRICS:
        raise ConfigError(f"metric '{chosen}' is not a dev metric; choose one of {', '.join(_METRICS)}")
    if cfg.data.dev is None and cfg.data.dev_fraction == 0:
        raise ConfigError("tune needs a dev split to score trials: give data.dev or data.dev_fraction > 0")
    if space_raw is None:
        space, default = default_space(cfg), True
    else:
        space, default = parse_space(space_raw, raw, overrides), False
    return TuneSpec(Path(config), raw, list(overrides), cfg, space, chosen, default)


# ----------------------------------------------------------------------------------------------
# Storage


def default_storage(store_url: str) -> str:
    """The study storage that goes with a growthcurve store URL.

    Optuna and the growthcurve store both keep their schema version in Alembic's ``alembic_version`` table, so
    one database cannot hold both (each refuses the other's revision; checked with optuna 5.0). A SQLite store
    therefore gets a sibling file (``growthcurve.db`` → ``growthcurve-optuna.db``); other URLs are used as they
    are and must name a database of their own (see :func:`check_storage`)."""
    url = sa.engine.make_url(store_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        p = Path(url.database)
        return url.set(database=str(p.with_name(f"{p.stem}-optuna{p.suffix}"))).render_as_string(hide_password=False)
    return store_url


def check_storage(url: str) -> None:
    """Refuse a storage URL that cannot hold an Optuna study: not a URL, or a growthcurve store database."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"--storage '{url}' is not a database URL (e.g. sqlite:///tune.db or postgresql://...)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("--storage needs a SQLite file (sqlite:///tune.db): an in-memory study cannot be resumed")
        p = Path(parsed.database)
        if p.is_dir():
            raise ConfigError(f"--storage '{url}' names a folder; give a file, e.g. sqlite:///{p / 'study.db'}")
        if not p.exists():
            return
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return
            versions = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--storage '{mask_url(url)}' needs the driver '{exc.name}': pip install it") from None
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"cannot open the study storage '{mask_url(url)}': {str(exc).splitlines()[0][:200]}") from None
    finally:
        with contextlib.suppress(NameError):
            engine.dispose()
    if any(not v.startswith("v") for v in versions):  # Optuna's revisions are "v3.2.0.a"; growthcurve's "0004_..."
        raise ConfigError(
            f"--storage '{mask_url(url)}' is a growthcurve store database: Optuna keeps its own Alembic version "
            "table and cannot share it; give a database of its own, e.g. --storage sqlite:///tune.db"
        )


def _open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so a trial whose worker died on another machine is failed and retried
    (Optuna's own mechanism); the parent folder of a SQLite file is created."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8: say it once in the docs
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=60,
                grace_period=180,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"cannot open the study storage '{mask_url(url)}': {str(exc).splitlines()[0][:200]}") from None


def _base_hash(spec: TuneSpec) -> str:
    """Hash of the resolved finetune config the trials start from (the registry's canonical config hash)."""
    from growthcurve.store.registry import config_hash

    return config_hash(spec.cfg.model_dump(mode="json"))


def _space_json(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    return {k: distribution_to_json(d) for k, d in space.items()}


def space_changes(stored: Mapping[str, BaseDistribution], declared: Mapping[str, BaseDistribution]) -> list[str]:
    """What differs between a study's space and the declared one, one phrase per key (empty: the same)."""
    out = [f"{k} added ({describe(declared[k])})" for k in declared if k not in stored]
    out += [f"{k} removed (was {describe(stored[k])})" for k in stored if k not in declared]
    out += [
        f"{k} changed ({describe(stored[k])} -> {describe(declared[k])})"
        for k in declared
        if k in stored and stored[k] != declared[k]
    ]
    return out


def _stored_space(study: optuna.Study) -> dict[str, BaseDistribution] | None:
    """The space a study was created with: the attribute growthcurve stores, else the trials' distributions."""
    attr = study.user_attrs.get(_ATTR_SPACE)
    if attr is not None:
        return {k: json_to_distribution(v) for k, v in attr.items()}
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return None
    stored: dict[str, BaseDistribution] = {}
    for t in trials:
        stored.update(t.distributions)
    return stored


# ----------------------------------------------------------------------------------------------
# The search


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


@contextlib.contextmanager
def _parent_run(run_id: str | None) -> Iterator[None]:
    """Set ``GROWTHCURVE_PARENT_RUN`` for the finetune inside, so the registry files it under the tune row."""
    from growthcurve.store.registry import PARENT_ENV

    old = os.environ.get(PARENT_ENV)
    if run_id:
        os.environ[PARENT_ENV] = run_id
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = old


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
        storage = _open_storage(storage_url)
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        pruner = make_pruner(self.pruner, spec.cfg.train.epochs)
        try:
            study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:  # a new study
            study = None
        if study is not None:
            stored = _stored_space(study)
            changes = space_changes(stored, spec.space) if stored is not None else []
            if changes:
                raise ConfigError(
                    f"study '{study_name}' in {mask_url(storage_url)} was run with another search space: "
                    f"{'; '.join(changes)}. Its trials are not comparable with the new space: start a new study "
                    f"with --study {study_name}-v2, or restore the old space to resume it"
                )
            old_metric = study.user_attrs.get(_ATTR_METRIC)
            if old_metric not in (None, spec.metric):
                raise ConfigError(
                    f"study '{study_name}' optimises dev {old_metric}, not {spec.metric}: "
                    f"start a new study with --study {study_name}-v2, or use metric: {old_metric}"
                )
            if study.direction.name.lower() != spec.direction:
                raise ConfigError(
                    f"study '{study_name}' is set to {study.direction.name.lower()}: use --study {study_name}-v2"
                )
            old_base = study.user_attrs.get(_ATTR_BASE)
            if old_base not in (None, _base_hash(spec)):
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
        study.set_user_attr(_ATTR_SPACE, _space_json(spec.space))
        study.set_user_attr(_ATTR_METRIC, spec.metric)
        study.set_user_attr(_ATTR_BASE, _base_hash(spec))
        return study, storage

    # -- one trial --------------------------------------------------------------------------------

    def _trial_overrides(self, spec: TuneSpec, params: Mapping[str, Any], run_dir: Path | None) -> list[str]:
        sets = [*spec.overrides, *(f"{k}={_fmt(v)}" for k, v in params.items())]
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
                with _parent_run(tune_id), on_epoch_end(report):
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
        self.echo(f"trial {trial.number} failed ({', '.join(f'{k}={_fmt(v)}' for k, v in params.items())}): {reason}")
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
        cfg = with_scratch_defaults(_validated(spec.base, sets))
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
            finish_run(tune_id, s.status, metrics=metrics)
        except DataError as exc:
            self.echo(f"warning: the tune run {tune_id} is not marked {s.status} in the run registry: {exc}")


# ----------------------------------------------------------------------------------------------
# Outputs


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
    plots = {
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
