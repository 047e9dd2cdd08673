"""The prediction answer: what every path (``Predictor``, ``OnnxPredictor``, ``POST /predict``) returns per input.

One function builds it, so the torch, ONNX and HTTP answers cannot drift apart (they did: three copies, each
with its own 0.5 cut-off). An answer holds:

- ``label`` and ``score``: the most probable label and its probability (both None for multi-label runs),
- ``labels``: multi-label runs only, every label whose probability reaches `MULTI_LABEL_CUTOFF`,
- ``top_k``: the ``k`` most probable labels with their probabilities,
- ``out_of_scope`` and ``ood_score``: when the run has an out-of-scope detector
  (`growthcurve.evaluation.ood`); a higher score is further from the training data, ``out_of_scope`` is
  ``score > threshold``,
- ``explanation``: when asked for, the per-word attributions of the predicted label
  (`growthcurve.training.explain`).

Probabilities are rounded to `DIGITS` decimals, as stored and as shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DIGITS", "MULTI_LABEL_CUTOFF", "OodVerdict", "answer_rows"]

MULTI_LABEL_CUTOFF = 0.5  # a multi-label run answers every label whose sigmoid probability reaches this
DIGITS = 6


@dataclass(frozen=True)
class OodVerdict:
    """Out-of-scope scores of a batch (higher: further from the training data) and the run's threshold."""

    scores: np.ndarray
    threshold: float
    detector: str

    @property
    def flags(self) -> np.ndarray:
        """True where the score is above the threshold: the input is out of scope."""
        return np.asarray(self.scores, dtype=np.float64) > self.threshold


def answer_rows(
    probs: np.ndarray,
    labels: Sequence[str],
    multi_label: bool,
    top_k: int | Sequence[int] = 1,
    ood: OodVerdict | None = None,
    explanations: Sequence[dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """One answer per row of ``probs`` [n, labels] (see the module docstring); ``top_k`` per row or for all."""
    probs = np.asarray(probs)
    n = len(probs)
    ks = [top_k] * n if isinstance(top_k, int) else list(top_k)
    if len(ks) != n:
        raise ValueError(f"{len(ks)} top_k values for {n} rows")
    flags = ood.flags if ood is not None else None
    out: list[dict[str, Any]] = []
    for i, p in enumerate(probs):
        k = max(1, min(int(ks[i]), len(labels)))
        order = np.argsort(-p, kind="stable")[:k]
        row: dict[str, Any] = {}
        if multi_label:
            row["label"] = None
            row["score"] = None
            row["labels"] = [labels[int(j)] for j in np.flatnonzero(p >= MULTI_LABEL_CUTOFF)]
        else:
            row["label"] = labels[int(order[0])]
            row["score"] = round(float(p[order[0]]), DIGITS)
        row["top_k"] = [{"label": labels[int(j)], "probability": round(float(p[j]), DIGITS)} for j in order]
        if ood is not None and flags is not None:
            row["out_of_scope"] = bool(flags[i])
            row["ood_score"] = round(float(ood.scores[i]), DIGITS)
        if explanations is not None and explanations[i] is not None:
            row["explanation"] = explanations[i]
        out.append(row)
    return out
