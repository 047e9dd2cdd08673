"""One analysis per served experiment: `ab analyze EXPERIMENT`, `decide` and the report all call
:func:`analyze_experiment`, which reads the analysis config `serve` stored with the experiment and runs the
A/B engine on the store's events. So the same events give the same lift, CI and p in every command.

An experiment served before growthcurve stored its analysis gets the serve defaults (the feedback metrics of
``serving/experiment.py``, control = the ``control`` arm), and every reader says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthcurve.errors import DataError
from growthcurve.serving.experiment import FEEDBACK_METRICS, analysis_config
from growthcurve.store import experiment_events, masked_url, open_existing, store_url
from growthcurve.store.experiments import ExperimentRecord, get_experiment
from growthcurve.validation.config import ABConfig, SourceConfig
from growthcurve.validation.experiment import ExperimentResult, analyze

__all__ = ["ServedAnalysis", "analyze_experiment", "experiment_config", "looks_before"]

STORED = "the analysis stored with the experiment when `serve` started it"
DEFAULTS = (
    "defaults: the metrics found in its events (no analysis is stored with this experiment: it was not started "
    "by `serve`, or by an older growthcurve)"
)


@dataclass
class ServedAnalysis:
    """An experiment's result, the config it was computed with, where that config came from, and its arms."""

    experiment: str
    result: ExperimentResult
    config: ABConfig
    config_source: str  # STORED or DEFAULTS
    record: ExperimentRecord | None
    store: str  # the store URL, password masked

    @property
    def notes(self) -> list[str]:
        """Lines every reader prints under the result: where the config came from, mixed models."""
        out = [f"analysis: {self.config_source}"]
        if self.record is not None and len(self.record.models) > 1:
            out.append(
                f"the arms serve different models ({', '.join(self.record.models)}): the lift compares models, "
                "not versions of one model"
            )
        return out


def _variants(engine: sa.Engine, experiment: str) -> list[str]:
    ev = experiment_events
    with engine.connect() as conn:
        q = sa.select(ev.c.variant).where(ev.c.experiment == experiment).distinct().order_by(ev.c.variant)
        return [str(v) for (v,) in conn.execute(q)]


def _experiments(engine: sa.Engine) -> list[str]:
    ev = experiment_events
    with engine.connect() as conn:
        return [str(e) for (e,) in conn.execute(sa.select(ev.c.experiment).distinct().order_by(ev.c.experiment))]


def default_sections(url: str, experiment: str, control: str) -> dict[str, Any]:
    """The analysis of an experiment with none stored: every metric in its events but ``exposure``; a served
    feedback metric (thumbs, accuracy, rating, click, and an older server's ``correct``) as the per-unit mean
    `serve` would have stored, any other metric binomial when all its values are 0/1 (converted at least once),
    else a per-unit sum."""
    engine = open_existing(url)
    ev = experiment_events
    other = sa.func.sum(sa.case((ev.c.value.in_([0.0, 1.0]), 0), else_=1))
    q = (
        sa.select(ev.c.metric, other)
        .where(ev.c.experiment == experiment, ev.c.metric != "exposure")
        .group_by(ev.c.metric)
        .order_by(ev.c.metric)
    )
    try:
        with engine.connect() as conn:
            found = [(str(m), int(n)) for m, n in conn.execute(q)]
    finally:
        engine.dispose()
    served = {m["name"]: m for m in FEEDBACK_METRICS} | {
        "correct": {"name": "correct", "type": "mean", "aggregation": "mean"}
    }
    metrics = [
        dict(served[m]) if m in served else {"name": m, "type": "binomial" if n == 0 else "mean"} for m, n in found
    ]
    sections = analysis_config(control)
    sections["metrics"] = metrics or sections["metrics"]
    return sections


def experiment_config(
    experiment: str, url: str | None = None, output_dir: str | None = None, timeline: bool = True
) -> tuple[ABConfig, str, ExperimentRecord | None]:
    """The `ab analyze` config of a served experiment in the store at ``url``: the stored analysis, else the
    serve defaults; an experiment with no events is a DataError naming the store and what it holds.
    ``timeline=False`` skips the cumulative-lift chart's points (they never change the result itself)."""
    u = store_url(url)
    engine = open_existing(u)
    try:
        if not sa.inspect(engine).has_table("experiment_events"):
            raise DataError(f"the store {masked_url(u)} has no experiment events (no experiment was served into it)")
        record = get_experiment(engine, experiment)
        variants = _variants(engine, experiment)
        if not variants:
            known = _experiments(engine)
            listed = ", ".join(known[:20]) if known else "none: nothing was served into it as an experiment"
            raise DataError(
                f"experiment '{experiment}' has no events in the store {masked_url(u)} (its experiments: {listed})"
            )
    finally:
        engine.dispose()
    if record is not None:
        sections, source = record.config, STORED
    else:
        control = "control" if "control" in variants else variants[0]
        sections, source = default_sections(u, experiment, control), DEFAULTS
    cfg = ABConfig.model_validate(
        {
            "source": SourceConfig(url=u, table="experiment_events", experiment=experiment).model_dump(),
            **sections,
            "output_dir": output_dir or str(Path(f"runs/ab-{experiment}").resolve()),
        }
    )
    if not timeline:
        cfg.analysis.looks = 0
    return cfg, source, record


def analyze_experiment(
    experiment: str, url: str | None = None, output_dir: str | None = None, timeline: bool = True
) -> ServedAnalysis:
    """Analyse a served experiment with its one analysis config (see :func:`experiment_config`)."""
    cfg, source, record = experiment_config(experiment, url, output_dir, timeline)
    return ServedAnalysis(experiment, analyze(cfg), cfg, source, record, masked_url(store_url(url)))


def looks_before(experiment: str, url: str | None = None) -> int:
    """How many times the experiment was analysed before (its `ab-analyze` rows in the run registry): more
    than zero means it was peeked at, and only the always-valid sequential results keep their guarantee."""
    from growthcurve.store.registry import list_runs

    return sum(1 for r in list_runs(url, kind="ab-analyze") if r.name == experiment and r.status == "finished")
