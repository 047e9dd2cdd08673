"""Golden values: our statistics on sufficient statistics vs scipy/statsmodels on raw data and GrowthBook."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate, stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from growthcurve.validation import ABTest, SufficientStats, estimate_arm, frequentist_test
from growthcurve.validation.stats import cs_halfwidth, sequential_rho


def _fit(stats_by_arm, **kw):
    return ABTest(**kw).fit(stats_by_arm)


def test_growthbook_chance_to_win_49_vs_51():
    # gbstats tests/bayesian/test_tests.py pins chance_to_win=0.60918, expected 0.04082,
    # ci [-0.24779, 0.32943], risk [0.0814, 0.04058] for 49/100 vs 51/100 (Gaussian on relative lift).
    comp = _fit(
        {"control": SufficientStats(100, 49, 49), "b": SufficientStats(100, 51, 51)}, metric_type="binomial"
    ).result_.comparisons[0]
    b = comp.bayesian
    assert round(b.chance_to_win, 3) == 0.609
    assert b.chance_to_win == pytest.approx(0.60918, abs=5e-5)
    assert b.mean == pytest.approx(0.04082, abs=5e-5)
    assert b.credible_interval[0] == pytest.approx(-0.24779, abs=5e-5)
    assert b.credible_interval[1] == pytest.approx(0.32943, abs=5e-5)
    assert b.expected_loss_control == pytest.approx(0.0814, abs=5e-5)
    assert b.expected_loss_treatment == pytest.approx(0.04058, abs=5e-5)


def test_bayesian_expected_loss_matches_numerical_integration():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 3, 400), rng.normal(10.4, 3, 380)
    comp = _fit({"control": SufficientStats.from_arrays(a), "t": SufficientStats.from_arrays(b)}).result_
    bay = comp.comparisons[0].bayesian
    dist = stats.norm(bay.mean, bay.sd)
    gain = integrate.quad(
        lambda x: max(x, 0) * dist.pdf(x), bay.mean - 12 * bay.sd, bay.mean + 12 * bay.sd, points=[0.0]
    )[0]
    assert bay.expected_loss_control == pytest.approx(gain, rel=1e-6)
    assert bay.chance_to_win == pytest.approx(dist.sf(0), rel=1e-9)


def test_welch_matches_statsmodels_on_raw_data():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5.0, 2.0, 300), rng.normal(5.4, 3.0, 250)
    comp = _fit(
        {"control": SufficientStats.from_arrays(a), "t": SufficientStats.from_arrays(b)}, metric_type="mean"
    ).result_.comparisons[0]
    f = comp.frequentist
    cm = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    t, p, df = cm.ttest_ind(usevar="unequal")
    lo, hi = cm.tconfint_diff(usevar="unequal")
    assert f.test == "welch"
    assert f.statistic == pytest.approx(t, rel=1e-9)
    assert f.p_value == pytest.approx(p, rel=1e-9)
    assert f.df == pytest.approx(df, rel=1e-9)
    assert f.abs_ci == pytest.approx((lo, hi), rel=1e-9)
    assert stats.ttest_ind(b, a, equal_var=False).pvalue == pytest.approx(f.p_value, rel=1e-9)
    # relative lift: delta method, checked against a large parametric bootstrap of the ratio of means
    ma, mb, va, vb = a.mean(), b.mean(), a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    draws = (
        np.random.default_rng(2).normal(mb, math.sqrt(vb), 400_000)
        / np.random.default_rng(3).normal(ma, math.sqrt(va), 400_000)
        - 1
    )
    assert f.rel_effect == pytest.approx(mb / ma - 1)
    assert (f.rel_ci[1] - f.rel_ci[0]) / 3.92 == pytest.approx(draws.std(), rel=0.02)


def test_two_proportion_z_matches_statsmodels():
    comp = _fit(
        {"control": SufficientStats(2000, 200, 200), "t": SufficientStats(2100, 252, 252)}, metric_type="binomial"
    ).result_.comparisons[0]
    res = sm_proportion.test_proportions_2indep(252, 2100, 200, 2000, method="wald", compare="diff", correction=False)
    assert comp.frequentist.test == "z"
    assert comp.frequentist.statistic == pytest.approx(res.statistic, rel=1e-9)
    assert comp.frequentist.p_value == pytest.approx(res.pvalue, rel=1e-9)


def test_ratio_delta_method_matches_linearisation():
    rng = np.random.default_rng(4)
    den = rng.poisson(3, 2000) + 1.0
    num = rng.binomial(den.astype(int), 0.3).astype(float)
    arm = estimate_arm(SufficientStats.from_arrays(num, den), "a", "ratio")
    r = num.sum() / den.sum()
    lin = (num - r * den) / den.mean()  # influence function of the ratio estimator
    assert arm.mean == pytest.approx(r)
    assert arm.se == pytest.approx(lin.std(ddof=1) / math.sqrt(len(num)), rel=1e-9)


def test_cuped_matches_ols_with_centred_covariate():
    rng = np.random.default_rng(5)
    n = 1500
    x = rng.normal(10, 2, 2 * n)
    treat = np.repeat([0.0, 1.0], n)
    y = 3 + 0.7 * x + 0.2 * treat + rng.normal(0, 1.5, 2 * n)
    stats_ = {"control": SufficientStats.from_arrays(y[:n], x[:n]), "t": SufficientStats.from_arrays(y[n:], x[n:])}
    model = ABTest(metric_type="mean", cuped=True).fit(stats_)
    comp = model.result_.comparisons[0]
    ols = sm.OLS(y, sm.add_constant(np.column_stack([treat, x - x.mean()]))).fit()
    # pooled-θ CUPED equals OLS on the treatment dummy with a common slope (up to within/total slope)
    assert comp.frequentist.abs_effect == pytest.approx(ols.params[1], abs=0.01)
    assert comp.frequentist.abs_effect - 0.2 == pytest.approx(0, abs=4 * ols.bse[1])
    assert model.theta_ == pytest.approx(np.cov(x, y)[0, 1] / np.var(x, ddof=1), rel=1e-9)
    rho2 = np.corrcoef(x, y)[0, 1] ** 2
    assert comp.variance_reduction == pytest.approx(rho2, abs=0.03)


def test_confidence_sequence_formula_and_validity():
    # eq. (161) of Waudby-Smith et al.: ρ² = (−2 ln α + ln(1 − 2 ln α)) / N*
    alpha, n_star = 0.05, 5000
    assert sequential_rho(alpha, n_star) ** 2 == pytest.approx(
        (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / n_star
    )
    n = np.array([100.0, 5000.0, 1e6])
    hw = cs_halfwidth(1.0, n, alpha, n_star)
    fixed = stats.norm.ppf(0.975) / np.sqrt(n)
    assert np.all(hw > fixed)  # wider than the fixed-horizon interval at every n
    assert np.all(np.diff(hw) < 0)  # and shrinks with more data
    # A/A with 30 looks: the sequential test stays at or below alpha, the naive one does not
    from growthcurve.validation.simulate import simulate_peeking

    res = simulate_peeking(experiments=1500, looks=30, users_per_look=300, seed=11)
    assert res.reject_sequential <= 0.05
    assert res.reject_naive_peeking > 0.15
    assert res.coverage_sequential >= 0.94


def test_multiple_arms_holm_and_bh_adjust():
    rng = np.random.default_rng(6)
    arms = {"control": SufficientStats.from_arrays(rng.normal(0, 1, 500))}
    for i, shift in enumerate([0.0, 0.12, 0.2]):
        arms[f"t{i}"] = SufficientStats.from_arrays(rng.normal(shift, 1, 500))
    holm = ABTest(correction="holm").fit(arms).result_.comparisons
    bh = ABTest(correction="bh").fit(arms).result_.comparisons
    raw = [c.reported()[2] for c in holm]  # the p-value of the test each row reports
    order = np.argsort(raw)
    m = len(raw)
    expected_holm = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * raw[i]))
        expected_holm[i] = running
    expected_bh = np.empty(m)
    running = 1.0
    for k in range(m - 1, -1, -1):
        i = order[k]
        running = min(running, raw[i] * m / (k + 1))
        expected_bh[i] = running
    assert [c.p_adjusted for c in holm] == pytest.approx(list(expected_holm))
    assert [c.p_adjusted for c in bh] == pytest.approx(list(expected_bh))
    assert all(c.significant == (c.p_adjusted < 0.05) for c in holm)


def test_frequentist_test_function_composes_on_arm_estimates():
    a = estimate_arm(SufficientStats(50, 100.0, 260.0), "a", "mean")
    b = estimate_arm(SufficientStats(60, 150.0, 420.0), "b", "mean")
    f = frequentist_test(a, b, 0.05, "z")
    assert f.abs_effect == pytest.approx(2.5 - 2.0)
    assert f.p_value == pytest.approx(2 * stats.norm.sf(abs(f.statistic)))
