"""What the growth report shows, read from where each loop keeps it: the run registry, the run folders, the
serving tables, the goal store and the team files. Each ``*_section`` function returns a plain dataclass
with an ``empty`` reason when there is nothing to show, so the page says so instead of drawing an empty plot.

Nothing is re-derived here: A/B numbers come from ``validation.experiment.analyze`` (the engine behind
`growthcurve ab analyze`), CSAT from ``validation.surveys``, goals from ``planning.goals``, team numbers from
``team.scoring`` / ``team.training``, confusion matrices from the same scikit-learn call the run used.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from growthcurve.errors import DataError, GrowthcurveError
from growthcurve.store import masked_url as safe_url  # name kept for callers of the report module
from growthcurve.store.registry import RunRecord, list_runs

# The metric on the growth curve per task: what the run's own CLI reports first.
PRIMARY_METRIC = {
    "text-classification": "accuracy",
    "image-classification": "accuracy",
    "token-classification": "entity_f1",
}
MODEL_KINDS = ("finetune", "retrain", "compress")
# A confusion grid stays readable up to about this many labels (the run's own PNG annotates up to 25).
GRID_MAX_LABELS = 25
TOP_CONFUSIONS = 15

EMPTY_QUALITY = "No registered runs yet: run `growthcurve finetune` (every run registers itself in the store)."
EMPTY_LATEST = (
    "No finished model run with a run folder on this machine yet: run `growthcurve finetune`, then `growthcurve "
    "report` again."
)
EMPTY_SERVING = (
    "No served predictions in this store yet: serve a version with `growthcurve serve intents@v1` (two versions "
    "and --experiment NAME for an A/B test) and send /feedback; every command uses the same workspace store."
)
EMPTY_GOALS = "No goals stored yet: add them with `growthcurve plan goals add GOALS.yaml` (or pass --goals FILE)."
EMPTY_TEAM = (
    "No team data given: pass --team CANDIDATES.csv --criteria CRITERIA.yaml and/or --training SCORES.csv "
    "(formats: growthcurve/examples/team/)."
)


# ---- 1. growth curve of model quality ------------------------------------------------------------------


@dataclass
class RunRow:
    """One registered run as the table shows it; ``metric`` is the primary test metric of a model run."""

    id: str
    kind: str
    name: str | None
    task: str | None
    status: str
    when: dt.datetime
    metric_name: str | None
    metric: float | None
    split: str | None  # "test", or "dev" when the run had no test split
    parent: str | None
    artefact: str | None
    ref: str | None = None  # the model version this run is (intents@v2), None for other runs
    model: str | None = None
    version: int | None = None
    parent_ref: str | None = None  # the parent's version name, when the parent is a version


@dataclass
class Mark:
    """Something that happened to a model on its curve: an A/B experiment started, a ship/reject decision."""

    when: dt.datetime
    kind: str  # experiment | ship | reject | continue
    label: str  # e.g. "A/B intent-v2", "ship v2"


@dataclass
class QualitySection:
    """Every registered run (table) and, per model lineage, its versions' primary metric over time."""

    rows: list[RunRow] = field(default_factory=list)
    # model name -> its finished versions, oldest first (runs without a version: "<task> (no version)")
    series: dict[str, list[RunRow]] = field(default_factory=dict)
    marks: dict[str, list[Mark]] = field(default_factory=dict)  # model name -> experiments and decisions
    empty: str | None = None


def primary_metric(rec: RunRecord) -> tuple[str | None, float | None, str | None]:
    """(metric name, value, split) of a model run: the task's primary metric on test, else on dev."""
    name = PRIMARY_METRIC.get(rec.task or "")
    if name is None:
        return None, None, None
    for split in ("test", "dev"):
        block = rec.metrics.get(split)
        if isinstance(block, dict) and isinstance(block.get(name), int | float):
            return name, float(block[name]), split
    # a retrain row keeps the new model's score on the served run's original test split as its retention
    retention = rec.metrics.get("retention")
    new = retention.get("new") if isinstance(retention, dict) else None
    if isinstance(new, dict) and isinstance(new.get(name), int | float):
        return name, float(new[name]), "test"
    return name, None, None


def quality_section(url: str | None) -> QualitySection:
    """Read the run registry at ``url``: every run for the table; the finished versions of each model make its
    curve (one line per model lineage, never one line per task), with its experiments and decisions marked."""
    records = list_runs(url)
    if not records:
        return QualitySection(empty=EMPTY_QUALITY)
    sec = QualitySection()
    by_id = {r.id: r for r in records}
    for r in records:
        name, value, split = primary_metric(r) if r.kind in MODEL_KINDS else (None, None, None)
        parent = by_id.get(r.parent or "")
        row = RunRow(
            r.id,
            r.kind,
            r.name,
            r.task,
            r.status,
            r.finished_at or r.started_at,
            name,
            value,
            split,
            r.parent,
            r.artefact,
            r.ref,
            r.model,
            r.version,
            parent.ref if parent is not None else None,
        )
        sec.rows.append(row)
        # the finetune a retrain ran inside (before retrains were one row) is the same model: one point
        inner = parent is not None and parent.kind == "retrain" and parent.artefact == r.artefact
        if r.kind in MODEL_KINDS and r.status == "finished" and value is not None and r.task and not inner:
            key = r.model if r.ref else f"{r.task} (no version)"
            sec.series.setdefault(str(key), []).append(row)
    for pts in sec.series.values():
        pts.sort(key=lambda p: p.when)
    sec.marks = _marks(url, set(sec.series))
    return sec


def _utc(t: dt.datetime) -> dt.datetime:
    """The store keeps naive UTC; the registry returns aware UTC: compare them as aware."""
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _marks(url: str | None, models: set[str]) -> dict[str, list[Mark]]:
    """Per model: when each experiment comparing its versions started, and each decision naming a version."""
    from growthcurve.store import list_decisions, open_existing
    from growthcurve.store.experiments import list_experiments

    out: dict[str, list[Mark]] = {}
    try:
        engine = open_existing(url)
    except GrowthcurveError:
        return out
    try:
        for ex in list_experiments(engine):
            for model in ex.models:
                if model in models:
                    out.setdefault(model, []).append(Mark(_utc(ex.created_at), "experiment", f"A/B {ex.name}"))
        if "decisions" in _tables(engine):
            for d in list_decisions(engine):
                model, _, version = str(d.get("variant") or "").partition("@")
                if model in models and version:
                    out.setdefault(model, []).append(Mark(_utc(d["ts"]), d["decision"], f"{d['decision']} {version}"))
    finally:
        engine.dispose()
    for marks in out.values():
        marks.sort(key=lambda m: m.when)
    return out


# ---- 2. latest classification report and confusion matrix ----------------------------------------------


@dataclass
class LatestRunSection:
    """The newest finished model run's report (per-class rows) and confusions, read from its run folder."""

    run: RunRow | None = None
    split: str = "test"
    kind: str = "classification"  # classification | ner
    labels: list[str] = field(default_factory=list)
    per_class: list[dict[str, Any]] = field(default_factory=list)  # label, precision, recall, f1, support
    averages: list[dict[str, Any]] = field(default_factory=list)
    accuracy: float | None = None
    confusion: np.ndarray | None = None
    top_confusions: list[tuple[str, str, int, float]] = field(default_factory=list)  # true, pred, n, share of true
    run_png: Path | None = None  # the run's own confusion / per-type PNG, embedded when readable
    notes: list[str] = field(default_factory=list)
    empty: str | None = None


def _report_split(folder: Path) -> str | None:
    for split in ("test", "dev"):
        if (folder / f"classification_report_{split}.json").is_file() or (
            folder / f"ner_report_{split}.json"
        ).is_file():
            return split
    return None


def latest_run_section(quality: QualitySection) -> LatestRunSection:
    """The newest finished finetune/retrain run whose folder holds a report (test split, else dev)."""
    candidates = [r for r in quality.rows if r.kind in MODEL_KINDS and r.status == "finished" and r.artefact]
    for row in sorted(candidates, key=lambda r: r.when, reverse=True):
        folder = Path(row.artefact)  # type: ignore[arg-type]
        split = _report_split(folder) if folder.is_dir() else None
        if split is not None:
            try:
                return _read_run_reports(row, folder, split)
            except DataError as exc:  # one damaged folder must not cost the whole report
                return LatestRunSection(run=row, empty=f"The newest run's report cannot be shown: {exc}.")
    return LatestRunSection(empty=EMPTY_LATEST)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"'{path}' cannot be read ({type(exc).__name__}): the run folder is damaged") from None


def _read_run_reports(row: RunRow, folder: Path, split: str) -> LatestRunSection:
    sec = LatestRunSection(run=row, split=split)
    ner = folder / f"ner_report_{split}.json"
    if ner.is_file():
        doc = _load_json(ner)
        sec.kind = "ner"
        # every row carries the four columns (None where seqeval gives none, shown as –)
        cols = {"precision": None, "recall": None, "f1": None, "support": None}
        sec.per_class = [{"label": k, **cols, **v} for k, v in sorted(doc.get("per_type", {}).items())]
        micro = {"precision": doc.get("precision"), "recall": doc.get("recall"), "f1": doc.get("f1")}
        sec.averages = [
            {"label": "micro avg", **cols, **micro, "support": doc.get("n_entities")},
            {"label": "macro avg", **cols, "f1": doc.get("macro_f1")},
        ]
        sec.accuracy = doc.get("accuracy")
        png = folder / f"ner_f1_{split}.png"
        sec.run_png = png if png.is_file() else None
        return sec
    doc = _load_json(folder / f"classification_report_{split}.json")
    # scikit-learn's output_dict: one entry per label, then accuracy and the averages
    for key, v in doc.items():
        if key == "accuracy":
            sec.accuracy = float(v)
        elif key.endswith(" avg"):
            sec.averages.append({"label": key, **_prf(v)})
        elif isinstance(v, dict):
            sec.per_class.append({"label": key, **_prf(v)})
    sec.labels = [r["label"] for r in sec.per_class]
    probs_file = folder / f"probabilities_{split}.npz"
    if probs_file.is_file():
        _confusions(sec, probs_file)
    else:
        sec.notes.append(f"no {probs_file.name} in the run folder (multi-label or an older run): no confusion matrix")
    png = folder / f"confusion_matrix_{split}.png"
    if png.is_file() and len(sec.labels) <= GRID_MAX_LABELS:
        sec.run_png = png
    return sec


def _prf(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "precision": v.get("precision"),
        "recall": v.get("recall"),
        "f1": v.get("f1-score"),
        "support": v.get("support"),
    }


def _confusions(sec: LatestRunSection, probs_file: Path) -> None:
    """The confusion matrix from the run's kept probabilities, by the call `write_reports` made for its PNG."""
    from sklearn.metrics import confusion_matrix

    try:
        with np.load(probs_file) as z:
            probs, y = z["probs"], z["y"]
    except (OSError, KeyError, ValueError) as exc:
        sec.notes.append(f"{probs_file.name} cannot be read ({type(exc).__name__}): no confusion matrix")
        return
    if probs.ndim != 2 or probs.shape[1] != len(sec.labels):
        sec.notes.append(f"{probs_file.name} has {probs.shape} probabilities for {len(sec.labels)} labels: skipped")
        return
    cm = confusion_matrix(y, probs.argmax(axis=1), labels=list(range(len(sec.labels))))
    sec.confusion = cm
    rows = cm.sum(axis=1)
    off = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    sec.top_confusions = [(sec.labels[i], sec.labels[j], n, n / rows[i]) for n, i, j in off[:TOP_CONFUSIONS]]


# ---- 3. served model versions, feedback and A/B ---------------------------------------------------------


@dataclass
class VersionStats:
    """Live numbers of one served model version."""

    model_name: str
    model_version: str
    requests: int
    first: dt.datetime
    last: dt.datetime
    latency_p50: float | None
    latency_p95: float | None
    thumbs_n: int = 0
    thumbs_up_rate: float | None = None
    labelled_n: int = 0  # label feedback rows (users mostly send a label to correct a wrong answer)
    corrected_n: int = 0  # of those, the ones whose label differs from the served one
    corrected_rate: float | None = None  # corrected_n per prediction: the share of answers users corrected
    csat: float | None = None  # % satisfied (>= 4 of 5), validation.surveys
    csat_ci: tuple[float, float] | None = None
    csat_n: int = 0
    csat_note: str | None = None


@dataclass
class ABSummary:
    """One experiment as `ab analyze EXPERIMENT` analyses it (the same function), its arms, the latest decision."""

    experiment: str
    result: Any = None  # validation.experiment.ExperimentResult
    rows: list[Any] = field(default_factory=list)  # validation.experiment.ComparisonRow, as `ab analyze` prints
    arms: list[Any] = field(default_factory=list)  # store.experiments.Arm: which version each arm serves
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    decision: dict[str, Any] | None = None

    @property
    def versions(self) -> str:
        """'intents@v2 vs intents@v1 (control)' (the arms' names), or the variants of an unrecorded experiment."""
        if self.arms:
            control = next((a.variant for a in self.arms if a.role == "control"), self.arms[0].variant)
            others = [a.variant for a in self.arms if a.variant != control]
            return f"{', '.join(others)} vs {control} (control)"
        names = sorted({r.variant for r in self.rows})
        return " vs ".join(names)


@dataclass
class ServingSection:
    """Per model version: requests, latency and feedback; per experiment: the A/B analysis."""

    versions: list[VersionStats] = field(default_factory=list)
    experiments: list[ABSummary] = field(default_factory=list)
    empty: str | None = None


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def store_exists(url: str) -> bool:
    """False for a SQLite file that is not there (reading must not create an empty store)."""
    from growthcurve.dbcheck import require_existing_database

    try:
        require_existing_database(url, "--db")
    except DataError:
        return False
    return True


def serving_section(url: str) -> ServingSection:
    """Aggregate ``predictions`` and ``feedback`` per model version in SQL; analyse each experiment."""
    from growthcurve.store import open_existing
    from growthcurve.store.schema import feedback, predictions

    if not store_exists(url):
        return ServingSection(empty=EMPTY_SERVING)
    engine = open_existing(url)
    try:
        tables = _tables(engine)
        if "predictions" not in tables:
            return ServingSection(empty=EMPTY_SERVING)
        p, f = predictions.c, feedback.c
        with engine.connect() as conn:
            base = conn.execute(
                sa.select(p.model_name, p.model_version, sa.func.count(), sa.func.min(p.ts), sa.func.max(p.ts))
                .group_by(p.model_name, p.model_version)
                .order_by(sa.func.min(p.ts))
            ).all()
            if not base:
                return ServingSection(empty=EMPTY_SERVING)
            # percentiles are not portable SQL (SQLite has none): fetch the one latency column per version
            lat: dict[str, list[float]] = {}
            for v, ms in conn.execute(sa.select(p.model_version, p.latency_ms).where(p.latency_ms.is_not(None))):
                lat.setdefault(v, []).append(float(ms))
            fb = conn.execute(
                sa.select(f.model_version, f.kind, sa.func.count(), sa.func.sum(f.value))
                .where(f.value.is_not(None))
                .group_by(f.model_version, f.kind)
            ).all()
            wrong: dict[str, int] = dict(
                conn.execute(
                    sa.select(f.model_version, sa.func.count())
                    .where(f.kind == "correct", f.value == 0)
                    .group_by(f.model_version)
                ).all()
            )
        sums = {(v, k): (int(n), float(s or 0.0)) for v, k, n, s in fb}
        sec = ServingSection()
        for name, version, n, first, last in base:
            ms = np.array(lat.get(version, []))
            vs = VersionStats(
                name,
                version,
                int(n),
                first,
                last,
                float(np.percentile(ms, 50)) if ms.size else None,
                float(np.percentile(ms, 95)) if ms.size else None,
            )
            tn, ts = sums.get((version, "thumbs"), (0, 0.0))
            vs.thumbs_n, vs.thumbs_up_rate = tn, (ts / tn if tn else None)
            vs.labelled_n = sums.get((version, "correct"), (0, 0.0))[0]
            vs.corrected_n = int(wrong.get(version, 0))
            vs.corrected_rate = vs.corrected_n / vs.requests
            sec.versions.append(vs)
        _csat(engine, sec)
        if "experiment_events" in tables:
            sec.experiments = _experiments(engine, url, "decisions" in tables)
        return sec
    finally:
        engine.dispose()


def _csat(engine: sa.Engine, sec: ServingSection) -> None:
    """CSAT (% of ratings >= 4 on 1-5, Wilson CI) per model version, by the survey analysis."""
    from growthcurve.store.schema import feedback
    from growthcurve.validation.surveys import SurveyAnalysis, score_counts

    counts = score_counts(engine, feedback, "model_version", "value", where=[feedback.c.kind == "rating"])
    if not counts:
        return
    arms = {a.variant: a for a in SurveyAnalysis("csat").fit(counts).result_.arms}
    for vs in sec.versions:
        a = arms.get(vs.model_version)
        if a is None:
            continue
        vs.csat_n = a.n
        if a.error:
            vs.csat_note = a.error
        else:
            vs.csat, vs.csat_ci = a.score, a.ci


def _experiments(engine: sa.Engine, url: str, has_decisions: bool) -> list[ABSummary]:
    from growthcurve.store import list_decisions
    from growthcurve.store.schema import experiment_events
    from growthcurve.validation.served import analyze_experiment

    ev = experiment_events.c
    with engine.connect() as conn:
        names = [r[0] for r in conn.execute(sa.select(ev.experiment).distinct().order_by(ev.experiment))]
    out = []
    for name in names:
        s = ABSummary(name)
        try:
            served = analyze_experiment(name, url)  # the function `ab analyze EXPERIMENT` and `decide` call
            s.result, s.rows, s.notes = served.result, served.result.rows(), served.notes
            s.arms = served.record.arms if served.record is not None else []
        except GrowthcurveError as exc:
            s.error = str(exc)
        if has_decisions:
            logged = list_decisions(engine, name)
            s.decision = logged[-1] if logged else None
        out.append(s)
    return out


# ---- 4. goals ----------------------------------------------------------------------------------------


@dataclass
class GoalsSection:
    """The stored (or given) goals, assessed on ``as_of``."""

    goals: Any = None  # planning.goals.GoalsConfig
    status: list[Any] = field(default_factory=list)  # planning.goals.ObjectiveStatus
    as_of: dt.date | None = None
    source: str = ""
    empty: str | None = None


def goals_section(url: str, goals_file: Path | None, as_of: dt.date) -> GoalsSection:
    """Goals from ``goals_file`` (YAML) or the goal store at ``url`` (`growthcurve plan goals add`)."""
    from growthcurve.planning.goals import assess_goals, load_goals
    from growthcurve.planning.store import GoalStore

    if goals_file is not None:
        cfg, source = load_goals(goals_file), str(goals_file)
    elif store_exists(url):
        cfg, source = GoalStore(url, read_only=True).load_goals(), safe_url(url)
    else:
        return GoalsSection(empty=EMPTY_GOALS)
    if not cfg.objectives:
        return GoalsSection(empty=EMPTY_GOALS)
    return GoalsSection(cfg, assess_goals(cfg, as_of), as_of, source)


# ---- 5. team -----------------------------------------------------------------------------------------


@dataclass
class TeamSection:
    """The candidate ranking (`team score`) and the training effect (`team training-effect`)."""

    ranking: Any = None  # pandas frame of RankingResult.to_frame()
    ranking_k: int = 3
    weights: dict[str, float] = field(default_factory=dict)
    training: list[Any] = field(default_factory=list)  # team.training.TrainingEffectResult
    empty: str | None = None


def team_section(
    team_file: Path | None, criteria_file: Path | None, training_file: Path | None, samples: int = 1000
) -> TeamSection:
    """Run the functions `team score` and `team training-effect` call, on the given files."""
    from growthcurve.errors import ConfigError

    if team_file is None and training_file is None:
        return TeamSection(empty=EMPTY_TEAM)
    sec = TeamSection()
    if team_file is not None:
        from growthcurve.team.scoring import TalentScorer, load_criteria, read_numeric_table

        if criteria_file is None:
            raise ConfigError("--team needs --criteria CRITERIA.yaml (criterion, kind, weight), as `team score` does")
        crit = load_criteria(criteria_file)
        res = TalentScorer(n_samples=samples).fit(read_numeric_table(team_file, "candidates"), crit).result_
        sec.ranking, sec.ranking_k = res.to_frame(), res.k
        sec.weights = dict(zip(res.criteria, map(float, res.weights), strict=True))
    if training_file is not None:
        from growthcurve.team.training import TrainingEffect, read_scores

        sec.training = TrainingEffect().fit(read_scores(training_file)).result_
    return sec
