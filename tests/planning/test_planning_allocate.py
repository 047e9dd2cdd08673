"""Portfolio MILP: brute-force equality, constraints respected, infeasibility and cycles explained."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from growthcurve.errors import ConfigError, DataError
from growthcurve.planning.allocate import (
    PortfolioAllocator,
    brute_force,
    explain_infeasibility,
    greedy_allocation,
    unit_label,
)
from growthcurve.planning.portfolio import PortfolioConfig, compile_portfolio, parse_capacities
from growthcurve.planning.risk import cvar_of_loss


def random_config(n: int, n_res: int, seed: int, links: bool = True) -> PortfolioConfig:
    """Random multi-dimensional knapsack with capacity ~30-50% of total need, a few links."""
    rng = np.random.default_rng(seed)
    needs = rng.integers(1, 20, size=(n, n_res))
    caps = {f"r{j}": float(np.floor(needs[:, j].sum() * rng.uniform(0.3, 0.5))) for j in range(n_res)}
    projects = []
    for i in range(n):
        p = {
            "name": f"p{i}",
            "gain": float(rng.uniform(1, 100)),
            "p_success": float(rng.uniform(0.3, 1.0)),
            "needs": {f"r{j}": float(needs[i, j]) for j in range(n_res)},
        }
        if links and i >= 2 and rng.random() < 0.25:
            p["depends_on"] = [f"p{int(rng.integers(0, i))}"]
        if links and i >= 1 and rng.random() < 0.15:
            other = f"p{int(rng.integers(0, i))}"
            if other not in p.get("depends_on", []):
                p["excludes"] = [other]
        projects.append(p)
    return PortfolioConfig.model_validate({"projects": projects, "capacities": caps})


@pytest.mark.parametrize("seed", range(12))
def test_milp_equals_brute_force(seed: int) -> None:
    pf = compile_portfolio(random_config(11, 3, seed))
    best, levels_bf = brute_force(pf)
    res = PortfolioAllocator(mip_rel_gap=0.0, shadow_prices=False).fit(pf).result_
    assert res.expected_gain == pytest.approx(best, rel=1e-9, abs=1e-9)
    levels = np.array(res.levels)
    assert np.all(pf.A @ levels <= pf.b + 1e-9)
    # greedy is feasible and never better than the optimum
    g = greedy_allocation(pf)
    assert np.all(pf.A @ g <= pf.b + 1e-9)
    assert pf.expected_gain @ g <= best + 1e-9


def test_brute_force_itself_against_itertools() -> None:
    pf = compile_portfolio(random_config(8, 2, 99))
    best = -np.inf
    for bits in itertools.product([0, 1], repeat=pf.n):
        x = np.array(bits)
        if np.any(pf.A @ x > pf.b + 1e-9):
            continue
        if any(x[b] and not x[a] for b, a in pf.dependencies) or any(x[a] and x[b] for a, b in pf.exclusions):
            continue
        best = max(best, float(pf.expected_gain @ x))
    assert brute_force(pf)[0] == pytest.approx(best, rel=1e-12)


def _cfg(projects: list[dict], caps: dict) -> PortfolioConfig:
    return PortfolioConfig.model_validate({"projects": projects, "capacities": caps})


def test_dependency_and_exclusion_respected() -> None:
    # Unconstrained, the best set would be {B, C} (B alone is worth most), but B needs A, and C excludes A.
    cfg = _cfg(
        [
            {"name": "A", "gain": 1, "needs": {"people": 2}},
            {"name": "B", "gain": 10, "needs": {"people": 2}, "depends_on": ["A"]},
            {"name": "C", "gain": 6, "needs": {"people": 2}, "excludes": ["A"]},
            {"name": "D", "gain": 4, "needs": {"people": 2}},
        ],
        {"people": 4},
    )
    res = PortfolioAllocator().fit(compile_portfolio(cfg)).result_
    assert set(res.chosen) == {"A", "B"}  # 11 beats C+D = 10; B without A is not allowed
    cfg.projects[1].gain = 3  # now A+B = 4 < C+D = 10
    res = PortfolioAllocator().fit(compile_portfolio(cfg)).result_
    assert set(res.chosen) == {"C", "D"}


def test_integer_levels_match_enumeration() -> None:
    cfg = _cfg(
        [
            {"name": "sprints", "gain": 5, "max_level": 3, "needs": {"people": 2, "budget": 3}},
            {"name": "big", "gain": 12, "needs": {"people": 5, "budget": 4}},
            {"name": "mid", "gain": 7, "needs": {"people": 3, "budget": 5}, "depends_on": ["sprints"]},
        ],
        {"people": 8, "budget": 12},
    )
    pf = compile_portfolio(cfg)
    best = -1.0
    for x in itertools.product(range(4), range(2), range(2)):
        xv = np.array(x)
        if np.all(pf.A @ xv <= pf.b) and not (xv[2] and not xv[0]):
            best = max(best, float(pf.expected_gain @ xv))
    res = PortfolioAllocator().fit(pf).result_
    assert res.expected_gain == pytest.approx(best)


def test_per_quarter_capacities() -> None:
    cfg = PortfolioConfig.model_validate(
        {
            "quarters": ["Q1", "Q2"],
            "capacities": {"people": {"Q1": 3, "Q2": 3}},
            "projects": [
                {"name": "early", "gain": 5, "needs": {"people": {"Q1": 3}}},
                {"name": "late", "gain": 5, "needs": {"people": {"Q2": 3}}},
                {"name": "both", "gain": 8, "needs": {"people": 2}},  # scalar need: every quarter
            ],
        }
    )
    pf = compile_portfolio(cfg)
    assert [r.label for r in pf.rows] == ["people@Q1", "people@Q2"]
    res = PortfolioAllocator().fit(pf).result_
    assert set(res.chosen) == {"early", "late"}  # 10 > 8; with a total capacity of 6 "both"+... would differ


def test_shadow_prices_match_lp_finite_difference() -> None:
    pf = compile_portfolio(random_config(15, 3, 5, links=False))
    alloc = PortfolioAllocator().fit(pf)
    k = int(np.argmax([r.shadow_price for r in alloc.result_.resources]))
    price = alloc.result_.resources[k].shadow_price
    assert price > 0

    def lp_value(b: np.ndarray) -> float:
        lp = linprog(-pf.expected_gain, A_ub=pf.A, b_ub=b, bounds=[(0, 1)] * pf.n, method="highs")
        return -lp.fun

    eps = 1e-4
    b = pf.b.copy()
    b2 = b.copy()
    b2[k] += eps
    assert (lp_value(b2) - lp_value(b)) / eps == pytest.approx(price, rel=1e-4)
    bound = alloc.result_.lp_bound
    assert bound == pytest.approx(lp_value(b)) and bound >= alloc.result_.expected_gain - 1e-9


def test_what_if_keeps_every_parameter_of_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    """what_if rebuilt its allocators by hand and dropped the user's warm_start (a cold start was asked for and
    each re-solve was warm-started from greedy); it clones the fitted allocator instead."""
    from sklearn.base import clone

    import growthcurve.planning.allocate as allocate

    starts: list[bool] = []
    solve = allocate._solve_milp

    def recording(prob, gap, limit, x0=None):  # type: ignore[no-untyped-def]
        starts.append(x0 is not None)
        return solve(prob, gap, limit, x0)

    monkeypatch.setattr(allocate, "_solve_milp", recording)
    pf = compile_portfolio(random_config(12, 2, 7, links=False))
    cold = PortfolioAllocator(warm_start=False, mip_rel_gap=1e-4).fit(pf)
    rows = cold.what_if((-0.1, 0.1))
    assert len(rows) == 2 * len(pf.rows) and len(starts) == 1 + len(rows)
    assert not any(starts)  # no re-solve was warm-started
    assert clone(cold).get_params() == cold.get_params() and not hasattr(clone(cold), "result_")
    starts.clear()
    PortfolioAllocator(warm_start=True).fit(pf).what_if((0.1,))
    assert any(starts)  # greedy is feasible here: warm starts are used when asked for


def test_what_if_matches_resolve() -> None:
    pf = compile_portfolio(random_config(10, 2, 3, links=False))
    alloc = PortfolioAllocator().fit(pf)
    rows = alloc.what_if((-0.2, 0.2))
    assert len(rows) == 2 * len(pf.rows)
    w = rows[1]
    direct = brute_force(pf.with_capacity(0, pf.rows[0].capacity * 1.2))[0]
    assert w.objective_value == pytest.approx(direct)
    assert w.delta == pytest.approx(direct - alloc.result_.objective_value)


def test_infeasible_plan_names_conflicting_constraints() -> None:
    cfg = _cfg(
        [
            {"name": "A", "gain": 1, "needs": {"people": 3, "gpu": 1}, "mandatory": True},
            {"name": "B", "gain": 1, "needs": {"people": 3, "gpu": 1}, "mandatory": True},
            {"name": "C", "gain": 1, "needs": {"people": 1, "gpu": 1}, "mandatory": True},
        ],
        {"people": 5, "gpu": 10},
    )
    pf = compile_portfolio(cfg)
    iis = explain_infeasibility(pf)
    labels = {unit_label(pf, u) for u in iis}
    assert labels == {"capacity people <= 5", "mandatory 'A'", "mandatory 'B'"}
    with pytest.raises(DataError, match="capacity people <= 5") as err:
        PortfolioAllocator().fit(pf)
    assert "gpu" not in str(err.value) and "\n" not in str(err.value)


def test_infeasible_through_exclusion_and_dependency() -> None:
    cfg = _cfg(
        [
            {"name": "A", "gain": 1, "mandatory": True},
            {"name": "B", "gain": 1, "depends_on": ["C"], "mandatory": True},
            {"name": "C", "gain": 1, "excludes": ["A"]},
            {"name": "D", "gain": 1, "needs": {"people": 1}},
        ],
        {"people": 1},
    )
    pf = compile_portfolio(cfg)
    labels = {unit_label(pf, u) for u in explain_infeasibility(pf)}
    assert labels == {"mandatory 'A'", "mandatory 'B'", "'B' needs 'C'", "'A' excludes 'C'"}


def test_cycle_is_named() -> None:
    cfg = _cfg(
        [
            {"name": "A", "gain": 1, "depends_on": ["C"]},
            {"name": "B", "gain": 1, "depends_on": ["A"]},
            {"name": "C", "gain": 1, "depends_on": ["B"]},
            {"name": "D", "gain": 1},
        ],
        {},
    )
    with pytest.raises(DataError, match="cycle") as err:
        compile_portfolio(cfg)
    msg = str(err.value)
    assert all(n in msg for n in ("A", "B", "C")) and "D" not in msg.split(":")[1].split(";")[0]


def test_bad_references_and_capacities() -> None:
    with pytest.raises(DataError, match="did you mean 'alpha'"):
        compile_portfolio(_cfg([{"name": "alpha", "gain": 1}, {"name": "b", "gain": 1, "depends_on": ["alpah"]}], {}))
    with pytest.raises(ConfigError, match="--capacity gpu=N"):
        compile_portfolio(_cfg([{"name": "a", "gain": 1, "needs": {"gpu": 2}}], {}))
    with pytest.raises(ConfigError, match="not a number"):
        parse_capacities(["people=ten"])
    assert parse_capacities(["people@Q1=3", "people@Q2=4", "gpu=10"]) == {
        "people": {"Q1": 3.0, "Q2": 4.0},
        "gpu": 10.0,
    }


def test_cvar_objective() -> None:
    # "safe" pays 50 for sure; "risky" pays 0 or 120 (expected 60): max E picks risky, risk-averse picks safe.
    cfg = _cfg(
        [
            {"name": "safe", "gain": 50, "needs": {"people": 1}},
            {"name": "risky", "gain": 120, "p_success": 0.5, "needs": {"people": 1}},
        ],
        {"people": 1},
    )
    pf = compile_portfolio(cfg)
    assert PortfolioAllocator().fit(pf).result_.chosen == ["risky"]
    res = PortfolioAllocator(objective="cvar", risk_lambda=1.0, cvar_alpha=0.1, n_scenarios=400).fit(pf).result_
    assert res.chosen == ["safe"]
    assert res.cvar_loss == pytest.approx(-50.0)
    assert res.objective_value == pytest.approx(50 + 50)
    zero = PortfolioAllocator(objective="cvar", risk_lambda=0.0, n_scenarios=100).fit(pf).result_
    assert zero.chosen == ["risky"]


def test_cvar_of_loss_is_tail_mean() -> None:
    loss = np.arange(100, dtype=float)
    assert cvar_of_loss(loss, 0.1) == pytest.approx(np.mean(np.arange(90, 100)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=1001)
    # Rockafellar-Uryasev: min over t of t + E[(L - t)+]/alpha, checked on a grid
    grid = np.linspace(-3, 3, 6001)
    ru = min(t + np.maximum(x - t, 0).mean() / 0.05 for t in grid)
    assert cvar_of_loss(x, 0.05) == pytest.approx(ru, abs=1e-3)


@pytest.mark.parametrize("objective", ["expected", "cvar"])
def test_greedy_start_is_feasible_and_leaves_the_optimum_unchanged(objective: str) -> None:
    """The warm start is a feasible point of the full model (levels, indicators, CVaR terms) and HiGHS
    reaches the same optimum with or without it."""
    from growthcurve.planning.allocate import _build, _start_point
    from growthcurve.planning.risk import sample_outcomes

    cfg = random_config(14, 3, 5)
    raw = cfg.model_dump()
    raw["projects"][0]["max_level"] = 3  # one integer-level project: exercises the activity indicator
    pf = compile_portfolio(PortfolioConfig.model_validate(raw))
    scen = sample_outcomes(pf, 200, 0) if objective == "cvar" else None
    prob = _build(pf, objective, 0.5, 0.1, scen)
    x0 = _start_point(prob, pf, greedy_allocation(pf), scen)
    assert np.all(prob.A @ x0 <= prob.b + 1e-9) and np.all(x0 >= prob.lb - 1e-9) and np.all(x0 <= prob.ub + 1e-9)
    kw = {"objective": objective, "n_scenarios": 200, "mip_rel_gap": 0.0, "shadow_prices": False}
    warm = PortfolioAllocator(**kw).fit(pf).result_  # type: ignore[arg-type]
    cold = PortfolioAllocator(**kw, warm_start=False).fit(pf).result_  # type: ignore[arg-type]
    assert warm.status == cold.status == "optimal"
    assert warm.objective_value == pytest.approx(cold.objective_value, rel=1e-9, abs=1e-9)
