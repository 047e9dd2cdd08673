"""The `recommend fit` config (pydantic, YAML + --set overrides); the embedded default runs on synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from growthcurve.config import InputPath, StrictModel, build_config


class RecDataConfig(StrictModel):
    """Where the interactions and item texts are, and which columns hold what (null files: synthetic set)."""

    interactions: InputPath = None
    items: InputPath = None
    user_column: str = "user_id"
    item_column: str = "item_id"
    rating_column: str | None = "rating"
    min_rating: float | None = None
    timestamp_column: str | None = "timestamp"
    timestamp_format: str | None = None
    item_id_column: str = "item_id"
    title_column: str | None = "title"
    text_columns: list[str] = Field(default_factory=lambda: ["description", "tags"])
    synthetic_users: int = Field(300, ge=10)
    synthetic_seed: int = 0

    @model_validator(mode="after")
    def _both_or_none(self) -> RecDataConfig:
        if (self.interactions is None) != (self.items is None):
            raise ValueError("set both data.interactions and data.items, or neither (then the synthetic set is used)")
        return self


class RecModelConfig(StrictModel):
    """The text encoder and its input lengths."""

    name_or_path: str = "minilm"
    max_length: int = Field(64, ge=8, le=512)
    user_max_length: int = Field(64, ge=8, le=512)
    history_items: int = Field(8, ge=1)


class RecTrainConfig(StrictModel):
    """Fine-tuning of the two towers: in-batch negatives with a temperature."""

    epochs: int = Field(2, ge=0)
    batch_size: int = Field(64, ge=2)
    learning_rate: float = Field(5e-5, gt=0)
    temperature: float = Field(0.05, gt=0)
    examples_per_user: int = Field(16, ge=1)
    logq_correction: bool = True
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = Field(None, ge=1)
    seed: int = 0


class RecBlendConfig(StrictModel):
    """The optional collaborative signal: ALS scores, mixed in with a weight tuned on validation."""

    collaborative: Literal["als", "none"] = "als"
    weights: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    als_factors: list[int] = Field(default_factory=lambda: [32, 64, 128])
    als_regularization: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0])
    als_iterations: int = Field(15, ge=1)

    @model_validator(mode="after")
    def _weights(self) -> RecBlendConfig:
        if not self.weights or any(not 0 <= w <= 1 for w in self.weights):
            raise ValueError("blend.weights must be a non-empty list of numbers in [0, 1]")
        return self


Baseline = Literal["popularity", "itemknn", "als", "bpr"]


class RecEvalConfig(StrictModel):
    """Leave-last-out evaluation and the cold-start hold-out."""

    k: int = Field(10, ge=1)
    cold_items_fraction: float = Field(0.1, ge=0, lt=1)
    baselines: list[Baseline] = Field(default_factory=lambda: list[Baseline](["popularity", "itemknn", "als", "bpr"]))
    itemknn_neighbours: int = Field(100, ge=1)
    bpr_factors: int = Field(64, ge=1)
    bpr_iterations: int = Field(100, ge=1)


class RecommenderConfig(StrictModel):
    """Everything `recommend fit` needs; every key has a default."""

    data: RecDataConfig = Field(default_factory=RecDataConfig)
    model: RecModelConfig = Field(default_factory=RecModelConfig)
    train: RecTrainConfig = Field(default_factory=RecTrainConfig)
    blend: RecBlendConfig = Field(default_factory=RecBlendConfig)
    eval: RecEvalConfig = Field(default_factory=RecEvalConfig)
    output_dir: str = "runs/recommender"
    name: str = "recommender"


def load_recommender_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RecommenderConfig:
    """Load the config; data paths come out absolute (see ``growthcurve.config.InputPath``)."""
    return build_config(RecommenderConfig, path, overrides)
