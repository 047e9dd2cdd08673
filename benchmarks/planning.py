"""Planning/team benchmark: MILP optimality vs brute force, MILP speed at 500x5 and 1000x5 with a greedy
baseline, and reproduction of published AHP/TOPSIS examples and scipy training-effect statistics.

Run: .venv/bin/python benchmarks/planning.py   (writes benchmarks/results/planning.json, ~4 min)
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from scipy import stats

from growthcurve.atomic import write_json
from growthcurve.planning.allocate import PortfolioAllocator, brute_force, greedy_allocation
from growthcurve.planning.portfolio import PortfolioConfig, compile_portfolio
from growthcurve.team.ahp import AHP
from growthcurve.team.scoring import CriteriaConfig, TalentScorer
from growthcurve.team.training import TrainingEffect

console = Console()
# REFERENCE.md, "Portfolio MILP": HiGHS via scipy.optimize.milp, random multi-dim. knapsack, capacity 30%
REFERENCE_SECONDS = {(50, 3): 0.2, (1000, 5): 0.5}


def knapsack(n: int, n_res: int, seed: int, capacity: float = 0.3, links: bool = False) -> PortfolioConfig:
    """Random multi-dimensional knapsack: integer needs 1..100, capacity = share of the total need."""
    rng = np.random.default_rng(seed)
    needs = rng.integers(1, 101, size=(n, n_res))
    gains = rng.uniform(10, 100, n)  # uncorrelated with the needs, as in the reference measurement
    probs = rng.uniform(0.3, 1.0, n)
    projects = []
    for i in range(n):
        p: dict[str, object] = {
            "name": f"p{i}",
            "gain": float(gains[i]),
            "p_success": float(probs[i]),
            "needs": {f"r{j}": float(needs[i, j]) for j in range(n_res)},
        }
        if links and i >= 2 and rng.random() < 0.2:
            p["depends_on"] = [f"p{int(rng.integers(0, i))}"]
        if links and i >= 1 and rng.random() < 0.1:
            other = f"p{int(rng.integers(0, i))}"
            if other not in p.get("depends_on", []):  # type: ignore[operator]
                p["excludes"] = [other]
        projects.append(p)
    caps = {f"r{j}": float(np.floor(needs[:, j].sum() * capacity)) for j in range(n_res)}
    return PortfolioConfig.model_validate({"projects": projects, "capacities": caps})


def bench_bruteforce(n_instances: int = 200, n: int = 20) -> dict[str, object]:
    """MILP (gap 0) vs exhaustive enumeration of all 2^n subsets, with dependencies and exclusions."""
    matches, worst = 0, 0.0
    t_bf = t_milp = 0.0
    cols = [TextColumn("brute force vs MILP"), BarColumn(), TextColumn("{task.completed}/{task.total}")]
    with Progress(*cols, TimeRemainingColumn(), console=console) as prog:
        task = prog.add_task("bf", total=n_instances)
        for seed in range(n_instances):
            pf = compile_portfolio(knapsack(n, 3, 10_000 + seed, capacity=0.4, links=True))
            t0 = time.perf_counter()
            best, _ = brute_force(pf)
            t1 = time.perf_counter()
            res = PortfolioAllocator(mip_rel_gap=0.0, shadow_prices=False).fit(pf).result_
            t2 = time.perf_counter()
            t_bf += t1 - t0
            t_milp += t2 - t1
            diff = abs(res.expected_gain - best)
            worst = max(worst, diff)
            matches += diff <= 1e-9 * max(1.0, abs(best))
            prog.advance(task)
    return {
        "instances": n_instances,
        "projects": n,
        "resources": 3,
        "matches": matches,
        "max_abs_diff": worst,
        "bruteforce_seconds_mean": t_bf / n_instances,
        "milp_seconds_mean": t_milp / n_instances,
    }


def scipy_milp(pf: object, gap: float, time_limit: float) -> tuple[float, float, str]:
    """The same model through ``scipy.optimize.milp`` with default HiGHS settings (the reference)."""
    import warnings

    from scipy.optimize import Bounds, LinearConstraint, milp

    from growthcurve.planning.allocate import _build

    prob = _build(pf)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = milp(prob.c, constraints=[LinearConstraint(prob.A, -np.inf, prob.b)], integrality=prob.integrality,
                   bounds=Bounds(prob.lb, prob.ub), options={"mip_rel_gap": gap, "time_limit": time_limit})  # fmt: skip
    return time.perf_counter() - t0, float(res.mip_gap or 0.0), "optimal" if res.status == 0 else "time limit"


def bench_scale(
    n: int, n_res: int, seeds: int = 5, gap: float = 1e-3, time_limit: float = 10.0
) -> list[dict[str, object]]:
    """Solve time and gap of growthcurve (highspy, greedy start) and of plain ``scipy.optimize.milp`` on the
    same instances (each stopping at ``time_limit``), and the greedy shortfall."""
    rows = []
    for seed in range(seeds):
        pf = compile_portfolio(knapsack(n, n_res, seed))
        t0 = time.perf_counter()
        res = PortfolioAllocator(mip_rel_gap=gap, time_limit=time_limit, shadow_prices=False).fit(pf).result_
        wall = time.perf_counter() - t0
        ref_s, ref_gap, ref_status = scipy_milp(pf, gap, time_limit)
        g = greedy_allocation(pf)
        gval = float(pf.expected_gain @ g)
        rows.append(
            {
                "projects": n,
                "resources": n_res,
                "seed": seed,
                "seconds": wall,
                "solver_seconds": res.seconds,
                "gap": res.mip_gap,
                "status": res.status,
                "milp_value": res.expected_gain,
                "greedy_value": gval,
                "greedy_shortfall_pct": 100 * (res.expected_gain - gval) / res.expected_gain,
                "scipy_milp_seconds": ref_s,
                "scipy_milp_gap": ref_gap,
                "scipy_milp_status": ref_status,
            }
        )
    return rows


def bench_published() -> dict[str, object]:
    """AHP (Saaty 2008 drinks), TOPSIS (Hwang & Yoon 1981 aircraft), training stats vs scipy."""
    names = ["coffee", "wine", "tea", "beer", "soda", "milk", "water"]
    upper = {("coffee", "wine"): 9, ("coffee", "tea"): 5, ("coffee", "beer"): 2, ("coffee", "soda"): 1,
             ("coffee", "milk"): 1, ("water", "coffee"): 2, ("tea", "wine"): 3, ("beer", "wine"): 9,
             ("beer", "tea"): 3, ("beer", "milk"): 1, ("soda", "wine"): 9, ("soda", "tea"): 4,
             ("soda", "beer"): 2, ("soda", "milk"): 2, ("milk", "wine"): 9, ("milk", "tea"): 3,
             ("water", "wine"): 9, ("water", "tea"): 9, ("water", "beer"): 3, ("water", "soda"): 2,
             ("water", "milk"): 3}  # fmt: skip
    a = np.ones((7, 7))
    for (x, y), v in upper.items():
        a[names.index(x), names.index(y)], a[names.index(y), names.index(x)] = v, 1 / v
    ahp = AHP().fit(a, names)
    ahp_pub = [0.177, 0.019, 0.042, 0.116, 0.190, 0.129, 0.327]
    aircraft = pd.DataFrame({
        "name": ["A1", "A2", "A3", "A4"], "speed": [2.0, 2.5, 1.8, 2.2], "range": [1500, 2700, 2000, 1800],
        "payload": [20000, 18000, 21000, 20000], "cost": [5.5, 6.5, 4.5, 5.0], "reliability": [5, 3, 7, 5],
        "maneuverability": [9, 5, 7, 5],
    })  # fmt: skip
    crit = CriteriaConfig.model_validate({"criteria": [
        {"name": "speed", "weight": 0.2}, {"name": "range", "weight": 0.1},
        {"name": "payload", "weight": 0.1}, {"name": "cost", "kind": "cost", "weight": 0.1},
        {"name": "reliability", "weight": 0.2}, {"name": "maneuverability", "weight": 0.3}]})  # fmt: skip
    topsis = TalentScorer(n_samples=10).fit(aircraft, crit).result_.scores["topsis"]
    topsis_pub = [0.643, 0.268, 0.613, 0.312]
    rng = np.random.default_rng(0)
    pre = rng.normal(5, 1, 25)
    post = pre + rng.normal(0.6, 0.8, 25)
    r = TrainingEffect().fit(pd.DataFrame({"pre": pre, "post": post, "treated": True})).result_[0]
    tt, w = stats.ttest_rel(post, pre), stats.wilcoxon(post, pre)
    return {
        "ahp_weights": np.round(ahp.weights_, 3).tolist(),
        "ahp_published": ahp_pub,
        "ahp_cr": round(ahp.cr_, 3),
        "ahp_cr_published": 0.022,
        "ahp_matches": bool(np.round(ahp.weights_, 3).tolist() == ahp_pub and round(ahp.cr_, 3) == 0.022),
        "topsis_closeness": np.round(topsis, 4).tolist(),
        "topsis_published": topsis_pub,
        "topsis_max_abs_diff": float(np.max(np.abs(topsis - topsis_pub))),
        "topsis_matches_3dp": bool(np.max(np.abs(topsis - topsis_pub)) < 6e-4),
        "training_matches_scipy": bool(
            np.isclose(r.t, tt.statistic, rtol=1e-12) and np.isclose(r.p_t, tt.pvalue, rtol=1e-12)
            and np.isclose(r.p_wilcoxon, w.pvalue, rtol=1e-12)
        ),
    }  # fmt: skip


def main() -> None:
    """Run everything, print side-by-side tables, write the JSON."""
    n_instances = int(os.environ.get("GC_BENCH_INSTANCES", "200"))
    bf = bench_bruteforce(n_instances)
    scale = bench_scale(50, 3) + bench_scale(500, 5, seeds=12) + bench_scale(1000, 5)
    published = bench_published()

    t = Table(title="Portfolio MILP (gap 1e-3, limit 10 s, capacity 30%): growthcurve vs scipy.optimize.milp")
    for c in ("size", "seeds", "growthcurve s (max)", "max gap", "scipy.milp s (max)", "scipy max gap",
              "ratio (max s)", "REFERENCE.md s", "greedy shortfall %"):  # fmt: skip
        t.add_column(c, justify="right")
    for n, r in ((50, 3), (500, 5), (1000, 5)):
        rows = [x for x in scale if x["projects"] == n]
        sec = max(x["seconds"] for x in rows)
        ref_sec = max(x["scipy_milp_seconds"] for x in rows)
        ref = REFERENCE_SECONDS.get((n, r))
        t.add_row(
            f"{n}x{r}",
            str(len(rows)),
            f"{sec:.3f}",
            f"{max(x['gap'] for x in rows):.2g}",
            f"{ref_sec:.3f}",
            f"{max(x['scipy_milp_gap'] for x in rows):.2g}",
            f"{ref_sec / sec:.2f}x",
            "-" if ref is None else f"{ref:g}",
            f"{np.mean([x['greedy_shortfall_pct'] for x in rows]):.2f}",
        )
    console.print(t)
    console.print(
        f"brute force: MILP value equals enumeration on {bf['matches']}/{bf['instances']} instances of "
        f"{bf['projects']} projects (max |diff| {bf['max_abs_diff']:.2g}); enumeration "
        f"{bf['bruteforce_seconds_mean']:.3f} s, MILP {bf['milp_seconds_mean']:.3f} s per instance"
    )
    console.print(
        f"published: AHP drinks {published['ahp_matches']}, TOPSIS aircraft {published['topsis_matches_3dp']}"
        f" (max diff {published['topsis_max_abs_diff']:.1e}), training vs scipy "
        f"{published['training_matches_scipy']}"
    )
    rows500 = [x for x in scale if x["projects"] == 500]
    summary = {
        "bruteforce_instances": bf["instances"],
        "milp_matches_bruteforce": bf["matches"],
        "milp_500x5_seconds": max(x["seconds"] for x in rows500),
        "milp_500x5_gap": max(x["gap"] for x in rows500),
        "milp_500x5_seeds": len(rows500),
        "scipy_milp_500x5_seconds": max(x["scipy_milp_seconds"] for x in rows500),
        "scipy_milp_500x5_gap": max(x["scipy_milp_gap"] for x in rows500),
        "greedy_shortfall_pct": float(np.mean([x["greedy_shortfall_pct"] for x in rows500])),
    }
    write_json(
        Path(__file__).parent / "results" / "planning.json",
        {
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "python": sys.version.split()[0],
            },
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "reference": {
                "source": "shared/REFERENCE.md, Portfolio MILP",
                "seconds": {"50x3": 0.2, "1000x5": 0.5},
            },
            "bruteforce": bf,
            "scale": scale,
            "published": published,
            "summary": summary,
        },
    )
    console.print(summary)


if __name__ == "__main__":
    main()
