"""The YAML schema of an A/B analysis (`growthcurve ab analyze CONFIG`), validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from growthcurve.config import InputPath, StrictModel, build_config


class SourceConfig(StrictModel):
    """Where the events live: a SQL table by URL, or a CSV/Parquet file loaded into an embedded SQLite."""

    url: str | None = None  # SQLAlchemy URL; None: env GROWTHCURVE_DB_URL or sqlite:///growthcurve.db
    path: InputPath = None  # CSV or Parquet file (relative to the config file); overrides url
    table: str = "experiment_events"
    format: Literal["long", "wide"] = "long"  # long: metric/value columns; wide: one column per metric
    experiment: str | None = None  # keep only rows whose experiment column equals this
    experiment_column: str = "experiment"
    unit_column: str = "unit_id"
    variant_column: str = "variant"
    timestamp_column: str = "ts"
    metric_column: str = "metric"  # long format only
    value_column: str = "value"  # long format only


class MetricConfig(StrictModel):
    """One metric: binomial (converted or not), mean (per-unit value) or ratio (numerator/denominator)."""

    name: str
    type: Literal["binomial", "mean", "ratio"] = "mean"
    column: str | None = None  # wide: the column; long: the metric name (default: `name`)
    numerator: str | None = None  # ratio metrics
    denominator: str | None = None
    aggregation: Literal["sum", "mean", "max", "count"] = "sum"  # per unit; binomial: any value > 0
    covariate: str | None = None  # pre-period value for CUPED (column in wide, metric name in long)
    higher_is_better: bool = True

    @model_validator(mode="after")
    def _check(self) -> MetricConfig:
        if self.type == "ratio" and not (self.numerator and self.denominator):
            raise ValueError(f"metric '{self.name}' is a ratio: set numerator and denominator")
        if self.type != "ratio" and (self.numerator or self.denominator):
            raise ValueError(f"metric '{self.name}': numerator/denominator only apply to type: ratio")
        if self.type == "ratio" and self.covariate:
            raise ValueError(f"metric '{self.name}': CUPED (covariate) is not supported for ratio metrics")
        return self

    @property
    def value(self) -> str:
        """The column (wide) or metric name (long) that holds the metric's values."""
        return self.column or self.name


class AnalysisConfig(StrictModel):
    """How to test: significance, control arm, sequential tuning, corrections, SRM split."""

    alpha: float = Field(0.05, gt=0, lt=0.5)
    control: str | None = None  # None: 'control' if present, else the first variant alphabetically
    sequential: bool = True
    n_star: float = Field(5000.0, gt=0)  # total units where the confidence sequence is tightest
    bayesian: bool = True
    prior_variance: float | None = Field(None, gt=0)  # Gaussian prior on the lift; None: flat
    correction: Literal["holm", "bh", "none"] = "holm"
    srm_alpha: float = Field(0.001, gt=0, lt=0.5)
    weights: dict[str, float] | None = None  # planned split; None: equal
    looks: int = Field(14, ge=0, le=365)  # points on the cumulative-lift-over-time chart (0: none)

    @model_validator(mode="after")
    def _weights(self) -> AnalysisConfig:
        if self.weights:
            from growthcurve.validation.analysis import check_weights

            check_weights(self.weights)  # a ConfigError naming what to set, before any data is read
        return self


class ABConfig(StrictModel):
    """Everything `growthcurve ab analyze` needs."""

    source: SourceConfig = Field(default_factory=SourceConfig)
    metrics: list[MetricConfig] = Field(min_length=1)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    output_dir: str = "runs/ab"

    @model_validator(mode="after")
    def _unique(self) -> ABConfig:
        names = [m.name for m in self.metrics]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"metric names must be unique: {dup} appear twice")
        return self


def load_ab_config(path: str | Path | None, overrides: list[str] | None = None) -> ABConfig:
    """Load an A/B config; a relative ``source.path`` is resolved against the config file's folder."""
    return build_config(ABConfig, path, overrides)
