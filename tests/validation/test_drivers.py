"""Satisfaction drivers: recovery of a known θ, statistics pinned to statsmodels and to hand-computed R²,
and the CLI's one-line errors for bad answers."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import statsmodels.api as sm
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.stats.outliers_influence import variance_inflation_factor

from growthcurve.cli import main
from growthcurve.validation.drivers import (
    DriverAnalysis,
    bootstrap_standardized_coefs,
    dominance_analysis,
    standardized_ols,
    vif,
)

THETA = np.array([0.5, 0.35, 0.25, 0.15, 0.08])
SIGMA = np.full((5, 5), 0.3) + 0.7 * np.eye(5)  # items correlate, as real survey items do


def _survey(rng: np.random.Generator, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance items and an overall score with sd 1, so the standardised coefficients are exactly θ."""
    X = rng.multivariate_normal(np.zeros(5), SIGMA, size=n)
    noise_sd = np.sqrt(1 - THETA @ SIGMA @ THETA)
    return X, X @ THETA + rng.normal(0, noise_sd, n)


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_standardised_coefficients_recover_theta_within_bootstrap_cis():
    rng = np.random.default_rng(2026)
    reps, covered, ranked = 200, np.zeros(5), 0
    for r in range(reps):
        X, y = _survey(rng)
        lo, hi = bootstrap_standardized_coefs(X, y, n_boot=200, seed=r)
        covered += (lo <= THETA) & (hi >= THETA)
        if r < 20:  # dominance on a few surveys: it must rank the items in θ's order every time
            gd, _ = dominance_analysis(X, y)
            ranked += int(list(np.argsort(-gd)) == [0, 1, 2, 3, 4])
    coverage = covered / reps
    assert coverage.mean() >= 0.93, coverage
    assert coverage.min() >= 0.90, coverage
    assert ranked == 20


def test_ols_is_statsmodels_on_standardised_columns():
    rng = np.random.default_rng(1)
    X, y = _survey(rng, 500)
    X = X * [1, 2, 0.5, 3, 10] + 4  # other units and offsets: standardising must undo them
    df = pd.DataFrame(X, columns=list("abcde"))
    z = (df - df.mean()) / df.std()
    direct = sm.OLS((y - y.mean()) / y.std(ddof=1), sm.add_constant(z)).fit()
    ours = standardized_ols(X, y)
    np.testing.assert_allclose(ours.params, direct.params.to_numpy(), atol=1e-10)
    raw = sm.OLS(y, sm.add_constant(X)).fit().params[1:]
    np.testing.assert_allclose(ours.params[1:], raw * X.std(axis=0, ddof=1) / y.std(ddof=1), rtol=1e-8)
    res = DriverAnalysis(n_boot=100).fit(df, pd.Series(y, name="overall")).result_
    fit = res.fits[0]
    assert [it.std_coef for it in fit.items] == pytest.approx(list(direct.params[1:]), abs=1e-10)
    assert fit.r2 == pytest.approx(direct.rsquared)
    assert fit.ordinal is None  # a continuous overall score gets no ordinal model
    for j, it in enumerate(fit.items):
        assert it.vif == pytest.approx(variance_inflation_factor(sm.add_constant(X), j + 1))


def test_ordinal_coefficients_match_ordered_model_fitted_directly():
    rng = np.random.default_rng(3)
    X, y = _survey(rng, 800)
    stars = np.clip(np.round(3 + 1.3 * y), 1, 5).astype(int)
    df = pd.DataFrame(X, columns=list("abcde"))
    z = (df - df.mean()) / df.std()
    direct = OrderedModel(pd.Categorical(stars, ordered=True), z, distr="logit").fit(method="bfgs", disp=False)
    fit = DriverAnalysis(n_boot=100).fit(df, pd.Series(stars, name="stars")).result_.fits[0]
    assert fit.ordinal is not None and fit.ordinal["scale"] == [1, 5]
    got = [it.ordinal_coef for it in fit.items]
    np.testing.assert_allclose(got, direct.params.to_numpy()[:5], rtol=1e-4, atol=1e-5)
    # ordinal and linear effects agree on the order of the items
    assert np.argsort(got).tolist() == np.argsort([it.std_coef for it in fit.items]).tolist()


def test_dominance_shares_match_a_hand_computed_three_item_example():
    rng = np.random.default_rng(7)
    n = 300
    x1 = rng.normal(size=n)
    x2 = 0.5 * x1 + rng.normal(size=n)
    x3 = rng.normal(size=n)
    y = 1.0 * x1 + 0.6 * x2 + 0.2 * x3 + rng.normal(size=n)
    X = np.column_stack([x1, x2, x3])

    def r2(cols: tuple[int, ...]) -> float:  # plain least squares with an intercept, column by column
        if not cols:
            return 0.0
        A = np.column_stack([np.ones(n), X[:, cols]])
        resid = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
        return 1 - resid @ resid / ((y - y.mean()) @ (y - y.mean()))

    R = {s: r2(s) for k in range(4) for s in combinations(range(3), k)}  # all 7 non-empty subsets (+ empty)
    hand = [
        (R[(0,)] + ((R[(0, 1)] - R[(1,)]) + (R[(0, 2)] - R[(2,)])) / 2 + (R[(0, 1, 2)] - R[(1, 2)])) / 3,
        (R[(1,)] + ((R[(0, 1)] - R[(0,)]) + (R[(1, 2)] - R[(2,)])) / 2 + (R[(0, 1, 2)] - R[(0, 2)])) / 3,
        (R[(2,)] + ((R[(0, 2)] - R[(0,)]) + (R[(1, 2)] - R[(1,)])) / 2 + (R[(0, 1, 2)] - R[(0, 1)])) / 3,
    ]
    gd, method = dominance_analysis(X, y)
    np.testing.assert_allclose(gd, hand, atol=1e-10)
    assert gd.sum() == pytest.approx(R[(0, 1, 2)]) and method.startswith("exact")
    fit = DriverAnalysis(n_boot=100).fit(pd.DataFrame(X, columns=["a", "b", "c"]), pd.Series(y)).result_.fits[0]
    shares = [it.dominance_share for it in fit.items]
    np.testing.assert_allclose(shares, np.array(hand) / sum(hand), atol=1e-10)
    # sampled orderings (the path beyond 12 items) converge on the exact values
    sampled, how = dominance_analysis(X, y, max_exact=0, n_permutations=3000, seed=5)
    assert "seed 5" in how and sampled.sum() == pytest.approx(R[(0, 1, 2)])
    np.testing.assert_allclose(sampled, hand, atol=0.01)


def test_vif_equals_one_over_one_minus_r2_of_each_item_on_the_others():
    rng = np.random.default_rng(11)
    X = rng.multivariate_normal(np.zeros(3), [[1, 0.8, 0.2], [0.8, 1, 0.1], [0.2, 0.1, 1]], size=400)
    for j in range(3):
        others = sm.add_constant(np.delete(X, j, axis=1))
        assert vif(X)[j] == pytest.approx(1 / (1 - sm.OLS(X[:, j], others).fit().rsquared))


def test_per_variant_fits_show_why_satisfaction_moved():
    rng = np.random.default_rng(5)
    X, y = _survey(rng, 1200)
    variant = np.where(np.arange(1200) % 2 == 0, "A", "B")
    # in variant B speed (item b) stops mattering: its coefficient must drop there and only there
    y = y - np.where(variant == "B", THETA[1] * X[:, 1], 0.0)
    df = pd.DataFrame(X, columns=list("abcde"))
    res = DriverAnalysis(n_boot=200).fit(df, pd.Series(y), pd.Series(variant, name="variant")).result_
    by = {f.group: f for f in res.fits}
    assert set(by) == {"all", "A", "B"} and by["A"].n == by["B"].n == 600
    b_a, b_b = by["A"].items[1], by["B"].items[1]
    assert b_a.ci[0] > 0.2 and b_b.ci[0] < 0 < b_b.ci[1]


@pytest.fixture
def answers_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    X = rng.integers(1, 6, size=(n, 4))
    overall = np.clip(np.round(X @ [0.45, 0.3, 0.15, 0.1] + rng.normal(0, 0.6, n)), 1, 5).astype(int)
    df = pd.DataFrame(X, columns=["quality", "speed", "tone", "price"]).assign(
        overall=overall, variant=rng.choice(["A", "B"], n), flat=3
    )
    path = tmp_path / "answers.csv"
    df.to_csv(path, index=False)
    return path, df


def test_cli_writes_table_json_and_priority_matrix(answers_csv, tmp_path, capsys):
    path, df = answers_csv
    out = tmp_path / "out"
    argv = ["survey", "drivers", str(path), "--overall", "overall", "--items", "quality,speed,tone,price,flat"]
    code, stdout, err = _run([*argv, "--variant", "variant", "--out", str(out), "--n-boot", "200"], capsys)
    assert code == 0, err
    assert "Drivers of 'overall'" in stdout and "item 'flat' has the same answer everywhere" in stdout
    data = json.loads((out / "drivers.json").read_text())
    assert [f["group"] for f in data["fits"]] == ["all", "A", "B"]
    items = {it["item"]: it for it in data["fits"][0]["items"]}
    assert set(items) == {"quality", "speed", "tone", "price"}  # the zero-variance item was dropped
    assert items["quality"]["dominance_share"] > items["price"]["dominance_share"]
    assert data["fits"][0]["ordinal"]["scale"] == [1, 5]
    assert (out / "priority_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_reads_answers_from_the_store(answers_csv, tmp_path, capsys):
    _, df = answers_csv
    url = f"sqlite:///{tmp_path / 'answers.db'}"
    df.to_sql("answers", sa.create_engine(url), index=False)
    out = tmp_path / "out"
    argv = ["survey", "drivers", "--store", url, "--table", "answers", "--overall", "overall", "--out", str(out)]
    code, _, err = _run([*argv, "--items", "quality,speed,tone,price", "--n-boot", "100"], capsys)
    assert code == 0, err
    assert json.loads((out / "drivers.json").read_text())["source"] == "answers"
    code, _, err = _run([*argv, "--items", "quality,speed;drop", "--n-boot", "100"], capsys)
    assert code == 2 and "plain SQL identifier" in err


@pytest.mark.parametrize(
    ("edit", "items", "message"),
    [
        (lambda df: df, "quality,sped", "has no column 'sped'"),
        (
            lambda df: df.astype(object).assign(speed=["fast"] * 3 + list(df.speed[3:])),
            "quality,speed",
            ":2: column 'speed' holds 'fast'",
        ),
        (lambda df: df.head(4), "quality,speed,tone,price", "4 answers for 4 items: at least items + 2 = 6"),
        (
            lambda df: df.assign(q2=df.quality * 2 + 1),
            "quality,speed,q2",
            "items 'quality' and 'q2' are perfectly collinear",
        ),
        (lambda df: df.assign(overall=4), "quality,speed", "the overall score is the same in every answer"),
    ],
)
def test_cli_bad_answers_are_one_line(answers_csv, tmp_path, capsys, edit, items, message):
    path, df = answers_csv
    edit(df).to_csv(path, index=False)
    code, _, err = _run(["survey", "drivers", str(path), "--overall", "overall", "--items", items], capsys)
    assert code == 2 and err.startswith("error:") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_bootstrap_draws_equal_refitting_each_resample():
    rng = np.random.default_rng(9)
    X, y = _survey(rng, 300)
    X = X * 3 + 100  # offsets far from zero: the sufficient-statistics path must stay exact
    ours = bootstrap_standardized_coefs(X, y, n_boot=150, seed=4, chunk=150)
    draws_rng, draws = np.random.default_rng(4), []
    for idx in draws_rng.integers(0, 300, size=(150, 300), dtype=np.int32):
        Xb, yb = X[idx], y[idx]
        Z = (Xb - Xb.mean(axis=0)) / Xb.std(axis=0, ddof=1)
        draws.append(np.linalg.lstsq(Z, (yb - yb.mean()) / yb.std(ddof=1), rcond=None)[0])
    ref = np.quantile(draws, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_cli_names_jsonl_lines_and_counts_skipped_empty_answers(answers_csv, tmp_path, capsys):
    _, df = answers_csv
    rows = df[["quality", "speed", "overall"]].astype(object)
    rows.loc[2, "speed"] = "n/a"
    path = tmp_path / "answers.jsonl"
    rows.to_json(path, orient="records", lines=True)
    argv = ["survey", "drivers", str(path), "--overall", "overall", "--items", "quality,speed", "--out", str(tmp_path)]
    code, _, err = _run(argv, capsys)
    assert code == 2 and f"{path}:3: column 'speed' holds 'n/a'" in err
    rows.loc[2, "speed"] = None
    rows.loc[7, "overall"] = None
    csv = tmp_path / "answers.csv"
    rows.to_csv(csv, index=False)
    code, out, err = _run([*argv[:2], str(csv), *argv[3:], "--n-boot", "100"], capsys)
    assert code == 0, err
    assert "2 answers with an empty overall or item score were left out (first at" in out
    data = json.loads((tmp_path / "drivers.json").read_text())
    assert data["fits"][0]["n"] == len(rows) - 2 and any("left out" in w for w in data["warnings"])
