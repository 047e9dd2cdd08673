"""`growthcurve ab ...` (analyze, plan, simulate, init-db) and `growthcurve survey ...` commands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from growthcurve.atomic import write_json
from growthcurve.cliopts import in_range, probability
from growthcurve.errors import ConfigError, DataError, GrowthcurveError

ab_app = typer.Typer(
    help="A/B tests: analyze events with sound statistics, plan sample sizes, simulate.", no_args_is_help=True
)
survey_app = typer.Typer(
    help="Surveys: CSAT and NPS with confidence intervals, compared across variants; satisfaction drivers.",
    no_args_is_help=True,
)
console = Console()


def register(app: typer.Typer) -> None:
    """Add the `ab` and `survey` command groups to the root CLI."""
    app.add_typer(ab_app, name="ab")
    app.add_typer(survey_app, name="survey")


@ab_app.command("analyze")
def analyze_cmd(
    config: Annotated[
        str, typer.Argument(help="a served experiment's name (read from the store), or a YAML config file")
    ],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key, e.g. analysis.alpha=0.01")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default: output_dir of the config)")] = None,
    report: Annotated[bool, typer.Option(help="write HTML + PNG next to the JSON")] = True,
    store: Annotated[
        str | None, typer.Option("--store", help="store of a served experiment (default: the workspace store)")
    ] = None,
) -> None:
    """Analyse an experiment: SRM first, then every metric (fixed-horizon, sequential, Bayesian); print a
    table and write JSON/HTML/PNG. A served experiment is analysed with the config stored when it started."""
    from growthcurve.validation.experiment import analyze

    notes: list[str] = []
    if _is_config_file(config):
        from growthcurve.validation.config import load_ab_config

        if store is not None:
            raise ConfigError("--store goes with an experiment name; a YAML config names its source itself")
        cfg = load_ab_config(config, set_)
        with console.status("aggregating events in the database ..."):
            result = analyze(cfg)
        name = cfg.source.experiment or Path(config).stem
    else:
        from growthcurve.validation.served import analyze_experiment

        if set_:
            raise ConfigError(
                "--set changes a YAML config; a served experiment is analysed with its stored config, so that "
                "`ab analyze`, `decide` and the report agree (write it out with `serve --ab-config` to vary it)"
            )
        with console.status(f"aggregating the events of '{config}' in the store ..."):
            served = analyze_experiment(config, store, str(out) if out else None)
        cfg, result, name, notes = served.config, served.result, config, served.notes
    looks = _looks_before(name, cfg)
    print_result(console, result, cfg.analysis.alpha, cfg.analysis.correction, notes, looks)
    out_dir = out or Path(cfg.output_dir)
    if report:
        from growthcurve.validation.report import write_report

        paths = write_report(result, out_dir)
    else:
        write_json(out_dir / "result.json", result.to_dict())
        paths = {"json": str(out_dir / "result.json")}
    console.print("wrote " + ", ".join(paths.values()), highlight=False)
    _register_analysis(cfg, name, result, out_dir)


def _is_config_file(arg: str) -> bool:
    """A YAML file (existing, or named like one, so a typo says 'does not exist'), not an experiment name."""
    p = Path(arg)
    return p.is_file() or p.suffix.lower() in (".yaml", ".yml") or "/" in arg


def _looks_before(name: str, cfg: Any) -> int:
    """Earlier analyses of this experiment (run registry rows); 0 when the registry cannot say."""
    from growthcurve.validation.served import looks_before

    try:
        return looks_before(name)
    except GrowthcurveError:
        return 0


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.2f}%"


def _ci(ci: tuple[float, float] | list[float] | None, pct: bool = True) -> str:
    if ci is None:
        return "–"
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]" if pct else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def print_result(
    out: Console, result: Any, alpha: float, correction: str, notes: list[str] | None = None, looks: int = 0
) -> None:
    """The SRM verdict, one row per metric and arm (a table when the terminal is wide enough, stacked records
    when not: no number is ever cut), which test each row reports, and the warnings. `ab analyze`, `decide`
    and `ab analyze`'s saved output all show rows built by ``ExperimentResult.rows``."""
    from growthcurve.tables import Column, print_records

    srm = result.srm
    out.print(
        ("[bold white on red] SRM ALARM [/] " if srm.alarm else "[green]SRM ok[/] ") + srm.message, highlight=False
    )
    for w in result.warnings:
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    level = f"{1 - alpha:.0%} CI"
    cols = [
        Column("metric", key=True),
        Column("variant", key=True),
        Column("n", right=True),
        Column("mean", right=True),
        Column("lift", right=True),
        Column(level, right=True),
        Column("p (adj.)", right=True),
        Column("sequential CS", right=True),
        Column("P(win)", right=True),
    ]
    rows: list[list[str]] = []
    methods: dict[str, list[str]] = {}
    problems: list[str] = []
    for r in result.rows():
        mean = "–" if r.mean is None else f"{r.mean:.4g}"
        if r.is_control:
            name = r.variant if r.variant == "control" else f"{r.variant} (control)"
            rows.append([r.metric, name, str(r.n), mean, "", "", "", "", ""])
            continue
        if r.error:
            problems.append(f"metric '{r.metric}', {r.variant}: {r.error}")
            rows.append([r.metric, r.variant, str(r.n), mean, "[red]error[/]", "", "", "", ""])
            continue
        rel = r.scale == "relative"
        methods.setdefault(r.method, []).append(f"{r.metric}/{r.variant}")
        rows.append(
            [
                r.metric,
                r.variant,
                str(r.n),
                mean,
                (_pct(r.effect) if rel else f"{r.effect:+.4g}") + ("[bold green]*[/]" if r.significant else ""),
                _ci(r.ci, rel),
                f"{r.p:.3g} ({r.p_adjusted:.3g})" if r.p_adjusted is not None else f"{r.p:.3g}",
                _ci(r.seq_ci, rel) + ("[bold cyan]†[/]" if r.seq_significant else ""),
                "–" if r.chance_to_win is None else f"{100 * r.chance_to_win:.1f}%",
            ]
        )
    for m in result.metrics:
        if m.error:
            problems.append(f"metric '{m.metric}': {m.error}")
        problems += [f"metric '{m.metric}': {w}" for w in m.warnings]
        problems += [f"metric '{m.metric}', {c.treatment}: {w}" for c in m.comparisons for w in c.warnings]
    print_records(out, cols, rows, title="A/B results vs control (relative lift in %, or absolute difference)")
    for method, which in methods.items():
        out.print(f"lift, CI, p and * of {', '.join(which)}: {method}", highlight=False)
    adj = "" if correction == "none" else f", {correction}-adjusted over the arms"
    out.print(f"* fixed-horizon p{adj} < {alpha:g}; † the always-valid sequential CS excludes 0", highlight=False)
    if looks:
        out.print(
            f"[yellow]peeked:[/] analysed {looks} time(s) before: the fixed-horizon p, CI and * assume one look; "
            "only the sequential CS and † stay valid under peeking",
            highlight=False,
            soft_wrap=True,
        )
    for n in notes or []:
        out.print(n, highlight=False)
    for p in problems:
        out.print(f"[yellow]warning:[/] {p}", highlight=False)


def _register_analysis(cfg: Any, name: str, result: Any, out_dir: Path) -> None:
    """One `ab-analyze` row in the run registry: the config, the event file, and per-comparison lift and p."""
    from growthcurve.store.registry import record_finished

    summary: dict[str, Any] = {"srm_alarm": result.srm.alarm, "srm_p": result.srm.p_value}
    for r in result.rows():
        if r.is_control or r.error or r.effect is None:
            continue
        summary.setdefault(r.metric, {})[r.variant] = {
            "scale": r.scale,
            "effect": r.effect,
            "p": r.p,
            "p_adjusted": r.p_adjusted,
            "significant": r.significant,
        }
    record_finished(
        "ab-analyze",
        name=name,
        config=cfg.model_dump(mode="json"),
        data_files=[cfg.source.path],
        metrics=summary,
        artefact=out_dir,
    )


@ab_app.command("plan")
def plan_cmd(
    baseline: Annotated[
        float, typer.Option(help="conversion rate (0..1), or the mean when --sd is given", callback=in_range())
    ],
    mde: Annotated[
        float,
        typer.Option(help="minimum detectable relative lift, e.g. 0.05 for +5%", callback=in_range(0, lo_open=True)),
    ],
    sd: Annotated[
        float | None,
        typer.Option(help="per-unit standard deviation of a mean metric", callback=in_range(0, lo_open=True)),
    ] = None,
    daily_units: Annotated[
        float | None, typer.Option(help="units entering the experiment per day", callback=in_range(0, lo_open=True))
    ] = None,
    variants: Annotated[int, typer.Option(help="number of arms including control", min=2)] = 2,
    alpha: Annotated[float, typer.Option(callback=probability())] = 0.05,
    power: Annotated[float, typer.Option(callback=probability())] = 0.8,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the plan as JSON")] = None,
) -> None:
    """Units per arm and days needed to detect ``--mde`` with the given power."""
    from growthcurve.validation.power import PowerAnalysis

    plan = PowerAnalysis(alpha, power, variants).fit(baseline, mde, sd, daily_units).result_
    t = Table(title="Power plan")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("metric", f"{plan.metric_type} (baseline {plan.baseline:g}, sd {plan.sd:.4g})")
    t.add_row("MDE", f"{plan.mde_relative:+.2%} relative ({plan.mde_absolute:.4g} absolute)")
    bonf = " (Bonferroni)" if plan.corrections != "none" else ""
    t.add_row("alpha / power", f"{plan.alpha:g} / {plan.power:g}{bonf}")
    t.add_row("units per arm", f"{plan.units_per_arm:,}")
    t.add_row("total units", f"{plan.total_units:,} over {plan.variants} arms")
    if plan.days is not None:
        t.add_row("duration", f"{plan.days} days at {plan.daily_units:,.0f} units/day")
    console.print(t)
    if json_out:
        write_json(json_out, asdict(plan))


@ab_app.command("simulate")
def simulate_cmd(
    experiments: Annotated[int, typer.Option(help="simulated experiments", min=1)] = 4000,
    looks: Annotated[int, typer.Option(help="daily looks per experiment", min=1)] = 30,
    users_per_day: Annotated[int, typer.Option(help="new users per arm per day", min=2)] = 500,
    baseline: Annotated[float, typer.Option(help="control conversion rate", callback=probability())] = 0.10,
    lift: Annotated[
        float, typer.Option(help="true relative lift (0 = A/A)", callback=in_range(-1, lo_open=True))
    ] = 0.0,
    alpha: Annotated[float, typer.Option(callback=probability())] = 0.05,
    n_star: Annotated[
        float, typer.Option(help="sequential tuning N* (total units)", callback=in_range(0, lo_open=True))
    ] = 5000.0,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    out: Annotated[Path | None, typer.Option(help="also write one example experiment (.csv/.parquet/.db)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the rates as JSON")] = None,
) -> None:
    """A/A (``--lift 0``) or A/B simulation: how often each procedure declares a winner."""
    from growthcurve.validation.simulate import simulate_peeking, write_example_events

    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("sim", total=experiments)
        res = simulate_peeking(
            experiments,
            looks,
            users_per_day,
            baseline,
            lift,
            alpha,
            n_star,
            seed,
            progress=lambda k: bar.advance(task, k),
        )
    kind = "false-positive rate" if lift == 0 else "power (rejection rate)"
    t = Table(
        title=f"{'A/A' if lift == 0 else 'A/B'}: {experiments} experiments × {looks} looks, "
        f"{users_per_day}/arm/day, p={baseline:g}, lift={lift:+g}"
    )
    t.add_column("procedure")
    t.add_column(kind, justify="right")
    t.add_row("naive z test, stop at first p < alpha", f"{res.reject_naive_peeking:.1%}")
    t.add_row("one look at the end (fixed horizon)", f"{res.reject_fixed:.1%}")
    t.add_row(f"confidence sequence (N*={n_star:g}), any look", f"{res.reject_sequential:.1%}")
    t.add_row("coverage: fixed CI at the end", f"{res.coverage_fixed:.1%}")
    t.add_row("coverage: sequential CS at every look", f"{res.coverage_sequential:.1%}")
    console.print(t)
    if json_out:
        write_json(json_out, asdict(res))
    if out:
        n = write_example_events(out, seed=seed)
        console.print(f"wrote {n:,} example events to {out}", highlight=False)


@ab_app.command("init-db")
def init_db_cmd(
    url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: GROWTHCURVE_DB_URL or sqlite)")] = None,
) -> None:
    """Create or upgrade the store's tables (events, predictions, feedback) with Alembic."""
    from growthcurve.store import default_url, init_db

    engine = init_db(url)
    console.print(f"store ready at {engine.url!r}" if url else f"store ready at {default_url()}", highlight=False)
    engine.dispose()


@survey_app.command("analyze")
def survey_cmd(
    data: Annotated[str, typer.Argument(help="CSV/Parquet file of answers, or a table name with --url")],
    kind: Annotated[str, typer.Option(help="nps (0-10) or csat (1-5)")] = "nps",
    score_column: Annotated[str, typer.Option(help="column holding the answer")] = "score",
    variant_column: Annotated[str, typer.Option(help="column holding the variant")] = "variant",
    url: Annotated[str | None, typer.Option(help="SQLAlchemy URL when DATA is a table")] = None,
    control: Annotated[str | None, typer.Option(help="control variant")] = None,
    alpha: Annotated[float, typer.Option(callback=probability())] = 0.05,
    seed: Annotated[int, typer.Option(help="bootstrap seed", min=0)] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the result as JSON")] = None,
) -> None:
    """CSAT or NPS per variant with CIs (Wilson / bootstrap) and the difference to the control."""
    from growthcurve.validation.config import SourceConfig
    from growthcurve.validation.sql import open_source
    from growthcurve.validation.surveys import SurveyAnalysis, score_counts

    if kind not in ("nps", "csat"):
        raise ConfigError(f"--kind must be nps or csat (got '{kind}')")
    is_file = url is None
    src_cfg = SourceConfig(
        url=url, path=data if is_file else None, table="answers" if is_file else data, timestamp_column=""
    )
    with open_source(src_cfg, [score_column], option="--url") as src:
        src.col(variant_column, "--variant-column")
        src.col(score_column, "--score-column")
        counts = score_counts(src.engine, src.table, variant_column, score_column)
    res = SurveyAnalysis(kind, alpha, control, seed=seed).fit(counts).result_  # type: ignore[arg-type]
    unit = "%" if kind == "csat" else " pts"
    t = Table(title=f"{kind.upper()} by variant")
    for col in ("variant", "answers", "score", f"{1 - alpha:.0%} CI", "mean answer", "diff vs control", "p"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    comps = {c.treatment: c for c in res.comparisons}
    for a in res.arms:
        c = comps.get(a.variant)
        if a.error:
            t.add_row(a.variant, str(a.n), "[red]error[/]", "", "", "", "")
            continue
        diff = "control" if c is None else ("–" if c.diff is None else f"{c.diff:+.1f}{unit} {_ci(c.ci, False)}")
        t.add_row(
            a.variant,
            str(a.n),
            f"{a.score:.1f}{unit}",
            _ci(a.ci, False),
            f"{a.mean_answer:.2f}",
            diff,
            "" if c is None or c.p_value is None else f"{c.p_value:.3g}",
        )
    console.print(t)
    for msg in [a.error for a in res.arms if a.error] + [c.error for c in res.comparisons if c.error] + res.warnings:
        console.print(f"[yellow]warning:[/] {msg}", highlight=False)
    if json_out:
        write_json(json_out, res.to_dict())


def _drivers_input(
    answers: Path | None, store: str | None, table: str | None, columns: list[str]
) -> tuple[Any, str, Callable[[int], str]]:
    """The answers as a DataFrame (file through the project's reader, or a store table), its name, and how to
    name the place of row ``i`` in an error (file:line for delimited files and JSONL)."""
    import pandas as pd

    from growthcurve.data.readers import read_table, require_columns

    if answers is not None and store is None and table is None:
        df = read_table(answers)
        require_columns(df, columns, answers, "--overall/--items/--variant")
        suffix = answers.suffix.lower()
        if suffix in (".csv", ".tsv", ".txt"):
            first = 2  # line 1 is the header
        elif suffix in (".jsonl", ".json"):
            first = 1
        else:
            return df, str(answers), lambda i: f"{answers}: row {i + 1}"
        return df, str(answers), lambda i: f"{answers}:{i + first}"
    if answers is not None or table is None:
        raise ConfigError("give either ANSWERS (a file) or --table T (with --store URL), not both or neither")
    import sqlalchemy as sa

    from growthcurve.store import get_engine, validate_identifier
    from growthcurve.validation.sql import reflect

    for c in columns:
        validate_identifier(c, "column")
    engine = get_engine(store)
    try:
        tab = reflect(engine, table)
        missing = [c for c in columns if c not in tab.c]
        if missing:
            raise ConfigError(
                f"table '{table}' has no column '{missing[0]}' (columns: {', '.join(tab.c.keys())}); "
                "fix --overall/--items/--variant"
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.select(*(tab.c[c] for c in columns))).all()
    finally:
        engine.dispose()
    if not rows:
        raise DataError(f"table '{table}' has no answers")
    return pd.DataFrame(rows, columns=columns, dtype=object), table, lambda i: f"table '{table}' row {i + 1}"


@survey_app.command("drivers")
def drivers_cmd(
    answers: Annotated[Path | None, typer.Argument(help="CSV/TSV/JSONL/Parquet of answers (or use --table)")] = None,
    overall: Annotated[str, typer.Option(help="column of the overall satisfaction score")] = "overall",
    items: Annotated[str, typer.Option(help="item columns, comma-separated, e.g. quality,speed,tone")] = "",
    variant: Annotated[str | None, typer.Option(help="variant column: also fit each variant on its own")] = None,
    store: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the store (with --table)")] = None,
    table: Annotated[str | None, typer.Option(help="table of answers in the store")] = None,
    out: Annotated[Path, typer.Option(help="output folder for drivers.json and priority_matrix.png")] = Path(
        "runs/drivers"
    ),
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples for the coefficient CIs")] = 1000,
    alpha: Annotated[float, typer.Option()] = 0.05,
    seed: Annotated[int, typer.Option(help="bootstrap / permutation seed")] = 0,
) -> None:
    """What drives overall satisfaction: standardised OLS with bootstrap CIs, ordinal logit, dominance, VIF,
    and an importance-vs-performance priority matrix."""
    from growthcurve.validation.drivers import DriverAnalysis, numeric_columns, plot_priority_matrix

    item_cols = [c.strip() for c in items.split(",") if c.strip()]
    if not item_cols:
        raise ConfigError("--items is empty: name the item columns, e.g. --items quality,speed,tone")
    dup = sorted({c for c in item_cols if item_cols.count(c) > 1} | ({overall} & set(item_cols)))
    if dup:
        raise ConfigError(f"--items/--overall name {dup} twice: each column plays one part")
    if not 0 < alpha < 0.5 or n_boot < 50:
        raise ConfigError("--alpha must be in (0, 0.5) and --n-boot at least 50")
    cols = [overall, *item_cols] + ([variant] if variant else [])
    df, name, locate = _drivers_input(answers, store, table, cols)
    num, warnings = numeric_columns(df, [overall, *item_cols], locate)
    groups = None
    if variant:
        groups = df.loc[num.index, variant]
        if groups.isna().any():
            raise DataError(f"{locate(int(groups.isna().to_numpy().argmax()))}: column '{variant}' is empty")
        groups = groups.astype(str).rename(variant)
    with console.status(f"fitting the drivers of '{overall}' on {len(item_cols)} items ..."):
        res = DriverAnalysis(n_boot=n_boot, alpha=alpha, seed=seed).fit(num[item_cols], num[overall], groups).result_
    warnings = warnings + res.warnings  # input warnings first; the fitted result stays as fit() left it
    for f in res.fits:
        t = Table(title=f"Drivers of '{overall}' · {f.group} (n={f.n}, R²={f.r2:.3f}, dominance {f.dominance_method})")
        for col in ("item", "mean", "std. coef", f"{1 - alpha:.0%} CI", "p", "ordinal", "importance", "VIF", ""):
            t.add_column(col, justify="left" if col in ("item", "") else "right")
        for it in sorted(f.items, key=lambda i: -i.dominance_share):
            t.add_row(
                it.item,
                f"{it.mean:.2f}",
                f"{it.std_coef:+.3f}",
                f"[{it.ci[0]:+.3f}, {it.ci[1]:+.3f}]",
                f"{it.p_value:.3g}",
                "–" if it.ordinal_coef is None else f"{it.ordinal_coef:+.3f}",
                f"{100 * it.dominance_share:.1f}%",
                f"{it.vif:.2f}",
                "[bold red]priority[/]" if it.priority else "",
            )
        console.print(t)
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    write_json(out / "drivers.json", {"source": name, **res.to_dict(), "warnings": warnings})
    plot_priority_matrix(res, out / "priority_matrix.png")
    console.print(f"wrote {out / 'drivers.json'}, {out / 'priority_matrix.png'}", highlight=False)
