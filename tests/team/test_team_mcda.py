"""AHP and TOPSIS against published worked examples; weighted sum, stability, learned weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from growthcurve.errors import ConfigError, DataError
from growthcurve.team.ahp import AHP
from growthcurve.team.scoring import CriteriaConfig, TalentScorer, criteria_matrix, learn_weights


def _matrix(names: list[str], upper: dict[tuple[str, str], float]) -> np.ndarray:
    a = np.ones((len(names), len(names)))
    for (x, y), v in upper.items():
        i, j = names.index(x), names.index(y)
        a[i, j], a[j, i] = v, 1 / v
    return a


# Saaty, T. L. (2008). "Decision making with the analytic hierarchy process", Int. J. Services Sciences
# 1(1), 83-98: "Which drink is consumed more in the U.S.?" Published eigenvector (3 decimals):
# coffee .177, wine .019, tea .042, beer .116, sodas .190, milk .129, water .327; C.R. = .022.
DRINKS = ["coffee", "wine", "tea", "beer", "soda", "milk", "water"]
DRINKS_JUDGEMENTS = {
    ("coffee", "wine"): 9,
    ("coffee", "tea"): 5,
    ("coffee", "beer"): 2,
    ("coffee", "soda"): 1,
    ("coffee", "milk"): 1,
    ("water", "coffee"): 2,
    ("tea", "wine"): 3,
    ("beer", "wine"): 9,
    ("beer", "tea"): 3,
    ("beer", "milk"): 1,
    ("soda", "wine"): 9,
    ("soda", "tea"): 4,
    ("soda", "beer"): 2,
    ("soda", "milk"): 2,
    ("milk", "wine"): 9,
    ("milk", "tea"): 3,
    ("water", "wine"): 9,
    ("water", "tea"): 9,
    ("water", "beer"): 3,
    ("water", "soda"): 2,
    ("water", "milk"): 3,
}


def test_ahp_saaty_drinks_example() -> None:
    ahp = AHP().fit(_matrix(DRINKS, DRINKS_JUDGEMENTS), DRINKS)
    published = [0.177, 0.019, 0.042, 0.116, 0.190, 0.129, 0.327]
    assert np.round(ahp.weights_, 3).tolist() == published
    assert round(ahp.cr_, 3) == 0.022
    assert ahp.result_.ri == 1.32


def test_ahp_wikipedia_leader_example_cr() -> None:
    # Wikipedia, "Analytic hierarchy process - leader example": criteria matrix
    # (Experience, Education, Charisma, Age), consistency ratio 0.044.
    names = ["exp", "edu", "cha", "age"]
    a = _matrix(
        names,
        {
            ("exp", "edu"): 4,
            ("exp", "cha"): 3,
            ("exp", "age"): 7,
            ("edu", "cha"): 1 / 3,
            ("edu", "age"): 3,
            ("cha", "age"): 5,
        },
    )
    ahp = AHP().fit(a, names)
    assert round(ahp.cr_, 3) == 0.044
    assert np.argsort(-ahp.weights_).tolist() == [0, 2, 1, 3]


def test_ahp_bad_matrices() -> None:
    names = ["a", "b", "c"]
    good = _matrix(names, {("a", "b"): 2, ("a", "c"): 4, ("b", "c"): 2})
    assert AHP().fit(good, names).cr_ == pytest.approx(0.0, abs=1e-9)  # perfectly consistent
    bad = good.copy()
    bad[1, 0] = 2.0
    with pytest.raises(DataError, match=r"not reciprocal: \(a, b\) = 2 but \(b, a\) = 2"):
        AHP().fit(bad, names)
    neg = good.copy()
    neg[0, 2] = -4
    with pytest.raises(DataError, match="must be positive"):
        AHP().fit(neg, names)
    inconsistent = _matrix(names, {("a", "b"): 9, ("b", "c"): 9, ("a", "c"): 1 / 9})
    with pytest.raises(DataError, match="consistency ratio .* > 0.1"):
        AHP().fit(inconsistent, names)
    assert AHP(force=True).fit(inconsistent, names).cr_ > 0.1


# Hwang, C.-L. & Yoon, K. (1981). Multiple Attribute Decision Making, Springer, fighter-aircraft example
# (also Yoon & Hwang 1995, Sage): 4 aircraft x 6 attributes (max speed, ferry range, max payload,
# acquisition cost [cost], reliability, maneuverability), w = (0.2, 0.1, 0.1, 0.1, 0.2, 0.3).
# Published relative closeness C* = (0.643, 0.268, 0.613, 0.312): A1 > A3 > A4 > A2.
AIRCRAFT = pd.DataFrame(
    {
        "name": ["A1", "A2", "A3", "A4"],
        "speed": [2.0, 2.5, 1.8, 2.2],
        "range": [1500, 2700, 2000, 1800],
        "payload": [20000, 18000, 21000, 20000],
        "cost": [5.5, 6.5, 4.5, 5.0],
        "reliability": [5, 3, 7, 5],
        "maneuverability": [9, 5, 7, 5],
    }
)
AIRCRAFT_CRITERIA = CriteriaConfig.model_validate(
    {
        "criteria": [
            {"name": "speed", "weight": 0.2},
            {"name": "range", "weight": 0.1},
            {"name": "payload", "weight": 0.1},
            {"name": "cost", "kind": "cost", "weight": 0.1},
            {"name": "reliability", "weight": 0.2},
            {"name": "maneuverability", "weight": 0.3},
        ]
    }
)


def test_topsis_fighter_aircraft() -> None:
    res = TalentScorer(k=2, n_samples=50).fit(AIRCRAFT, AIRCRAFT_CRITERIA).result_
    # the book rounds intermediate values to 4 decimals (A3: 0.61354 here), so compare within 6e-4
    assert res.scores["topsis"] == pytest.approx([0.643, 0.268, 0.613, 0.312], abs=6e-4)
    assert res.ranks["topsis"].tolist() == [1, 4, 2, 3]


def test_weighted_sum_independent() -> None:
    res = TalentScorer(n_samples=20).fit(AIRCRAFT, AIRCRAFT_CRITERIA).result_
    x = criteria_matrix(AIRCRAFT, AIRCRAFT_CRITERIA)
    norm = (x - x.min(0)) / (x.max(0) - x.min(0))
    norm[:, 3] = 1 - norm[:, 3]  # cost criterion
    expected = norm @ np.array([0.2, 0.1, 0.1, 0.1, 0.2, 0.3])
    assert res.scores["wsm"] == pytest.approx(expected)


def test_stability_bounds() -> None:
    fixed = TalentScorer(k=2, perturbation=0.0, n_samples=30).fit(AIRCRAFT, AIRCRAFT_CRITERIA).result_
    assert fixed.stability["topsis"].p_topk_unchanged == 1.0
    assert fixed.stability["topsis"].mean_kendall_tau == pytest.approx(1.0)
    noisy = TalentScorer(k=2, perturbation=0.9, n_samples=300).fit(AIRCRAFT, AIRCRAFT_CRITERIA).result_
    s = noisy.stability["topsis"]
    assert s.p_topk_unchanged < 1.0
    assert sum(s.p_in_topk.values()) == pytest.approx(2.0)  # each draw puts exactly k in the top-k


def test_missing_and_non_numeric_criteria() -> None:
    with pytest.raises(DataError, match="lack criteria column"):
        TalentScorer().fit(AIRCRAFT.drop(columns=["cost"]), AIRCRAFT_CRITERIA)
    bad = AIRCRAFT.astype({"speed": object})
    bad.loc[2, "speed"] = "fast"
    with pytest.raises(DataError, match="'speed' must be numeric, got 'fast' on line 4"):
        TalentScorer().fit(bad, AIRCRAFT_CRITERIA)
    no_w = CriteriaConfig.model_validate({"criteria": [{"name": "speed"}, {"name": "cost", "kind": "cost"}]})
    with pytest.raises(ConfigError, match="--ahp"):
        TalentScorer().fit(AIRCRAFT, no_w)


def test_learned_weights_recover_theta() -> None:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, 3)) * [1.0, 2.0, 1.0] + [5, 5, 5]
    y = 2.0 * x[:, 0] + 0.5 * x[:, 1] - 1.0 * x[:, 2] + rng.normal(0, 0.5, n)
    past = pd.DataFrame(x, columns=["a", "b", "salary"]).assign(outcome=y)
    crit = CriteriaConfig.model_validate(
        {"criteria": [{"name": "a"}, {"name": "b"}, {"name": "salary", "kind": "cost"}]}
    )
    lw = learn_weights(past, crit)
    sd = x.std(axis=0)
    true = np.array([2.0, 0.5, -1.0]) * sd  # per standard deviation of each criterion
    assert lw.theta == pytest.approx(true, abs=4 * lw.theta_sd.max())
    assert np.all(lw.theta_sd > 0) and lw.contradicting == []
    assert lw.weights == pytest.approx(np.abs(true) / np.abs(true).sum(), abs=0.03)
    wrong = CriteriaConfig.model_validate({"criteria": [{"name": "a"}, {"name": "b"}, {"name": "salary"}]})
    assert learn_weights(past, wrong).contradicting == ["salary"]
    # fit takes the learned weights and builds the whole result from them (the CLI used to write
    # ahp_cr/learned/predicted into the fitted result afterwards)
    candidates = past.head(8).assign(name=[f"c{i}" for i in range(8)])
    res = TalentScorer(k=2, n_samples=20).fit(candidates, crit, learned=lw).result_
    assert res.weight_source == "learned" and res.weights == pytest.approx(lw.weights / lw.weights.sum())
    assert res.learned is lw and res.ahp_cr is None and res.predicted is not None
    expected_mean, _ = lw.predict(criteria_matrix(candidates, crit))
    assert res.predicted[0] == pytest.approx(expected_mean)
    assert "predicted_outcome" in res.to_frame().columns and res.summary()["learned"]["n_hires"] == n
    with pytest.raises(ConfigError, match="not both"):
        TalentScorer().fit(candidates, crit, weights=np.ones(3), learned=lw)
