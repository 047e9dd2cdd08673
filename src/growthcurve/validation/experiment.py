"""Run a configured experiment analysis end to end: SRM first, then every metric, then the timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from growthcurve.errors import DataError
from growthcurve.validation.analysis import ABTest, MetricResult, SRMCheck, SRMResult, clean_json_dict
from growthcurve.validation.config import ABConfig, MetricConfig
from growthcurve.validation.sql import EventSource, look_cutoffs, open_source


@dataclass
class TimelinePoint:
    """Cumulative lift of one treatment at one look, with the fixed CI and the sequential bounds."""

    metric: str
    treatment: str
    until: str
    n: int
    rel_effect: float | None
    rel_ci: tuple[float, float] | None
    seq_rel_ci: tuple[float, float] | None
    abs_effect: float | None
    abs_ci: tuple[float, float] | None
    seq_abs_ci: tuple[float, float] | None


@dataclass
class ComparisonRow:
    """One arm of one metric as every reader shows it (`ab analyze`, `decide`, the decision log, the report):
    the numbers of the one test the row reports, so the same data shows the same lift, CI and p everywhere."""

    metric: str
    variant: str
    control: str
    n: int
    mean: float | None
    effect: float | None = None
    scale: str = "relative"  # relative lift, or absolute difference
    ci: tuple[float, float] | None = None
    p: float | None = None
    p_adjusted: float | None = None
    significant: bool = False  # p_adjusted < alpha: the fixed-horizon test named in `method`
    seq_ci: tuple[float, float] | None = None  # always-valid confidence sequence, on the same scale
    seq_significant: bool = False  # the sequence excludes 0: valid however often the experiment was looked at
    chance_to_win: float | None = None
    method: str = ""
    error: str | None = None

    @property
    def is_control(self) -> bool:
        return self.variant == self.control


@dataclass
class ExperimentResult:
    """The whole analysis: the SRM verdict (read it first), per-metric results and the timeline."""

    srm: SRMResult
    metrics: list[MetricResult]
    timeline: list[TimelinePoint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with the per-arm ``rows`` every reader shows)."""
        return clean_json_dict({**asdict(self), "rows": [asdict(r) for r in self.rows()]})

    def rows(self) -> list[ComparisonRow]:
        """One row per metric and arm (control first), each with the numbers of the one test it reports."""
        out: list[ComparisonRow] = []
        for m in self.metrics:
            comps = {c.treatment: c for c in m.comparisons}
            for a in m.arms:
                row = ComparisonRow(m.metric, a.variant, m.control, a.n, a.mean)
                out.append(row)
                c = comps.get(a.variant)
                if c is None:
                    continue
                row.method, row.scale = c.method, c.scale
                if c.error or c.frequentist is None:
                    row.error = c.error or "not computed"
                    continue
                row.effect, row.ci, row.p = c.frequentist.on(c.scale)
                row.p_adjusted, row.significant = c.p_adjusted, bool(c.significant)
                if c.sequential is not None:
                    row.seq_ci = c.sequential.rel_ci if c.scale == "relative" else c.sequential.abs_ci
                    row.seq_significant = row.seq_ci is not None and (row.seq_ci[0] > 0 or row.seq_ci[1] < 0)
                row.chance_to_win = c.bayesian.chance_to_win if c.bayesian else None
        return out


def _estimator(cfg: ABConfig, m: MetricConfig) -> ABTest:
    a = cfg.analysis
    return ABTest(
        metric=m.name,
        metric_type=m.type,
        control=a.control,
        alpha=a.alpha,
        cuped=bool(m.covariate),
        sequential=a.sequential,
        n_star=a.n_star,
        bayesian=a.bayesian,
        prior_variance=a.prior_variance,
        correction=a.correction,
        higher_is_better=m.higher_is_better,
    )


def _stamp(x: Any) -> str:
    return x.isoformat(sep=" ", timespec="seconds") if isinstance(x, dt.datetime) else str(x)


def _timeline(src: EventSource, cfg: ABConfig, metrics: list[MetricConfig]) -> list[TimelinePoint]:
    lo, hi = src.time_range()
    points: list[TimelinePoint] = []
    for cut in look_cutoffs(lo, hi, cfg.analysis.looks):
        for m in metrics:
            res = _estimator(cfg, m).fit(src.aggregate(m, until=cut)).result_
            for cp in res.comparisons:
                f, s = cp.frequentist, cp.sequential
                n = sum(a.n for a in res.arms if a.variant in (cp.control, cp.treatment))
                points.append(
                    TimelinePoint(
                        m.name,
                        cp.treatment,
                        _stamp(cut),
                        n,
                        f.rel_effect if f else None,
                        f.rel_ci if f else None,
                        s.rel_ci if s else None,
                        f.abs_effect if f else None,
                        f.abs_ci if f else None,
                        s.abs_ci if s else None,
                    )
                )
    return points


def numeric_columns(cfg: ABConfig) -> list[str]:
    """The columns that must hold numbers: the value column (long) or every metric's columns (wide)."""
    if cfg.source.format == "long":
        return [cfg.source.value_column]
    cols: list[str] = []
    for m in cfg.metrics:
        names = [m.numerator, m.denominator] if m.type == "ratio" else [m.value]
        cols += [c for c in [*names, m.covariate] if c and c not in cols]
    return cols


def analyze(cfg: ABConfig) -> ExperimentResult:
    """Aggregate in SQL and analyse every metric of ``cfg``; a table without data is a DataError."""
    with open_source(cfg.source, numeric_columns(cfg)) as src:
        for m in cfg.metrics:
            src.check_values(m)
        counts = src.unit_counts()
        if not counts:
            where = f" for experiment '{cfg.source.experiment}'" if cfg.source.experiment else ""
            raise DataError(f"table '{cfg.source.table}' has no events{where}: check source.table/experiment")
        if cfg.analysis.control is not None and cfg.analysis.control not in counts:
            raise DataError(
                f"control variant '{cfg.analysis.control}' is not in the data "
                f"(variants: {', '.join(counts)}); fix analysis.control"
            )
        if len(counts) < 2:
            raise DataError(f"only one variant ({', '.join(counts)}) in the data: nothing to compare")
        srm = SRMCheck(cfg.analysis.srm_alpha, cfg.analysis.weights).fit(counts).result_
        result = ExperimentResult(srm, [])
        dup = src.units_in_several_variants()
        if dup:
            result.warnings.append(f"{dup} units appear in more than one variant: assignment is not sticky")
        measured = []
        for m in cfg.metrics:
            stats = src.aggregate(m)
            if not any(s.n for s in stats.values()):
                # no event of this metric at all: say that, rather than advise a control or config change
                result.warnings.append(f"no `{m.name}` events in this experiment (nothing of it was recorded)")
                continue
            measured.append(m)
            result.metrics.append(_estimator(cfg, m).fit(stats).result_)
        if cfg.analysis.looks > 0:
            result.timeline = _timeline(src, cfg, measured)
    return result
