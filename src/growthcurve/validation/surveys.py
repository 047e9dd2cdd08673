"""CSAT and NPS with confidence intervals, compared across variants, from score counts.

Input is counts per (variant, score), which SQL computes where the answers live. CSAT (share of
"satisfied" answers, ≥ 4 on 1–5) gets a Wilson interval (statsmodels); NPS (% promoters 9–10 minus %
detractors 0–6) gets a multinomial bootstrap interval (resampling the counts, so it is O(scores)) next to
the analytic standard error √((P + D − (P − D)²)/n).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from growthcurve.errors import DataError
from growthcurve.validation.analysis import clean_json_dict

SurveyKind = Literal["csat", "nps"]


@dataclass
class SurveyArm:
    """One variant's score: CSAT (% satisfied) or NPS (−100..100), with its interval and raw counts."""

    variant: str
    n: int
    score: float | None = None
    ci: tuple[float, float] | None = None
    se: float | None = None
    mean_answer: float | None = None
    counts: dict[int, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SurveyComparison:
    """Treatment minus control in score points, with a z-test p-value and an interval."""

    control: str
    treatment: str
    diff: float | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    error: str | None = None


@dataclass
class SurveyResult:
    """All arms and comparisons of one survey question."""

    kind: str
    arms: list[SurveyArm]
    comparisons: list[SurveyComparison]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return clean_json_dict(asdict(self))


class SurveyAnalysis:
    """CSAT or NPS per variant and against a control (sklearn shape: ``fit`` on score counts)."""

    def __init__(
        self,
        kind: SurveyKind = "nps",
        alpha: float = 0.05,
        control: str | None = None,
        csat_threshold: int = 4,
        scale: tuple[int, int] | None = None,
        n_boot: int = 10_000,
        seed: int = 0,
    ) -> None:
        self.kind = kind
        self.alpha = alpha
        self.control = control
        self.csat_threshold = csat_threshold
        self.scale = scale
        self.n_boot = n_boot
        self.seed = seed

    def _weights(self, scores: np.ndarray) -> np.ndarray:
        """Per-answer contribution: 1 for satisfied (CSAT); +1 promoter, −1 detractor (NPS)."""
        if self.kind == "csat":
            return (scores >= self.csat_threshold).astype(float)
        return np.where(scores >= 9, 1.0, np.where(scores <= 6, -1.0, 0.0))

    def fit(self, counts: Mapping[str, Mapping[float, int]]) -> SurveyAnalysis:
        """Score every variant from ``counts[variant][score]`` and compare each with the control."""
        lo, hi = self.scale or ((1, 5) if self.kind == "csat" else (0, 10))
        rng = np.random.default_rng(self.seed)
        z = float(sps.norm.ppf(1 - self.alpha / 2))
        result = SurveyResult(self.kind, [], [])
        boots: dict[str, np.ndarray] = {}
        for variant, raw in counts.items():
            frac = sorted(float(k) for k in raw if not float(k).is_integer())
            c = {int(k): int(v) for k, v in raw.items() if float(k).is_integer()}
            arm = SurveyArm(variant, sum(c.values()), counts=c)
            result.arms.append(arm)
            bad = frac + sorted(k for k in c if not lo <= k <= hi)
            if any(v < 0 for v in c.values()):
                arm.error = f"variant '{variant}' has negative answer counts: the input is corrupt"
            elif bad:
                arm.error = f"variant '{variant}' has answers {bad} outside the {self.kind.upper()} scale {lo}..{hi}"
            elif arm.n < 2:
                arm.error = f"variant '{variant}' has {arm.n} answers: at least 2 are needed for an interval"
            if arm.error:
                continue
            scores = np.array(sorted(c), dtype=float)
            n_k = np.array([c[int(s)] for s in scores], dtype=float)
            w = self._weights(scores)
            arm.mean_answer = float((scores * n_k).sum() / arm.n)
            share = n_k / arm.n
            if self.kind == "csat":
                k = int((n_k * w).sum())
                arm.score = 100 * k / arm.n
                ci = proportion_confint(k, arm.n, alpha=self.alpha, method="wilson")
                arm.ci = (100 * float(ci[0]), 100 * float(ci[1]))
                arm.se = 100 * math.sqrt(k / arm.n * (1 - k / arm.n) / arm.n)
            else:
                p, d = float(share[w > 0].sum()), float(share[w < 0].sum())
                arm.score = 100 * (p - d)
                arm.se = 100 * math.sqrt(max(p + d - (p - d) ** 2, 0.0) / arm.n)
                boot = 100 * (rng.multinomial(arm.n, share, size=self.n_boot) @ w) / arm.n
                boots[variant] = boot
                arm.ci = (float(np.quantile(boot, self.alpha / 2)), float(np.quantile(boot, 1 - self.alpha / 2)))
        variants = [a.variant for a in result.arms]
        control = self.control or ("control" if "control" in variants else (sorted(variants)[0] if variants else None))
        by = {a.variant: a for a in result.arms}
        if control not in by:
            result.warnings.append(f"control '{control}' has no answers: no comparison (variants: {variants})")
            return self._done(result)
        ca = by[control]
        for v in variants:
            if v == control:
                continue
            ta, comp = by[v], SurveyComparison(control, v)
            result.comparisons.append(comp)
            if ca.error or ta.error:
                comp.error = "; ".join(e for e in (ca.error, ta.error) if e)
                continue
            comp.diff = float(ta.score) - float(ca.score)  # type: ignore[arg-type]
            se = math.sqrt(float(ca.se) ** 2 + float(ta.se) ** 2)  # type: ignore[arg-type]
            if se == 0:
                comp.error = f"'{control}' and '{v}' both have zero variance: every answer is the same"
                continue
            comp.p_value = float(2 * sps.norm.sf(abs(comp.diff) / se))
            if self.kind == "nps":
                bd = boots[v] - boots[control]
                comp.ci = (float(np.quantile(bd, self.alpha / 2)), float(np.quantile(bd, 1 - self.alpha / 2)))
            else:
                comp.ci = (comp.diff - z * se, comp.diff + z * se)
        return self._done(result)

    def _done(self, result: SurveyResult) -> SurveyAnalysis:
        self.result_ = result
        return self


def score_counts(
    engine: sa.Engine,
    table: sa.Table,
    variant_col: str,
    score_col: str,
    where: list[sa.ColumnElement[bool]] | None = None,
) -> dict[str, dict[float, int]]:
    """Answers per (variant, score) by one ``GROUP BY`` in the database; empty answers are skipped."""
    v, s = table.c[variant_col], table.c[score_col]
    q = sa.select(v, s, sa.func.count()).where(s.is_not(None), *(where or [])).group_by(v, s)
    out: dict[str, dict[float, int]] = {}
    with engine.connect() as conn:
        for variant, score, n in conn.execute(q):
            try:
                fs = float(score)
            except (TypeError, ValueError):
                raise DataError(
                    f"column '{score_col}' holds {score!r} ({n} answers of variant '{variant}'), not a number; "
                    "fix the answers or pick the right --score-column"
                ) from None
            key = int(fs) if fs.is_integer() else fs  # a fractional answer is flagged by SurveyAnalysis
            out.setdefault(str(variant), {})
            out[str(variant)][key] = out[str(variant)].get(key, 0) + int(n)
    return out
