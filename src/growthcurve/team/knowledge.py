"""Knowledge sharing: the decision log's evidence, recomputed from the store with the A/B analysis.

`decide` runs ``growthcurve.validation.served.analyze_experiment`` on the experiment (the same function and the
same stored config as ``growthcurve ab analyze EXPERIMENT``) and stores the result next to who decided what
and why, so a later reader sees the numbers the team saw, not a retelling of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthcurve.errors import DataError
from growthcurve.store import experiment_events, init_db, record_decision


def experiment_summary(engine: sa.Engine, experiment: str) -> dict[str, Any]:
    """Units and model versions per variant of one experiment in the store (the decision's context)."""
    ev = experiment_events
    where = ev.c.experiment == experiment
    with engine.connect() as conn:
        units: dict[str, int] = dict(
            conn.execute(
                sa.select(ev.c.variant, sa.func.count(sa.distinct(ev.c.unit_id))).where(where).group_by(ev.c.variant)
            ).all()
        )
        versions: dict[str, list[str]] = {}
        q = sa.select(ev.c.variant, ev.c.model_version).where(where, ev.c.model_version.is_not(None)).distinct()
        for variant, version in conn.execute(q.order_by(ev.c.variant, ev.c.model_version)):
            versions.setdefault(str(variant), []).append(str(version))
    return {"units": {str(k): int(v) for k, v in sorted(units.items())}, "model_versions": versions}


def _arm(variant: str, experiment: str, record: Any, units: dict[str, int]) -> str:
    """The variant a decision names: an arm's name (``intents@v2``), or its role (``control``/``treatment``)
    in an experiment whose arms are named by their versions; else a DataError listing the arms."""
    if variant in units:
        return variant
    by_role = [a.variant for a in (record.arms if record is not None else []) if a.role == variant]
    if len(by_role) == 1:
        return by_role[0]
    arms = ", ".join(units) or "none"
    raise DataError(f"variant '{variant}' was not in experiment '{experiment}' (variants: {arms})")


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
    """Recompute the A/B result of ``experiment`` from the store, with the analysis stored with it (the same
    function as `ab analyze EXPERIMENT`), and log the decision with it as evidence. ``config``: analyse with
    this YAML config instead (the evidence says so)."""
    from growthcurve.store import store_url
    from growthcurve.validation.served import analyze_experiment, looks_before

    u = store_url(url)
    served = analyze_experiment(experiment, u, timeline=False)  # an unknown experiment fails here, no file made
    result, source, cfg = served.result, served.config_source, served.config
    if config is not None:
        from growthcurve.validation.config import load_ab_config
        from growthcurve.validation.experiment import analyze

        cfg = load_ab_config(config)
        cfg.source = served.config.source
        cfg.analysis.looks = 0
        result, source = analyze(cfg), f"--config {config} (not the experiment's stored analysis)"
    engine = init_db(u)
    try:
        summary = experiment_summary(engine, experiment)
        if variant is not None:
            variant = _arm(variant, experiment, served.record, summary["units"])
        evidence = {
            "ab_result": result.to_dict(),
            "analysis": {"source": source, "alpha": cfg.analysis.alpha, "correction": cfg.analysis.correction},
            "metrics": {m.name: m.type for m in cfg.metrics},
            "looks_before": looks_before(experiment, u),
            "notes": served.notes,
            **summary,
            "runs": [_run_evidence(Path(r)) for r in runs or []],
            "store": served.store,
        }
        return record_decision(engine, experiment, decision, variant, why, evidence, decided_by), evidence
    finally:
        engine.dispose()


def evidence_line(evidence: dict[str, Any] | None, variant: str | None) -> str:
    """One line for a table: each metric's effect of ``variant`` with its p-value and a * when significant,
    from the same rows `ab analyze` prints (``ExperimentResult.rows``)."""
    if not evidence or "ab_result" not in evidence:
        return "–"
    res = evidence["ab_result"]
    parts = []
    for r in res.get("rows") or _legacy_rows(res):
        if r.get("effect") is None or r["variant"] == r["control"] or (variant is not None and r["variant"] != variant):
            continue
        star = "*" if r.get("significant") else ""
        effect = f"{100 * r['effect']:+.1f}%" if r.get("scale", "relative") == "relative" else f"{r['effect']:+.3g}"
        parts.append(f"{r['metric']} {effect}{star} (p={r['p']:.2g})")
    srm = res.get("srm", {})
    return ("SRM alarm; " if srm.get("alarm") else "") + ("; ".join(parts) or "no comparison")


def _legacy_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of evidence logged before the result carried them: the relative lift and its own p-value."""
    rows = []
    for m in res.get("metrics", []):
        for c in m.get("comparisons", []):
            f = c.get("frequentist") or {}
            if f.get("rel_effect") is not None:
                p = f.get("rel_p_value") if f.get("rel_p_value") is not None else f.get("p_value")
                rows.append(
                    {
                        "metric": m["metric"],
                        "variant": c.get("treatment"),
                        "control": c.get("control"),
                        "effect": f["rel_effect"],
                        "scale": "relative",
                        "p": p,
                        "significant": c.get("significant"),
                    }
                )
    return rows
