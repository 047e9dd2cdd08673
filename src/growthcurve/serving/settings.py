"""Settings of a served app (limits, batching, security, experiment), validated by pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServeSettings"]


class ServeSettings(BaseModel):
    """Everything `create_app` needs besides the handlers and the store URL; defaults are safe to expose."""

    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(32, ge=1, le=4096)  # items per micro-batch
    max_wait_ms: float = Field(5.0, ge=0, le=10_000)  # how long a lone item waits for company
    api_keys: list[str] = Field(default_factory=list)  # empty: no key needed
    max_body_bytes: int = Field(1_000_000, ge=64)  # larger bodies get 413 before they are parsed
    max_text_chars: int = Field(5_000, ge=1)
    long_text: Literal["reject", "truncate"] = "reject"  # reject: 413; truncate: cut and flag `truncated`
    max_items: int = Field(64, ge=1)  # texts per request
    experiment: str | None = Field(None, min_length=1, max_length=128)  # A/B name (two or more handlers)
    weights: list[float] | None = None  # traffic share per handler (normalised); None: equal
    salt: str = ""  # part of the assignment hash; change it (or the experiment) to reshuffle units
    cors_origins: list[str] = Field(default_factory=list)  # empty: no CORS headers at all
    log_text: bool = True  # store input texts in `predictions.input_text` (off for sensitive text)
    # answer /predict only after its log row is committed; off (write-behind) keeps the commit out of the
    # latency path, at the price of losing the last few ms of prediction logs (never acked feedback) on a crash
    sync_prediction_log: bool = False
    backend: str = "torch"  # shown in the model-info metric
