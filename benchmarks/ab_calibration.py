"""Calibration of growthcurve's A/B statistics: peeking, coverage, CUPED, golden values and SQL scale.

Run: nice -n 10 .venv/bin/python benchmarks/ab_calibration.py [--events 10000000]
Writes benchmarks/results/ab_calibration.json and prints a side-by-side table with shared/REFERENCE.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict
from pathlib import Path

REFERENCE = {"fpr_naive_peeking": 0.275, "fpr_fixed": 0.050, "fpr_sequential": 0.015}  # shared/REFERENCE.md


def _scale_worker(backend: str, events: int, out: str) -> None:
    """Generate ``events`` rows inside the database, then time the SQL aggregation (own process: own RSS)."""
    import sqlalchemy as sa

    from growthcurve.validation.config import MetricConfig, SourceConfig
    from growthcurve.validation.sql import EventSource, reflect

    units = max(events // 10, 1)
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            engine = sa.create_engine(f"sqlite:///{tmp}/ev.db")
            gen = (
                f"WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < {events - 1}) "
                f"INSERT INTO ev SELECT i % {units}, CASE WHEN (i % {units}) % 2 = 0 THEN 'control' ELSE "
                "'treatment' END, i, (abs(random()) % 1000) / 100.0, (abs(random()) % 10 = 0) FROM r"
            )
        else:
            engine = sa.create_engine(f"duckdb:///{tmp}/ev.duckdb")
            gen = (
                f"INSERT INTO ev SELECT i % {units}, CASE WHEN (i % {units}) % 2 = 0 THEN 'control' ELSE "
                f"'treatment' END, i, random() * 10, CAST(random() < 0.1 AS DOUBLE) FROM range({events}) t(i)"
            )
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE ev (unit_id BIGINT, variant VARCHAR, ts BIGINT, revenue DOUBLE, converted DOUBLE)"
                )
            )
            t0 = time.perf_counter()
            conn.execute(sa.text(gen))
        gen_s = time.perf_counter() - t0
        src = EventSource(engine, reflect(engine, "ev"), SourceConfig(table="ev", format="wide"))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        t0 = time.perf_counter()
        res = {
            m: src.aggregate(MetricConfig(name=m, type=t, column=m))
            for m, t in (("revenue", "mean"), ("converted", "binomial"))
        }
        agg_s = time.perf_counter() - t0
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        n = sum(s.n for s in res["revenue"].values())
        engine.dispose()
    row = {
        "backend": backend,
        "events": events,
        "units": n,
        "generate_seconds": round(gen_s, 2),
        "aggregate_seconds": round(agg_s, 2),
        "metrics": 2,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_aggregation_mb": round(rss_before / 1024, 1),
        "python_peak_alloc_mb_during_aggregation": round(py_peak / 2**20, 3),
    }
    Path(out).write_text(json.dumps(row))


def _scale(backend: str, events: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        path = fh.name
    subprocess.run(
        [sys.executable, __file__, "--scale-worker", backend, "--events", str(events), "--out", path], check=True
    )
    row = json.loads(Path(path).read_text())
    os.unlink(path)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--experiments", type=int, default=4000)
    ap.add_argument("--scale-worker")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.scale_worker:
        _scale_worker(args.scale_worker, args.events, args.out)
        return

    from scipy import stats
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    from growthcurve.atomic import write_json
    from growthcurve.validation import ABTest, SufficientStats
    from growthcurve.validation.simulate import simulate_cuped, simulate_peeking

    t0 = time.perf_counter()
    aa = simulate_peeking(args.experiments, 30, 500, 0.10, 0.0, 0.05, 5000.0, seed=2026)
    ab = simulate_peeking(args.experiments, 30, 500, 0.10, 0.05, 0.05, 5000.0, seed=2027)
    sim_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cuped = simulate_cuped(experiments=2000, units_per_arm=2000, rho=0.7, seed=2026)
    cuped_s = time.perf_counter() - t0

    gb = (
        ABTest(metric_type="binomial")
        .fit({"control": SufficientStats(100, 49, 49), "b": SufficientStats(100, 51, 51)})
        .result_.comparisons[0]
    )
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 2, 300), rng.normal(5.4, 3, 250)
    ours = ABTest().fit({"control": SufficientStats.from_arrays(a), "t": SufficientStats.from_arrays(b)})
    f = ours.result_.comparisons[0].frequentist
    sm_t, sm_p, _ = CompareMeans(DescrStatsW(b), DescrStatsW(a)).ttest_ind(usevar="unequal")
    golden = {
        "growthbook_chance_to_win_49_51": {"ours": round(gb.bayesian.chance_to_win, 5), "growthbook": 0.60918},
        "welch_p_value": {
            "ours": f.p_value,
            "statsmodels": float(sm_p),
            "scipy": float(stats.ttest_ind(b, a, equal_var=False).pvalue),
        },
    }

    scale = []
    for backend in ("sqlite", "duckdb"):
        for n in sorted({args.events // 10, args.events}):
            print(f"scale: {backend} {n:,} events ...", flush=True)
            scale.append(_scale(backend, n))

    def _agg(backend: str, n: int) -> float | None:
        return next((r["aggregate_seconds"] for r in scale if r["backend"] == backend and r["events"] == n), None)

    summary = {
        "fpr_naive_peeking": aa.reject_naive_peeking,
        "fpr_sequential": aa.reject_sequential,
        "fpr_fixed": aa.reject_fixed,
        "coverage_fixed": aa.coverage_fixed,
        "coverage_sequential": aa.coverage_sequential,
        "cuped_variance_reduction": round(cuped.variance_reduction, 4),
        "cuped_expected": round(cuped.expected_reduction, 4),
        "aggregate_10m_seconds": _agg("sqlite", args.events),  # the embedded default database
        "aggregate_10m_seconds_duckdb": _agg("duckdb", args.events),
        "growthbook_chance_to_win": round(gb.bayesian.chance_to_win, 5),
    }
    result = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "nice -n 10 .venv/bin/python benchmarks/ab_calibration.py"
        + (f" --events {args.events}" if args.events != 10_000_000 else ""),
        "simulation": {"a_a": asdict(aa), "a_b_lift_5pct": asdict(ab), "seconds": round(sim_s, 2)},
        "cuped": {**asdict(cuped), "seconds": round(cuped_s, 2)},
        "golden": golden,
        "scale": scale,
        "reference": REFERENCE,
        "summary": summary,
    }
    write_json(Path(__file__).parent / "results" / "ab_calibration.json", result)

    print(f"\nA/A, {args.experiments} experiments × 30 looks, 500/arm/day, p=0.10 (vs shared/REFERENCE.md)")
    print(f"{'procedure':<34}{'growthcurve':>12}{'reference':>11}{'ratio':>8}")
    for key, label in (
        ("fpr_naive_peeking", "naive daily peeking z test"),
        ("fpr_fixed", "one look (fixed horizon)"),
        ("fpr_sequential", "confidence sequence, N*=5000"),
    ):
        ours_v, ref = summary[key], REFERENCE[key]
        print(f"{label:<34}{ours_v:>12.2%}{ref:>11.2%}{ours_v / ref:>8.2f}")
    print(f"coverage fixed / sequential: {aa.coverage_fixed:.2%} / {aa.coverage_sequential:.2%}")
    print(
        f"A/B +5% power: naive {ab.reject_naive_peeking:.1%}, fixed {ab.reject_fixed:.1%}, "
        f"sequential {ab.reject_sequential:.1%}"
    )
    print(f"CUPED variance reduction {cuped.variance_reduction:.3f} vs rho^2 {cuped.expected_reduction:.3f}")
    print(f"GrowthBook 49/100 vs 51/100 chance to win: {gb.bayesian.chance_to_win:.5f} vs 0.60918")
    for r in scale:
        print(
            f"{r['backend']:<7}{r['events']:>12,} events: aggregate {r['aggregate_seconds']:.2f}s, peak RSS "
            f"{r['peak_rss_mb']:.0f} MB, Python allocations during aggregation "
            f"{r['python_peak_alloc_mb_during_aggregation']:.2f} MB"
        )


if __name__ == "__main__":
    main()
