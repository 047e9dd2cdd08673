"""The `assist fit` config (pydantic, YAML + --set overrides); every key has a default (the bundled intents)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from growthcurve.config import InputPath, StrictModel, build_config

BUNDLED = Path(__file__).resolve().parents[2] / "examples" / "intents"


class AssistDataConfig(StrictModel):
    """Labelled utterances: train (for a new intent model), dev (calibration + threshold), test (report)."""

    train: InputPath = None  # None (all three): the bundled bilingual intents
    dev: InputPath = None
    test: InputPath = None
    text_column: str = "text"
    label_column: str = "label"


class IntentConfig(StrictModel):
    """An existing text-classification run, or the engine overrides that train one into ``RUN/intent``."""

    run: InputPath = None
    # TF-IDF by default: on the bundled bilingual set it beats MiniLM-L6, whose vocabulary is English-only
    # (see examples/intents/README.md); set e.g. ["model.type=transformer", "train.epochs=3"] for MiniLM.
    overrides: list[str] = Field(default_factory=lambda: ["model.type=tfidf"])


class EncoderConfig(StrictModel):
    """The sentence encoder of the FAQ index: mean-pooled, L2-normalised hidden states."""

    name_or_path: str = "minilm"
    max_length: int = Field(128, ge=8, le=512)
    batch_size: int = Field(64, ge=1)


class IndexConfig(StrictModel):
    """faiss: exact inner product up to ``hnsw_min_size`` entries, HNSW (approximate) beyond it."""

    hnsw_min_size: int = Field(10_000, ge=1)
    hnsw_m: int = Field(32, ge=4)
    ef_search: int = Field(64, ge=1)


class AnswerConfig(StrictModel):
    """When to answer and when to hand over to a human."""

    target_accuracy: float = Field(0.9, gt=0, le=1)  # answered accuracy the dev-chosen threshold must reach
    threshold: float | None = Field(None, ge=0, le=1)  # fixed threshold instead of the dev choice
    # the dev choice must reach the target at this one-sided Wilson lower bound (None: the point estimate)
    accuracy_bound: float | None = Field(0.9, ge=0.5, lt=1)
    handoff_intents: list[str] | None = None  # None: speak_to_human when the model has it
    # hand over questions an out-of-scope detector flags (growthcurve.evaluation.ood): "intent" uses the intent
    # run's own detector; "encoder" fits kNN on the FAQ encoder's vectors of the training questions (threshold
    # on dev); "auto": intent for a transformer intent model, encoder otherwise (a TF-IDF model's n-grams did
    # not tell "What is the capital of France?" from the bundled intents); "off": no out-of-scope handoff
    out_of_scope: Literal["auto", "intent", "encoder", "off"] = "auto"
    ood_k: int = Field(1, ge=1)  # encoder kNN: distance to the k-th nearest training question
    ood_in_scope_recall: float = Field(0.95, gt=0.5, lt=1.0)  # encoder kNN: in-scope dev share answered
    top_k: int = Field(3, ge=1, le=50)
    max_question_chars: int = Field(2000, ge=1)


class AssistConfig(StrictModel):
    """Everything `assist fit` needs."""

    data: AssistDataConfig = Field(default_factory=AssistDataConfig)
    faq: InputPath = None  # CSV/JSONL question,answer[,intent]; None: the bundled faq.csv
    intent: IntentConfig = Field(default_factory=IntentConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    answer: AnswerConfig = Field(default_factory=AnswerConfig)
    output_dir: str = "runs/assist"
    name: str = "assist"
    seed: int = 0


def load_assist_config(path: str | Path | None = None, overrides: list[str] | None = None) -> AssistConfig:
    """Load the config; file paths come out absolute (see ``growthcurve.config.InputPath``)."""
    return build_config(AssistConfig, path, overrides)


def data_paths(cfg: AssistConfig) -> tuple[str, str | None, str | None]:
    """(train, dev, test) paths, the bundled intents when no train file is set."""
    if cfg.data.train is None:
        if cfg.data.dev or cfg.data.test:
            from growthcurve.errors import ConfigError

            raise ConfigError("set data.train too (or none of data.train/dev/test for the bundled intents)")
        return str(BUNDLED / "train.csv"), str(BUNDLED / "dev.csv"), str(BUNDLED / "test.csv")
    return cfg.data.train, cfg.data.dev, cfg.data.test
