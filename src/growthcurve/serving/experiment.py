"""The analysis of a served experiment: which feedback metrics it has and how each is tested.

`serve` stores this with the experiment when it starts (the ``experiments`` table), so `ab analyze
EXPERIMENT`, `decide` and the report compute from the same config; ``--ab-config`` also writes it as a YAML
file for `growthcurve ab analyze FILE`.

How each feedback kind becomes a per-unit metric (units without that feedback are left out of it, never
counted as 0; every exposed unit counts in the SRM check):

- ``thumbs``: 1 for a thumbs-up, 0 for a thumbs-down; the unit's mean.
- ``accuracy``: was the served answer right, as far as the user said? 1 for a thumbs-up or a corrected label
  equal to the served one (a confirmation), 0 for a corrected label that differs or a thumbs-down; the unit's
  mean. It works with the usual feedback UI, where a label is only sent when the answer was wrong.
- ``rating``: the unit's mean rating (CSAT 1-5, NPS 0-10).
- ``click``: 1 clicked, 0 not; the unit's mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from growthcurve.atomic import write_text

__all__ = ["FEEDBACK_METRICS", "ab_config", "analysis_config", "write_ab_config"]

FEEDBACK_METRICS: list[dict[str, Any]] = [
    {"name": "thumbs", "type": "mean", "aggregation": "mean"},
    {"name": "accuracy", "type": "mean", "aggregation": "mean"},
    {"name": "rating", "type": "mean", "aggregation": "mean"},
    {"name": "click", "type": "mean", "aggregation": "mean"},
]


def analysis_config(control: str = "control", weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The ``metrics`` and ``analysis`` sections of an experiment's analysis (what the store keeps with it)."""
    analysis: dict[str, Any] = {"control": control}
    if weights:
        analysis["weights"] = weights
    return {"metrics": [dict(m) for m in FEEDBACK_METRICS], "analysis": analysis}


def ab_config(
    store_url: str,
    experiment: str,
    weights: dict[str, float] | None = None,
    output_dir: str | None = None,
    control: str = "control",
) -> dict[str, Any]:
    """The full `ab analyze` config (as a dict) for ``experiment`` in the store at ``store_url``."""
    return {
        "source": {"url": store_url, "table": "experiment_events", "experiment": experiment},
        **analysis_config(control, weights),
        "output_dir": output_dir or f"runs/ab-{experiment}",
    }


def write_ab_config(
    path: str | Path,
    store_url: str,
    experiment: str,
    weights: dict[str, float] | None = None,
    output_dir: str | None = None,
    control: str = "control",
) -> Path:
    """Write :func:`ab_config` as YAML (atomically) for `growthcurve ab analyze PATH`; the store URL and the
    output folder are written absolute, so the file works from any folder."""
    from growthcurve.store import store_url as absolute

    out = str(Path(output_dir or f"runs/ab-{experiment}").resolve())
    doc = ab_config(absolute(store_url), experiment, weights, out, control)
    write_text(Path(path), yaml.safe_dump(doc, sort_keys=False))
    return Path(path)
