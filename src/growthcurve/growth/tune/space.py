"""The search space: a tune config (a finetune YAML plus ``search:``/``metric:``) parsed into Optuna
distributions, every bound checked against the finetune schema before anything is written."""

from __future__ import annotations

import math
import tempfile
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import BaseModel

from growthcurve.config import FinetuneConfig, TrainConfig, load_finetune_config, load_yaml, resolve_input_paths
from growthcurve.errors import ConfigError

TUNE_KEYS = ("search", "metric")  # the keys a tune config adds to a finetune config
# Keys a search may not vary: every trial must read the same data and write its own folder.
FROZEN = ("task", "output_dir", "resume", "data.")
METRICS: tuple[str, ...] = typing.get_args(TrainConfig.model_fields["early_stopping_metric"].annotation)
_SPEC_KEYS = {"low", "high", "log", "step", "choices"}


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
    def direction(self) -> Literal["minimize", "maximize"]:
        """Dev loss is minimised, every other metric maximised."""
        return "minimize" if self.metric == "loss" else "maximize"


def validated_config(base: Mapping[str, Any], overrides: Sequence[str]) -> FinetuneConfig:
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


def format_value(v: Any) -> str:
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
                validated_config(base, [*overrides, f"{key}={format_value(v)}"])
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
    cfg = validated_config(raw, overrides)
    chosen = metric or metric_raw or cfg.train.early_stopping_metric
    if chosen not in METRICS:
        raise ConfigError(f"metric '{chosen}' is not a dev metric; choose one of {', '.join(METRICS)}")
    if cfg.data.dev is None and cfg.data.dev_fraction == 0:
        raise ConfigError("tune needs a dev split to score trials: give data.dev or data.dev_fraction > 0")
    if space_raw is None:
        space, default = default_space(cfg), True
    else:
        space, default = parse_space(space_raw, raw, overrides), False
    return TuneSpec(Path(config), raw, list(overrides), cfg, space, chosen, default)
