"""Build the growth report: gather the five sections, draw their charts and render one self-contained HTML
page (inline CSS, PNGs as base64 data URIs, no script, nothing fetched from the network)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from growthcurve import __version__
from growthcurve.atomic import write_text
from growthcurve.report import plots
from growthcurve.report.review import ReviewSection, review_section
from growthcurve.report.sections import (
    GRID_MAX_LABELS,
    GoalsSection,
    LatestRunSection,
    QualitySection,
    ServingSection,
    TeamSection,
    goals_section,
    latest_run_section,
    quality_section,
    safe_url,
    serving_section,
    team_section,
)
from growthcurve.store import store_url

SECTION_TITLES = {
    "quality": "1. Growth curve of model quality",
    "latest": "2. Latest classification report and confusion matrix",
    "serving": "3. Served model versions: live feedback and A/B results",
    "goals": "4. Goals (OKR burn-up)",
    "team": "5. Team: training effect and ranking",
}


@dataclass
class ReportInputs:
    """Where the report reads from; ``None`` files leave their part of a section out."""

    db: str | None = None
    goals: Path | None = None
    team: Path | None = None
    criteria: Path | None = None
    training: Path | None = None
    as_of: dt.date | None = None
    ranking_samples: int = 1000  # weight perturbations of the ranking's stability, as `team score --samples`


@dataclass
class GrowthReport:
    """The gathered sections and their charts (PNG bytes by name), ready to render."""

    url: str
    generated: dt.datetime
    quality: QualitySection
    latest: LatestRunSection
    serving: ServingSection
    goals: GoalsSection
    team: TeamSection
    images: dict[str, bytes] = field(default_factory=dict)
    review: ReviewSection = field(default_factory=ReviewSection)  # reviewed accuracy, shown with serving

    def empty_sections(self) -> list[str]:
        """Titles of the sections that have nothing to show."""
        return [SECTION_TITLES[k] for k in SECTION_TITLES if getattr(self, k).empty]


_STEPS = ("model quality", "latest run", "served versions and A/B", "goals", "team", "review queues", "charts")


def build_report(inputs: ReportInputs, progress: bool = False) -> GrowthReport:
    """Read every source and draw every chart; a section without data carries its ``empty`` line. ``progress``:
    a bar over the steps on stderr (the serving and team steps can take tens of seconds on a large store)."""
    from tqdm.auto import tqdm

    url = store_url(inputs.db)
    as_of = inputs.as_of or dt.date.today()
    with tqdm(total=len(_STEPS), unit=" step", disable=not progress, leave=False, dynamic_ncols=True) as bar:

        def step(i: int) -> None:
            if i:
                bar.update()
            bar.set_description_str(f"report: {_STEPS[i]}")

        step(0)
        quality = quality_section(url)
        step(1)
        latest = latest_run_section(quality)
        step(2)
        serving = serving_section(url)
        step(3)
        goals = goals_section(url, inputs.goals, as_of)
        step(4)
        team = team_section(inputs.team, inputs.criteria, inputs.training, inputs.ranking_samples)
        step(5)
        review = review_section(url)
        step(6)
        rep = GrowthReport(
            url=safe_url(url),
            generated=dt.datetime.now(dt.UTC),
            quality=quality,
            latest=latest,
            serving=serving,
            goals=goals,
            team=team,
            review=review,
        )
        _draw_charts(rep)
        bar.update()
    return rep


def _draw_charts(rep: GrowthReport) -> None:
    """Every chart the gathered sections have data for, into ``rep.images``."""
    img = rep.images
    if rep.quality.series:
        img["growth_curve"] = plots.growth_curve(rep.quality)
    lt = rep.latest
    if lt.run_png is not None:
        img["latest_run_png"] = lt.run_png.read_bytes()  # the run's own chart, as `finetune` drew it
    elif lt.confusion is not None and len(lt.labels) > GRID_MAX_LABELS:
        img["confusion_heatmap"] = plots.confusion_heatmap(lt)
    if rep.serving.versions:
        img["serving"] = plots.serving_panels(rep.serving)
    for ex in rep.serving.experiments:
        if ex.result is not None:
            png = plots.ab_lift(ex.result)
            if png:
                img[f"ab_lift:{ex.experiment}"] = png
    if rep.goals.goals is not None:
        png = plots.burnup(rep.goals)
        if png:
            img["burnup"] = png
    if rep.team.ranking is not None:
        img["ranking"] = plots.ranking_chart(rep.team)
    if rep.team.training:
        img["training"] = plots.training_chart(rep.team)


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _spct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:+.{digits}f}%"


def _num(x: Any, fmt: str = ".4g") -> str:
    return "–" if x is None else format(x, fmt)


def _when(t: dt.datetime | None) -> str:
    return "–" if t is None else t.strftime("%Y-%m-%d %H:%M")


def render_html(rep: GrowthReport) -> str:
    """The report as one HTML string (Jinja2 with autoescape: names and texts from the store are escaped)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("growthcurve.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(
        r=rep,
        titles=SECTION_TITLES,
        img={k: plots.data_uri(v) for k, v in rep.images.items()},
        version=__version__,
        pct=_pct,
        spct=_spct,
        num=_num,
        when=_when,
        grid_max=GRID_MAX_LABELS,
    )


def write_report(inputs: ReportInputs, out: str | Path, progress: bool = False) -> GrowthReport:
    """Build the report and write it to ``out`` atomically (a reader never sees half a page)."""
    rep = build_report(inputs, progress)
    write_text(Path(out), render_html(rep))
    return rep
