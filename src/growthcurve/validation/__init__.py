"""Product validation: A/B statistics on SQL-computed sufficient statistics, sequential tests, CUPED,
SRM, multiple arms, power planning and surveys (CSAT/NPS)."""

from growthcurve.validation.analysis import ABTest, Comparison, MetricResult, SRMCheck, SRMResult
from growthcurve.validation.power import PowerAnalysis, PowerPlan
from growthcurve.validation.stats import (
    ArmEstimate,
    BayesianResult,
    FrequentistResult,
    SequentialResult,
    SufficientStats,
    bayesian_test,
    estimate_arm,
    frequentist_test,
    sequential_test,
)
from growthcurve.validation.surveys import SurveyAnalysis, SurveyResult

__all__ = [
    "ABTest",
    "ArmEstimate",
    "BayesianResult",
    "Comparison",
    "FrequentistResult",
    "MetricResult",
    "PowerAnalysis",
    "PowerPlan",
    "SRMCheck",
    "SRMResult",
    "SequentialResult",
    "SufficientStats",
    "SurveyAnalysis",
    "SurveyResult",
    "bayesian_test",
    "estimate_arm",
    "frequentist_test",
    "sequential_test",
]
