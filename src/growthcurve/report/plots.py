"""The report's charts as PNG bytes (matplotlib, Agg backend), ready to embed as base64 data URIs.

Charts that another module already draws (goal burn-up, A/B lift, the run's own confusion matrix) are
drawn by that module into a temporary file and embedded as they are, so the report and the module's own
output never disagree.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from growthcurve.report.sections import (  # noqa: E402
    GoalsSection,
    LatestRunSection,
    QualitySection,
    ServingSection,
    TeamSection,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLORS = ["#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085"]


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``: the page stays one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def drawn_by(draw: Callable[[Path], Any]) -> bytes | None:
    """PNG bytes of a chart another module writes to a path (``draw(path)``); None when it drew nothing."""
    with tempfile.TemporaryDirectory(prefix="growthcurve-report-") as d:
        path = Path(d) / "chart.png"
        if draw(path) is False or not path.is_file():
            return None
        return path.read_bytes()


def growth_curve(sec: QualitySection) -> bytes:
    """One line per model lineage: each version's primary test metric over time, labelled v1 → v2 → v3, with the
    model's A/B experiments (▲) and ship (★) / reject (✕) decisions marked on its line where they happened."""
    models = sorted(sec.series, key=lambda m: sec.series[m][0].when)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    symbol = {"experiment": "^", "ship": "*", "reject": "X", "continue": "o"}
    when_all: list[dt.datetime] = []
    for i, model in enumerate(models):
        pts = sec.series[model]
        color = _COLORS[i % len(_COLORS)]
        xs, ys = [p.when for p in pts], [float(p.metric or 0.0) for p in pts]
        when_all += xs
        # matplotlib plots datetimes through its unit converters, which its type stubs leave out
        ax.plot(xs, ys, "-", color=color, lw=1.8, label=f"{model} ({pts[0].metric_name})")  # type: ignore[arg-type]
        for p, x, y in zip(pts, xs, ys, strict=True):
            marker = "s" if p.kind == "retrain" else "D" if p.kind == "compress" else "o"
            ax.plot(x, y, marker, color=color, ms=6)  # type: ignore[arg-type]
            tag = f"v{p.version}" if p.version is not None else (p.name or p.id)[:12]
            tag += " (dev)" if p.split == "dev" else ""
            ax.annotate(tag, (x, y), fontsize=8, xytext=(4, 5), textcoords="offset points", color=color)
        for m in sec.marks.get(model, []):
            before = [y for x, y in zip(xs, ys, strict=True) if x <= m.when] or ys[:1]
            ax.plot(m.when, before[-1], symbol.get(m.kind, "o"), color="black", ms=9 if m.kind == "ship" else 7,  # type: ignore[arg-type]
                    mfc="none" if m.kind == "experiment" else "black")  # fmt: skip
            ax.annotate(m.label, (m.when, before[-1]), fontsize=7, xytext=(4, -11), textcoords="offset points")
            when_all.append(m.when)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if when_all:  # versions made minutes apart stay apart: pad the span, never a default of years
        lo, hi = min(when_all), max(when_all)
        pad = max((hi - lo) * 0.08, dt.timedelta(seconds=30))
        ax.set_xlim(lo - pad, hi + pad)  # type: ignore[arg-type]
    ax.set_title("Model versions over time (primary metric on each version's test split)", fontsize=10)
    ax.set_ylabel("test accuracy / entity F1")
    ax.grid(alpha=0.3)
    kinds = {m.kind for marks in sec.marks.values() for m in marks}
    for kind, label in (("experiment", "A/B experiment started"), ("ship", "ship decision"), ("reject", "reject")):
        if kind in kinds:
            ax.plot([], [], symbol[kind], color="black", mfc="none" if kind == "experiment" else "black", label=label)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def confusion_heatmap(sec: LatestRunSection) -> bytes:
    """A row-normalised confusion heat map without tick labels, for label sets too big to read as a grid."""
    cm = sec.confusion
    assert cm is not None
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"predicted ({len(cm)} labels, order of the run's labels.json)")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({sec.split}, row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def serving_panels(sec: ServingSection) -> bytes:
    """Per model version: thumbs-up rate, corrected-label rate, CSAT and latency p50/p95 side by side."""
    versions = [v.model_name if "@v" in v.model_name else v.model_version for v in sec.versions]  # intents@v2
    short = [v if len(v) <= 16 else v[:14] + "…" for v in versions]
    x = np.arange(len(versions))
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    panels = [
        ("thumbs-up rate", [v.thumbs_up_rate for v in sec.versions], [v.thumbs_n for v in sec.versions], 1.0),
        (
            "corrected-label rate (of predictions)",
            [v.corrected_rate for v in sec.versions],
            [v.requests for v in sec.versions],
            None,
        ),
        ("CSAT (% rating >= 4)", [v.csat for v in sec.versions], [v.csat_n for v in sec.versions], 100.0),
    ]
    for ax, (title, vals, ns, top) in zip(axes[:3], panels, strict=True):
        heights = [0.0 if v is None else v for v in vals]
        bars = ax.bar(x, heights, color=[_COLORS[i % len(_COLORS)] for i in range(len(x))])
        for b, v, n in zip(bars, vals, ns, strict=True):
            ax.text(
                b.get_x() + b.get_width() / 2,
                b.get_height(),
                "no data" if v is None else f"n={n}",
                ha="center",
                va="bottom",
                fontsize=7,
            )
        peak = max([h for h in heights if h] or [1.0])
        ax.set_ylim(0, 1.1 * (top if top is not None else 1.2 * peak))
        ax.set_title(title, fontsize=9)
        ax.set_xticks(x, short, fontsize=7, rotation=20)
    ax = axes[3]
    w = 0.38
    ax.bar(x - w / 2, [v.latency_p50 or 0.0 for v in sec.versions], w, label="p50", color=_COLORS[0])
    ax.bar(x + w / 2, [v.latency_p95 or 0.0 for v in sec.versions], w, label="p95", color=_COLORS[1])
    ax.set_title("latency (ms)", fontsize=9)
    ax.set_xticks(x, short, fontsize=7, rotation=20)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def ab_lift(result: Any) -> bytes | None:
    """The A/B engine's own lift chart (fixed CI inside the sequential CS), from `validation.report`."""
    from growthcurve.validation.report import plot_lift

    return drawn_by(lambda p: plot_lift(result, p))


def burnup(sec: GoalsSection) -> bytes | None:
    """The planning module's burn-up chart: check-ins, the expected-pace line to the target, the forecast."""
    from growthcurve.planning.plots import burnup_chart

    as_of = sec.as_of or dt.date.today()
    return drawn_by(lambda p: burnup_chart(sec.goals, as_of, p))


def ranking_chart(sec: TeamSection) -> bytes:
    """TOPSIS score per candidate with the share of weight perturbations that keep them in the top k."""
    df = sec.ranking
    k = sec.ranking_k
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(df) + 1.2))
    y = np.arange(len(df))[::-1]
    ax.barh(y, df["topsis_score"], color=_COLORS[0])
    for yi, s, p in zip(y, df["topsis_score"], df[f"topsis_p_in_top{k}"], strict=True):
        ax.text(s, yi, f"  {s:.3f} (top-{k} in {p:.0%})", va="center", fontsize=8)
    ax.set_yticks(y, df["candidate"])
    ax.set_xlim(0, 1.25)
    ax.set_xlabel("TOPSIS closeness (1 = ideal)")
    ax.set_title("Candidate ranking")
    fig.tight_layout()
    return _png(fig)


def training_chart(sec: TeamSection) -> bytes:
    """Mean gain per skill with its CI, and the difference-in-differences against a control group if any."""
    res = sec.training
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(res) + 1.4))
    y = np.arange(len(res))[::-1]
    for yi, r in zip(y, res, strict=True):
        ax.plot([r.gain_ci_low, r.gain_ci_high], [yi + 0.12, yi + 0.12], color=_COLORS[0], lw=4)
        ax.plot(r.mean_gain, yi + 0.12, "o", color="black")
        if r.did is not None:
            ax.plot([r.did_ci_low, r.did_ci_high], [yi - 0.12, yi - 0.12], color=_COLORS[1], lw=4)
            ax.plot(r.did, yi - 0.12, "o", color="black")
    ax.plot([], [], color=_COLORS[0], lw=4, label="gain (post - pre), CI")
    if any(r.did is not None for r in res):
        ax.plot([], [], color=_COLORS[1], lw=4, label="gain vs control (DiD), CI")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, [r.skill for r in res])
    ax.set_xlabel("score points")
    ax.set_title("Training effect")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)
