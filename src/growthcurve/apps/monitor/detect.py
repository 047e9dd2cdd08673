"""Surge detection: is a window's negative share above its rolling baseline beyond chance?

The test, per topic and closed window: one-sided Fisher exact test of the 2x2 table
(window negatives, window others) vs (baseline negatives, baseline others), where the baseline is the
sum of that topic's previous ``baseline_windows`` closed windows (calendar windows; windows that alerted
are left out so a surge does not raise its own baseline). Fisher rather than a binomial test against
the baseline share: the baseline share is itself an estimate from finite counts, and treating it as
known over-alerts when the baseline is thin. A topic is tested only with at least ``min_volume`` texts
in the window and ``min_baseline`` in its baseline; the p-values of one window are corrected across
topics (Holm by default: family-wise error per window; ``fdr_bh`` for Benjamini-Hochberg, by scipy's
``false_discovery_control``). Pure functions plus one small state object that serialises to JSON.

Multi-scale: with ``max_scale`` k > 1 the window is also tested together with its previous 1..k-1 windows
(when none of them alerted), against the baseline before that block, and the smallest p-value is
Bonferroni-corrected for the number of scales tested. A surge too weak to show in one window of a thin
stream shows in two; the per-window error stays at alpha (benchmarks/monitor.py measures both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.stats import false_discovery_control, fisher_exact

from growthcurve.errors import ConfigError

Correction = Literal["holm", "fdr_bh", "bonferroni", "none"]


def surge_pvalue(neg: int, n: int, base_neg: int, base_n: int) -> float:
    """One-sided Fisher exact p-value that the window's negative share exceeds the baseline's."""
    if not (0 <= neg <= n and 0 <= base_neg <= base_n):
        raise ValueError(f"counts out of range: neg={neg} n={n} base_neg={base_neg} base_n={base_n}")
    table = [[neg, n - neg], [base_neg, base_n - base_neg]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def adjust(pvalues: list[float], method: Correction) -> list[float]:
    """Multiple-testing adjusted p-values across the topics of one window."""
    if not pvalues:
        return []
    p = np.asarray(pvalues, dtype=float)
    if method == "none":
        return p.tolist()
    if method == "fdr_bh":
        return false_discovery_control(p, method="bh").tolist()
    if method == "bonferroni":
        return np.minimum(p * len(p), 1.0).tolist()
    # Holm step-down, written out: statsmodels' multipletests (which the tests compare against) runs
    # gc.collect() on every call, 0.2 s per window here, and scipy has no Holm.
    order = np.argsort(p)
    stepped = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    out = np.empty_like(p)
    out[order] = np.minimum(stepped, 1.0)
    return out.tolist()


@dataclass(frozen=True)
class DetectorSettings:
    """Parameters of the surge test (stored with the monitor's state, so a resumed run keeps them)."""

    window_seconds: float = 3600.0
    baseline_windows: int = 24
    # with max_scale 3 on the Twitter replays: 40/40 surges caught within 2 windows, 2.0 false alerts per 1,000
    alpha: float = 0.005
    min_volume: int = 20
    min_baseline: int = 100
    correction: Correction = "holm"
    max_scale: int = 3  # also test the last 2 and 3 windows together (1: the window alone)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ConfigError(f"the window must be positive (got {self.window_seconds} s)")
        if self.baseline_windows < 1:
            raise ConfigError(f"--baseline-windows must be at least 1 (got {self.baseline_windows})")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"--alpha must be in (0, 1) (got {self.alpha})")
        if self.min_volume < 1 or self.min_baseline < 1:
            raise ConfigError("--min-volume and --min-baseline must be at least 1")
        if not 1 <= self.max_scale <= 24:
            raise ConfigError(f"--max-scale must be between 1 and 24 windows (got {self.max_scale})")
        if self.correction not in ("holm", "fdr_bh", "bonferroni", "none"):
            raise ConfigError(f"--correction must be holm, fdr_bh, bonferroni or none (got {self.correction!r})")


@dataclass
class SurgeDetector:
    """Counts per (window, topic) of a time-ordered stream; closing a window tests it against its baseline.

    ``open_window`` is the index (``floor(epoch / window_seconds)``) of the window being filled;
    ``history`` maps closed window indices to ``{topic: [n, negatives, alerted]}`` for the last
    ``baseline_windows`` windows.
    """

    settings: DetectorSettings = field(default_factory=DetectorSettings)
    open_window: int | None = None
    counts: dict[str, list[int]] = field(default_factory=dict)
    history: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    late: int = 0

    def window_of(self, epoch: float) -> int:
        return int(epoch // self.settings.window_seconds)

    def add(self, epoch: float, topic: str, negative: bool) -> list[dict[str, Any]]:
        """Count one text; returns the rows of the windows this text closed (empty list if none).

        A text older than the open window is *late*: counted in ``late`` and not added (its window has
        been tested and stored already).
        """
        w = self.window_of(epoch)
        rows: list[dict[str, Any]] = []
        if self.open_window is None:
            self.open_window = w
        elif w < self.open_window:
            self.late += 1
            return rows
        elif w > self.open_window:
            rows = self.close()
            self.open_window = w
        c = self.counts.setdefault(topic, [0, 0])
        c[0] += 1
        c[1] += int(negative)
        return rows

    def close(self) -> list[dict[str, Any]]:
        """Test and close the open window: one row per topic seen in it (``alert`` true for a surge)."""
        s = self.settings
        w = self.open_window
        if w is None or not self.counts:
            return []
        rows: list[dict[str, Any]] = []
        tested: list[int] = []
        for topic in sorted(self.counts):
            n, neg = self.counts[topic]
            base_n, base_neg = self._baseline(topic, w, 1)
            row: dict[str, Any] = {
                "window": w,
                "window_start": w * s.window_seconds,
                "topic": topic,
                "n": n,
                "negative": neg,
                "negative_share": neg / n,
                "baseline_n": base_n,
                "baseline_share": base_neg / base_n if base_n else None,
                "p_value": None,
                "p_adjusted": None,
                "scale": None,
                "alert": False,
            }
            if n >= s.min_volume and base_n >= s.min_baseline:
                tests = [(surge_pvalue(neg, n, base_neg, base_n), 1)]
                block_n, block_neg = n, neg
                for k in range(2, s.max_scale + 1):
                    prev = self.history.get(w - k + 1, {}).get(topic)
                    if prev is None or prev[2]:  # a gap or an alerted window ends the block
                        break
                    block_n, block_neg = block_n + prev[0], block_neg + prev[1]
                    bn, bneg = self._baseline(topic, w, k)
                    if bn < s.min_baseline:
                        break
                    tests.append((surge_pvalue(block_neg, block_n, bneg, bn), k))
                p_min, scale = min(tests)
                row["p_value"] = min(1.0, p_min * len(tests))  # Bonferroni across the scales tested
                row["scale"] = scale
                tested.append(len(rows))
            rows.append(row)
        for i, p_adj in zip(tested, adjust([rows[i]["p_value"] for i in tested], s.correction), strict=True):
            rows[i]["p_adjusted"] = p_adj
            rows[i]["alert"] = p_adj < s.alpha
        self.history[w] = {r["topic"]: [r["n"], r["negative"], int(r["alert"])] for r in rows}
        for k in [k for k in self.history if k <= w - s.baseline_windows]:
            del self.history[k]
        self.counts = {}
        return rows

    def _baseline(self, topic: str, w: int, k: int) -> tuple[int, int]:
        """(texts, negatives) of ``topic`` in the non-alerted windows of the baseline before the block of
        the last ``k`` windows ending at ``w``."""
        n = neg = 0
        for j in range(w - self.settings.baseline_windows, w - k + 1):
            h = self.history.get(j, {}).get(topic)
            if h is not None and not h[2]:
                n += h[0]
                neg += h[1]
        return n, neg

    def to_state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (stored with the stream position after every batch)."""
        return {
            "open_window": self.open_window,
            "counts": self.counts,
            "history": {str(k): v for k, v in self.history.items()},
            "late": self.late,
        }

    @classmethod
    def from_state(cls, settings: DetectorSettings, state: dict[str, Any]) -> SurgeDetector:
        return cls(
            settings=settings,
            open_window=state.get("open_window"),
            counts={k: list(v) for k, v in state.get("counts", {}).items()},
            history={int(k): {t: list(c) for t, c in v.items()} for k, v in state.get("history", {}).items()},
            late=int(state.get("late", 0)),
        )
