"""Knowledge sharing: the decision log's evidence, recomputed from the store with the A/B analysis.

`decide` reruns ``growthcurve.validation.experiment.analyze`` on the experiment's events (the same code
as ``growthcurve ab analyze``) and stores the result next to who decided what and why, so a later reader
sees the numbers the team saw, not a retelling of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthcurve.errors import DataError
from growthcurve.store import experiment_events, init_db, record_decision
from growthcurve.validation.config import ABConfig, AnalysisConfig, MetricConfig, SourceConfig


def experiment_summary(engine: sa.Engine, experiment: str) -> dict[str, Any]:
    """Variants (units), model versions per variant and metric types of one experiment in the store.

    A metric whose every value is 0 or 1 is binomial, any other is a mean; an unknown experiment is a
    DataError naming the experiments there are.
    """
    ev = experiment_events
    where = ev.c.experiment == experiment
    with engine.connect() as conn:
        units: dict[str, int] = dict(
            conn.execute(
                sa.select(ev.c.variant, sa.func.count(sa.distinct(ev.c.unit_id))).where(where).group_by(ev.c.variant)
            ).all()
        )
        if not units:
            known = [r[0] for r in conn.execute(sa.select(ev.c.experiment).distinct().order_by(ev.c.experiment))]
            listed = ", ".join(known[:20]) if known else "none: the events table is empty"
            raise DataError(f"experiment '{experiment}' has no events in the store (experiments: {listed})")
        versions: dict[str, list[str]] = {}
        q = sa.select(ev.c.variant, ev.c.model_version).where(where, ev.c.model_version.is_not(None)).distinct()
        for variant, version in conn.execute(q.order_by(ev.c.variant, ev.c.model_version)):
            versions.setdefault(str(variant), []).append(str(version))
        binary = sa.func.sum(sa.case((ev.c.value.in_([0.0, 1.0]), 0), else_=1))
        q = sa.select(ev.c.metric, binary).where(where).group_by(ev.c.metric).order_by(ev.c.metric)
        metrics = {str(m): ("binomial" if int(other) == 0 else "mean") for m, other in conn.execute(q)}
    return {
        "units": {str(k): int(v) for k, v in sorted(units.items())},
        "model_versions": versions,
        "metrics": metrics,
    }


def ab_config_for(url: str, experiment: str, summary: dict[str, Any], config: Path | None = None) -> ABConfig:
    """The A/B config that analyses ``experiment`` in the store: a given YAML (its source pointed at the
    store and experiment), or one metric per metric name with the inferred type."""
    source = SourceConfig(url=url, table="experiment_events", experiment=experiment)
    if config is not None:
        from growthcurve.validation.config import load_ab_config

        cfg = load_ab_config(config)
        cfg.source = source
        cfg.analysis.looks = 0
        return cfg
    metrics = [MetricConfig(name=m, type=t) for m, t in summary["metrics"].items()]
    return ABConfig(source=source, metrics=metrics, analysis=AnalysisConfig(looks=0))


def _run_evidence(run_dir: Path) -> dict[str, Any]:
    """What a compared run folder contributes to the evidence: its path, meta and test/dev metrics."""
    if not run_dir.is_dir():
        raise DataError(f"run folder '{run_dir}' does not exist")
    info: dict[str, Any] = {"path": str(run_dir.resolve())}
    for name, key in (("metrics.json", "metrics"), ("model/run.json", "meta")):
        p = run_dir / name
        if p.is_file():
            try:
                info[key] = json.loads(p.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    return info


def decide(
    experiment: str,
    decision: str,
    variant: str | None,
    why: str,
    url: str | None = None,
    decided_by: str | None = None,
    config: Path | None = None,
    runs: list[Path] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Recompute the A/B result of ``experiment`` from the store and log the decision with it as evidence."""
    from growthcurve.validation.experiment import analyze

    engine = init_db(url)
    try:
        summary = experiment_summary(engine, experiment)
        if variant is not None and variant not in summary["units"]:
            raise DataError(
                f"variant '{variant}' was not in experiment '{experiment}' (variants: {', '.join(summary['units'])})"
            )
        store_url = engine.url.render_as_string(hide_password=False)
        result = analyze(ab_config_for(store_url, experiment, summary, config))
        evidence = {
            "ab_result": result.to_dict(),
            **summary,
            "runs": [_run_evidence(Path(r)) for r in runs or []],
            "store": engine.url.render_as_string(hide_password=True),
        }
        return record_decision(engine, experiment, decision, variant, why, evidence, decided_by), evidence
    finally:
        engine.dispose()


def evidence_line(evidence: dict[str, Any] | None, variant: str | None) -> str:
    """One line for a table: each metric's relative lift of ``variant`` with its p-value and a * when it won."""
    if not evidence or "ab_result" not in evidence:
        return "–"
    parts = []
    for m in evidence["ab_result"].get("metrics", []):
        for c in m.get("comparisons", []):
            f = c.get("frequentist") or {}
            if (variant is None or c.get("treatment") == variant) and f.get("rel_effect") is not None:
                star = "*" if c.get("significant") else ""
                parts.append(f"{m['metric']} {100 * f['rel_effect']:+.1f}%{star} (p={f['p_value']:.2g})")
    srm = evidence["ab_result"].get("srm", {})
    return ("SRM alarm; " if srm.get("alarm") else "") + ("; ".join(parts) or "no comparison")
