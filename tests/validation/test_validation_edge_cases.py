"""Bad input gives an explicit error or warning on the result object, never a silent NaN."""

from __future__ import annotations

import json

import pytest

from growthcurve.validation import ABTest, SRMCheck, SufficientStats, SurveyAnalysis


def _assert_no_nan(obj) -> None:
    json.dumps(obj, allow_nan=False)  # raises on NaN/inf anywhere


def _comp(stats, **kw):
    res = ABTest(**kw).fit(stats).result_
    _assert_no_nan(res.to_dict())
    return res


def test_zero_variance_in_both_arms_is_an_error():
    res = _comp({"control": SufficientStats(10, 50.0, 250.0), "t": SufficientStats(12, 60.0, 300.0)})
    comp = res.comparisons[0]
    assert comp.frequentist is None and "zero variance" in comp.error


def test_zero_variance_in_one_arm_is_a_warning():
    res = _comp({"control": SufficientStats(10, 50.0, 250.0), "t": SufficientStats(3, 6.0, 14.0)})
    comp = res.comparisons[0]
    assert comp.error is None and comp.frequentist is not None
    assert any("zero variance" in w for w in comp.warnings)


@pytest.mark.parametrize(
    ("treatment", "needle"),
    [
        (SufficientStats(0, 0.0, 0.0), "is empty"),
        (SufficientStats(1, 3.0, 9.0), "n=1 < 2"),
        (SufficientStats(-5, 1.0, 1.0), "negative counts"),
        (SufficientStats(10, float("nan"), 1.0), "non-finite"),
    ],
)
def test_bad_arms_carry_errors(treatment, needle):
    res = _comp({"control": SufficientStats(10, 5.0, 9.0), "t": treatment})
    assert needle in res.comparisons[0].error
    assert next(a for a in res.arms if a.variant == "t").mean is None


def test_missing_control_variant():
    res = _comp({"a": SufficientStats(10, 5.0, 9.0), "b": SufficientStats(10, 5.0, 9.0)}, control="control")
    assert "control variant 'control' has no data" in res.error
    assert _comp({"control": SufficientStats(10, 5.0, 9.0)}).error.startswith("only one variant")


def test_ratio_with_zero_denominators():
    res = _comp(
        {"control": SufficientStats(10, 0.0, 0.0, 0.0, 0.0, 0.0), "t": SufficientStats(10, 3.0, 5.0, 10.0, 12.0, 4.0)},
        metric_type="ratio",
    )
    assert "denominator sums to 0" in res.comparisons[0].error


def test_binomial_with_counts_above_n():
    res = _comp(
        {"control": SufficientStats(10, 12.0, 20.0), "t": SufficientStats(10, 3.0, 3.0)}, metric_type="binomial"
    )
    assert "needs 0/1 per unit" in res.comparisons[0].error


def test_zero_control_mean_drops_relative_lift_with_a_warning():
    res = _comp({"control": SufficientStats(10, 0.0, 10.0), "t": SufficientStats(10, 5.0, 13.0)})
    comp = res.comparisons[0]
    assert comp.frequentist.rel_effect is None and comp.frequentist.abs_effect == 0.5
    assert any("relative lift is undefined" in w for w in comp.warnings)
    assert comp.scale == "absolute" and comp.bayesian.lift == "absolute"


def test_cuped_with_constant_covariate_falls_back():
    s = {"control": SufficientStats(10, 5.0, 9.0, 10.0, 10.0, 5.0), "t": SufficientStats(10, 6.0, 9.0, 10.0, 10.0, 6.0)}
    res = _comp(s, cuped=True)
    assert res.cuped_theta is None and any("zero variance" in w for w in res.warnings)
    assert res.comparisons[0].frequentist is not None


def test_srm_edge_cases():
    assert not SRMCheck().fit({"a": 0, "b": 0}).result_.alarm
    extra = SRMCheck(weights={"a": 0.5, "b": 0.5}).fit({"a": 10, "b": 10, "c": 3}).result_
    assert extra.alarm and "not in the planned split" in extra.message
    missing = SRMCheck(weights={"a": 0.5, "b": 0.5}).fit({"a": 1000}).result_
    assert missing.alarm and missing.counts["b"] == 0


def test_survey_bad_answers():
    res = SurveyAnalysis("nps").fit({"control": {10: 5, 11: 2}, "b": {9: 1}, "c": {3.5: 2, 9: 4}}).result_
    errors = {a.variant: a.error for a in res.arms}
    assert "outside the NPS scale" in errors["control"]
    assert "at least 2" in errors["b"]
    assert "3.5" in errors["c"]
    assert all(c.error for c in res.comparisons)
    _assert_no_nan(res.to_dict())
