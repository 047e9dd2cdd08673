"""The `growthcurve ab analyze` config that reads a served experiment straight from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from growthcurve.atomic import write_text

__all__ = ["FEEDBACK_METRICS", "ab_config", "write_ab_config"]

# How each feedback kind is analysed per unit: thumbs/click/correct are 0/1 per feedback, so their per-unit
# mean is the share of positive answers among the unit's answers (units without any are left out, not
# counted as 0); a rating is averaged per unit. `exposure` only makes the unit count for the SRM check.
FEEDBACK_METRICS: list[dict[str, Any]] = [
    {"name": "thumbs", "type": "mean", "aggregation": "mean"},
    {"name": "rating", "type": "mean", "aggregation": "mean"},
    {"name": "click", "type": "mean", "aggregation": "mean"},
    {"name": "correct", "type": "mean", "aggregation": "mean"},
]


def ab_config(
    store_url: str, experiment: str, weights: dict[str, float] | None = None, output_dir: str | None = None
) -> dict[str, Any]:
    """The analysis config (as a dict) for ``experiment`` in the store at ``store_url``."""
    analysis: dict[str, Any] = {"control": "control"}
    if weights:
        analysis["weights"] = weights
    return {
        "source": {"url": store_url, "table": "experiment_events", "experiment": experiment},
        "metrics": [dict(m) for m in FEEDBACK_METRICS],
        "analysis": analysis,
        "output_dir": output_dir or f"runs/ab-{experiment}",
    }


def write_ab_config(
    path: str | Path,
    store_url: str,
    experiment: str,
    weights: dict[str, float] | None = None,
    output_dir: str | None = None,
) -> Path:
    """Write :func:`ab_config` as YAML (atomically) for `growthcurve ab analyze PATH`."""
    doc = ab_config(store_url, experiment, weights, output_dir)
    write_text(Path(path), yaml.safe_dump(doc, sort_keys=False))
    return Path(path)
