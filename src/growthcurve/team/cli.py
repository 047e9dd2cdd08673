"""`growthcurve team ...`: score candidates, measure training effect, review performance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.atomic import write_json, write_text
from growthcurve.cliopts import in_range, probability
from growthcurve.errors import ConfigError

console = Console()
team_app = typer.Typer(
    help="Team growth: talent scoring (AHP, TOPSIS), training effect, performance review.",
    no_args_is_help=True,
)


@team_app.command("score")
def score_cmd(
    candidates: Path = typer.Argument(..., help="CSV: one row per candidate, one column per criterion"),
    criteria: Path = typer.Option(..., "--criteria", help="criteria YAML (name, kind benefit|cost, weight)"),
    ahp: Path | None = typer.Option(None, "--ahp", help="pairwise-comparison matrix CSV: AHP weights"),
    learn: Path | None = typer.Option(None, "--learn", help="past hires CSV with an 'outcome' column: learn weights"),
    outcome: str = typer.Option("outcome", help="outcome column of --learn"),
    force: bool = typer.Option(False, "--force", help="accept an AHP consistency ratio above 0.1"),
    k: int = typer.Option(3, "--top", help="size of the top-k whose stability is measured", min=1),
    perturbation: float = typer.Option(
        0.2,
        help="each weight is multiplied by U(1-p, 1+p) in the stability test",
        callback=in_range(0, 1, hi_open=True),
    ),
    samples: int = typer.Option(1000, help="weight perturbations", min=1),
    seed: int = typer.Option(0, min=0),
    out: Path = typer.Option(Path("runs/team"), help="output folder (ranking.csv, ranking.json)"),
) -> None:
    """Rank candidates with TOPSIS and weighted sum; weights direct, from AHP or learned from past hires."""
    from growthcurve.team.scoring import (
        TalentScorer,
        learn_weights,
        load_criteria,
        read_numeric_table,
        weights_from_ahp,
    )

    if ahp is not None and learn is not None:
        raise ConfigError("give either --ahp or --learn, not both")
    crit = load_criteria(criteria)
    df = read_numeric_table(candidates, "candidates")
    weights, source, cr, learned = None, "direct", None, None
    if ahp is not None:
        weights, cr = weights_from_ahp(ahp, crit, force)
        source = "ahp"
    elif learn is not None:
        learned = learn_weights(read_numeric_table(learn, "past hires"), crit, outcome)
        source = "learned"
    res = (
        TalentScorer(k, perturbation, samples, seed).fit(df, crit, weights, source, ahp_cr=cr, learned=learned).result_
    )
    wt = Table(title=f"Criteria weights ({source}" + (f", CR {cr:.3f}" if cr is not None else "") + ")")
    wt.add_column("criterion")
    wt.add_column("kind")
    wt.add_column("weight", justify="right")
    if learned is not None:
        wt.add_column("theta +- sd (per sd of criterion)", justify="right")
    for j, c in enumerate(crit.criteria):
        extra = [f"{learned.theta[j]:+.3f} +- {learned.theta_sd[j]:.3f}"] if learned is not None else []
        wt.add_row(c.name, c.kind, f"{res.weights[j]:.3f}", *extra)
    console.print(wt)
    if learned is not None and learned.contradicting:
        console.print(
            f"[yellow]note:[/] learned effect contradicts the declared kind for "
            f"{', '.join(learned.contradicting)}: weight set to 0"
        )
    if res.dropped_constant:
        console.print(f"[yellow]note:[/] same value for every candidate, ignored: {', '.join(res.dropped_constant)}")
    frame = res.to_frame()
    t = Table(title=f"Ranking (stability: weights x U(1-{perturbation:g}, 1+{perturbation:g}), {samples} draws)")
    cols = ["candidate", "topsis_score", "topsis_rank", f"topsis_p_in_top{res.k}", "wsm_score", "wsm_rank"]
    if learned is not None:
        cols += ["predicted_outcome", "predicted_sd"]
    for col in cols:
        t.add_column(col.replace("_", " "), justify="left" if col == "candidate" else "right")
    for _, row in frame.iterrows():
        t.add_row(*[str(row[c]) if c == "candidate" or c.endswith("rank") else f"{row[c]:.3f}" for c in cols])
    console.print(t)
    for m, s in res.stability.items():
        console.print(
            f"{m}: top-{res.k} unchanged in {s.p_topk_unchanged:.0%} of perturbations, mean Kendall tau "
            f"{s.mean_kendall_tau:.3f}"
        )
    write_text(out / "ranking.csv", frame.to_csv(index=False))
    write_json(out / "ranking.json", {"ranking": frame.to_dict(orient="records"), **res.summary()})
    console.print(f"wrote {out / 'ranking.csv'} and {out / 'ranking.json'}")


@team_app.command("training-effect")
def training_cmd(
    scores: Path = typer.Argument(..., help="CSV: person, pre, post [, group treatment|control] [, skill]"),
    level: float = typer.Option(0.95, help="confidence level", callback=probability()),
    out: Path = typer.Option(Path("runs/team"), help="output folder (training_effect.json)"),
) -> None:
    """Paired t test, Wilcoxon, Cohen's d_z with CI, and difference-in-differences with a control group."""
    from growthcurve.team.training import TrainingEffect, read_scores

    if not 0 < level < 1:
        raise ConfigError(f"--level must be in (0, 1), got {level}")
    te = TrainingEffect(level).fit(read_scores(scores))
    t = Table(title=f"Training effect ({level:.0%} intervals)")
    for c in ("skill", "n", "gain [CI]", "t (p)", "Wilcoxon p", "d_z [CI]", "DiD vs control [CI] (p)"):
        t.add_column(c, justify="left" if c == "skill" else "right")
    for r in te.result_:
        did = "-" if r.did is None else f"{r.did:.2f} [{r.did_ci_low:.2f}, {r.did_ci_high:.2f}] ({r.p_did:.3g})"
        t.add_row(
            r.skill,
            str(r.n),
            f"{r.mean_gain:.2f} [{r.gain_ci_low:.2f}, {r.gain_ci_high:.2f}]",
            f"{r.t:.2f} ({r.p_t:.3g})",
            f"{r.p_wilcoxon:.3g}",
            f"{r.d_z:.2f} [{r.d_z_ci_low:.2f}, {r.d_z_ci_high:.2f}]",
            did,
        )
    console.print(t)
    write_json(out / "training_effect.json", [r.to_dict() for r in te.result_])
    console.print(f"wrote {out / 'training_effect.json'}")


@team_app.command("review")
def review_cmd(
    goals: Path | None = typer.Argument(None, help="goals YAML (default: the goal store)"),
    db: str | None = typer.Option(None, help="SQLAlchemy URL of the goal store"),
    as_of: str | None = typer.Option(None, help="YYYY-MM-DD (default today)"),
    cap: float = typer.Option(
        1.5, help="clip key-result progress to [0, cap] (>= 1: a finished KR counts fully)", callback=in_range(1)
    ),
    out: Path = typer.Option(Path("runs/team"), help="output folder (review.csv, review_summary.json)"),
) -> None:
    """Goal attainment per person and period with a calibrated summary (distribution, outliers), as CSV."""
    from growthcurve.planning.goals import load_goals
    from growthcurve.planning.store import GoalStore
    from growthcurve.team.review import PerformanceReview

    try:
        day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    except ValueError:
        raise ConfigError(f"date '{as_of}' is not YYYY-MM-DD") from None
    cfg = load_goals(goals) if goals is not None else GoalStore(db, read_only=True).load_goals()
    rv = PerformanceReview(cap=cap).fit(cfg, day)
    t = Table(title=f"Goal attainment as of {day.isoformat()}")
    for c in ("period", "person", "KRs", "attainment", "z", "percentile", "outlier"):
        t.add_column(c, justify="left" if c in ("period", "person") else "right")
    for _, r in rv.result_.iterrows():
        t.add_row(
            r["period"],
            r["person"],
            str(r["key_results"]),
            f"{r['attainment']:.0%}",
            f"{r['z']:+.2f}",
            f"{r['percentile']:.0f}",
            "[red]yes[/]" if r["outlier"] else "",
        )
    console.print(t)
    for s in rv.summary_:
        console.print(
            f"{s.period}: n={s.n_people}, mean {s.mean:.0%} (sd {s.sd:.0%}), median {s.median:.0%}, "
            f"IQR {s.p25:.0%}-{s.p75:.0%}, outliers: {', '.join(s.outliers) or 'none'}"
        )
    write_text(out / "review.csv", rv.result_.to_csv(index=False))
    write_json(out / "review_summary.json", {"as_of": day.isoformat(), "periods": rv.summary_dict()})
    console.print(f"wrote {out / 'review.csv'} and {out / 'review_summary.json'}")


def register(app: typer.Typer) -> None:
    """Add `growthcurve team ...` to the root CLI."""
    app.add_typer(team_app, name="team")
