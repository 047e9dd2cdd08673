"""Goals (status transitions, store round trip), Monte Carlo risk and review."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from growthcurve.errors import DataError
from growthcurve.planning.goals import GoalsConfig, KeyResultSpec, assess_goals, assess_key_result
from growthcurve.planning.portfolio import PortfolioConfig, compile_portfolio
from growthcurve.planning.review import review_plan
from growthcurve.planning.risk import PlanRiskSimulator
from growthcurve.planning.store import GoalStore

D = dt.date


def _kr(**kw: object) -> KeyResultSpec:
    base = {
        "id": "KR1",
        "start_value": 0.0,
        "target": 100.0,
        "start_date": D(2026, 1, 1),
        "due_date": D(2026, 4, 11),
    }  # 100 days
    return KeyResultSpec.model_validate({**base, **kw})


def test_status_transitions() -> None:
    kr = _kr(
        history=[
            {"date": D(2026, 1, 21), "value": 30},
            {"date": D(2026, 2, 10), "value": 45},
            {"date": D(2026, 3, 2), "value": 52},
            {"date": D(2026, 3, 22), "value": 100},
        ]
    )
    seq = [
        (D(2025, 12, 31), "not-started"),
        (D(2026, 1, 10), "no-data"),
        (D(2026, 1, 25), "on-track"),
        (D(2026, 2, 15), "on-track"),
        (D(2026, 3, 5), "at-risk"),
        (D(2026, 3, 25), "done"),
    ]
    for day, expected in seq:
        assert assess_key_result(kr, day).status == expected, day
    st = assess_key_result(kr, D(2026, 3, 5))
    # linear forecast: 52 after 60 days -> 52/60*100 at day 100
    assert st.forecast == pytest.approx(52 / 60 * 100)
    assert st.progress == pytest.approx(0.52) and st.expected == pytest.approx(0.63)
    slow = _kr(history=[{"date": D(2026, 2, 20), "value": 20}])
    assert assess_key_result(slow, D(2026, 3, 1)).status == "off-track"  # forecast 40 % < 70 %
    assert assess_key_result(slow, D(2026, 4, 11)).status == "missed"


def test_decreasing_target_and_fitted_trend() -> None:
    kr = _kr(
        start_value=120,
        target=80,
        history=[
            {"date": D(2026, 1, 21), "value": 110},
            {"date": D(2026, 2, 10), "value": 104},
            {"date": D(2026, 3, 2), "value": 95},
        ],
    )
    st = assess_key_result(kr, D(2026, 3, 3), method="fit")
    fit = stats.linregress([0, 20, 40, 60], [120, 110, 104, 95])
    assert st.method == "fit"
    assert st.forecast == pytest.approx(fit.intercept + fit.slope * 100)
    assert st.progress == pytest.approx(25 / 40)
    assert st.forecast == pytest.approx(78.9)  # by hand: slope -810/2000, intercept 119.4
    assert st.status == "on-track"  # 41.1 of the 40 points to go


def test_goal_store_round_trip(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/goals.db"
    cfg = GoalsConfig.model_validate(
        {
            "objectives": [
                {
                    "id": "O1",
                    "owner": "ana",
                    "key_results": [
                        {
                            "id": "KR1",
                            "start_value": 0,
                            "target": 10,
                            "start_date": "2026-01-01",
                            "due_date": "2026-03-31",
                            "history": [{"date": "2026-01-31", "value": 3}],
                        },
                        {
                            "id": "KR2",
                            "start_value": 5,
                            "target": 1,
                            "start_date": "2026-01-01",
                            "due_date": "2026-03-31",
                            "current": 4,
                            "current_date": "2026-02-01",
                        },
                    ],
                }
            ]
        }
    )
    store = GoalStore(url)
    assert store.save_goals(cfg) == 2
    store.add_checkin("O1", "KR1", 6, D(2026, 2, 28))
    store.add_checkin("O1", "KR1", 7, D(2026, 2, 28))  # same day replaces
    loaded = GoalStore(url).load_goals()
    kr1 = loaded.objectives[0].key_results[0]
    assert [(c.date, c.value) for c in kr1.history] == [(D(2026, 1, 31), 3.0), (D(2026, 2, 28), 7.0)]
    status = assess_goals(loaded, D(2026, 3, 1))[0]
    assert status.key_results[0].current == 7.0 and status.key_results[1].current == 4.0
    assert store.save_goals(cfg) == 2  # re-adding does not duplicate check-ins
    assert len(GoalStore(url).load_goals().objectives[0].key_results[0].history) == 2
    with pytest.raises(DataError, match="no key result 'O1/KR9'"):
        store.add_checkin("O1", "KR9", 1.0)


def _pf() -> object:
    return compile_portfolio(
        PortfolioConfig.model_validate(
            {
                "capacities": {"people": 10},
                "projects": [
                    {"name": "a", "gain": 10, "p_success": 0.5, "needs": {"people": 1}},
                    {"name": "b", "gain": 10, "p_success": 0.5, "needs": {"people": 1}},
                    {"name": "c", "gain": 10, "p_success": 0.5, "needs": {"people": 1}},
                    {"name": "n", "gain": 20, "gain_dist": "normal", "gain_sd": 5, "needs": {"people": 1}},
                ],
            }
        )
    )


def test_risk_matches_binomial_and_is_reproducible() -> None:
    pf = _pf()
    sim = PlanRiskSimulator(n_sims=40_000, seed=1, target=20).fit(pf, [1, 1, 1, 0])
    # total = 10 * Binomial(3, 0.5): P(total >= 20) = P(K >= 2) = 0.5
    assert sim.result_.prob_hit_target == pytest.approx(0.5, abs=4 * sim.result_.prob_hit_target_se)
    assert sim.result_.mean == pytest.approx(15, abs=0.15)
    again = PlanRiskSimulator(n_sims=40_000, seed=1, target=20).fit(pf, [1, 1, 1, 0])
    assert np.array_equal(sim.totals_, again.totals_)
    normal = PlanRiskSimulator(n_sims=40_000, seed=2).fit(pf, [0, 0, 0, 1]).result_
    assert normal.p10 == pytest.approx(20 + 5 * stats.norm.ppf(0.1), abs=0.15)
    assert normal.p90 == pytest.approx(20 + 5 * stats.norm.ppf(0.9), abs=0.15)


def test_review_planned_vs_actual() -> None:
    pf = _pf()
    actuals = pd.DataFrame({"name": ["a", "n"], "actual_gain": [0.0, 31.0], "actual_people": [2.0, 1.0]})
    rv = review_plan(pf, actuals, np.array([1, 1, 0, 1]), n_sims=2000)
    rows = {r.name: r for r in rv.projects}
    assert rows["a"].planned_gain == 5 and rows["a"].gain_diff == -5
    assert rows["b"].note == "no actuals"
    assert rv.planned_total == pytest.approx(30) and rv.actual_total == pytest.approx(31)
    assert rv.planned_use == {"people": 3.0} and rv.actual_use == {"people": 3.0}
    assert 0 <= rv.actual_percentile <= 100 and not math.isnan(rv.actual_percentile)
