"""The analysis report: JSON (everything), PNG charts (lift with CIs, cumulative lift over time with the
sequential bounds) and a small HTML page that puts the SRM verdict first."""

from __future__ import annotations

import html
from pathlib import Path

from growthcurve.atomic import atomic_path, write_json, write_text
from growthcurve.validation.experiment import ExperimentResult


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:+.{digits}f}%"


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "–" if x is None else format(x, fmt)


def plot_lift(result: ExperimentResult, path: Path) -> bool:
    """Relative lift per metric and treatment: fixed CI (thick) inside the sequential CS (thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (c.metric, c.treatment, c.frequentist, c.sequential)
        for m in result.metrics
        for c in m.comparisons
        if c.frequentist is not None and c.frequentist.rel_ci is not None
    ]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    for i, (_, _, f, s) in enumerate(rows):
        y = len(rows) - 1 - i
        assert f is not None and f.rel_ci is not None and f.rel_effect is not None  # the rows kept above
        if s is not None and s.rel_ci is not None:
            ax.plot(
                [100 * s.rel_ci[0], 100 * s.rel_ci[1]],
                [y, y],
                color="#9ab",
                lw=1.5,
                label="sequential CS" if i == 0 else None,
            )
        ax.plot(
            [100 * f.rel_ci[0], 100 * f.rel_ci[1]], [y, y], color="#1f5fa8", lw=5, label="fixed CI" if i == 0 else None
        )
        ax.plot(100 * f.rel_effect, y, "o", color="black")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{m} · {t}" for m, t, _, _ in reversed(rows)])
    ax.set_xlabel("relative lift vs control (%)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


def plot_timeline(result: ExperimentResult, path: Path) -> bool:
    """Cumulative relative lift per look with the fixed CI band and the always-valid bounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list] = {}
    for p in result.timeline:
        if p.rel_effect is not None:
            series.setdefault((p.metric, p.treatment), []).append(p)
    if not series:
        return False
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.4 * len(series)), squeeze=False)
    for ax, ((metric, treat), pts) in zip(axes[:, 0], series.items(), strict=True):
        x = list(range(1, len(pts) + 1))
        ax.plot(x, [100 * p.rel_effect for p in pts], "o-", color="black", ms=3, label="lift")
        fc = [(p.rel_ci or (None, None)) for p in pts]
        ax.fill_between(
            x,
            [100 * a if a is not None else float("nan") for a, _ in fc],
            [100 * b if b is not None else float("nan") for _, b in fc],
            color="#1f5fa8",
            alpha=0.25,
            label="fixed 95% CI",
        )
        sc = [(p.seq_rel_ci or (None, None)) for p in pts]
        for k in (0, 1):
            ax.plot(
                x,
                [100 * v if (v := c[k]) is not None else float("nan") for c in sc],
                "--",
                color="#c0392b",
                label="sequential bound" if k == 0 else None,
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"{metric} · {treat} vs control (cumulative)", fontsize=9)
        ax.set_ylabel("lift %")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel(f"look (last = {pts[-1].until})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True


_TEMPLATE = """<!doctype html><html><head><meta charset="utf-8"><title>growthcurve A/B report</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
.alarm{background:#fdd;padding:1em;border:2px solid #c00}
.ok{background:#efe;padding:.5em}.err{color:#c00}</style></head><body>
<h1>A/B analysis</h1>
<div class="{{ 'alarm' if srm.alarm else 'ok' }}"><b>Sample ratio check:</b> {{ srm.message }}</div>
{% for w in warnings %}<p class="err">warning: {{ w }}</p>{% endfor %}
{% for m in metrics %}<h2>{{ m.metric }} <small>({{ m.metric_type }}
{{- ', CUPED θ=%.3g' % m.cuped_theta if m.cuped_theta is not none else '' }})</small></h2>
{% if m.error %}<p class="err">{{ m.error }}</p>{% endif %}
<table><tr><th>variant</th><th>n</th><th>mean</th><th>abs lift [CI]</th><th>rel lift [CI]</th>
<th>p (adj) of the reported test</th><th>sequential rel CS</th><th>chance to win</th></tr>
{% for a in m.arms %}<tr><td>{{ a.variant }}</td><td>{{ a.n }}</td><td>{{ num(a.mean) }}</td>
{% set c = comp.get((m.metric, a.variant)) %}
{% if c is none %}<td colspan="5">control</td>{% elif c.error %}<td colspan="5" class="err">{{ c.error }}</td>{% else %}
<td>{{ num(c.frequentist.abs_effect) }} [{{ num(c.frequentist.abs_ci[0]) }}, {{ num(c.frequentist.abs_ci[1]) }}]</td>
<td>{% if c.frequentist.rel_ci %}{{ pct(c.frequentist.rel_effect) }}
[{{ pct(c.frequentist.rel_ci[0]) }}, {{ pct(c.frequentist.rel_ci[1]) }}]{% else %}–{% endif %}</td>
<td>{{ num(c.reported()[2], '.3g') }} ({{ num(c.p_adjusted, '.3g') }}): {{ c.method }}</td>
<td>{% if c.sequential and c.sequential.rel_ci %}[{{ pct(c.sequential.rel_ci[0]) }},
{{ pct(c.sequential.rel_ci[1]) }}]{% else %}–{% endif %}</td>
<td>{{ '%.1f%%' % (100 * c.bayesian.chance_to_win) if c.bayesian else '–' }}</td>{% endif %}</tr>{% endfor %}
</table>{% endfor %}
{% if lift_png %}<h2>Lift with intervals</h2><img src="lift.png" alt="lift">{% endif %}
{% if timeline_png %}<h2>Cumulative lift over time</h2><img src="timeline.png" alt="timeline">{% endif %}
</body></html>"""


def write_report(result: ExperimentResult, out_dir: str | Path) -> dict[str, str]:
    """Write ``result.json``, ``lift.png``, ``timeline.png`` and ``report.html``; returns their paths."""
    import jinja2

    out = Path(out_dir)
    paths = {"json": str(out / "result.json")}
    write_json(out / "result.json", result.to_dict())
    lift_png = plot_lift(result, out / "lift.png")
    timeline_png = plot_timeline(result, out / "timeline.png")
    if lift_png:
        paths["lift_png"] = str(out / "lift.png")
    if timeline_png:
        paths["timeline_png"] = str(out / "timeline.png")
    comp = {(c.metric, c.treatment): c for m in result.metrics for c in m.comparisons}
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text = env.from_string(_TEMPLATE).render(
        srm=result.srm,
        warnings=result.warnings,
        metrics=result.metrics,
        comp=comp,
        pct=_pct,
        num=_num,
        lift_png=lift_png,
        timeline_png=timeline_png,
        escape=html.escape,
    )
    write_text(out / "report.html", text)
    paths["html"] = str(out / "report.html")
    return paths
