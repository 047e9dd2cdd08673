"""Entity-level evaluation of taggers with seqeval (strict IOB2/IOBES), token accuracy, and reports.

Predictions are decoded with a constrained Viterbi pass (only transitions the scheme allows), so the
tag sequences scored in seqeval's strict mode are always well formed and every predicted entity counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from growthcurve.atomic import atomic_open, atomic_path, write_json, write_text


def _scheme_class(scheme: str) -> Any:
    from seqeval.scheme import IOB2, IOBES

    return {"IOB2": IOB2, "IOBES": IOBES}[scheme]


@dataclass
class NerScores:
    """Micro-averaged entity precision/recall/F1, macro entity F1, token accuracy, and per-type scores."""

    precision: float
    recall: float
    f1: float
    macro_f1: float
    accuracy: float
    n_entities: int
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """Flat float metrics (the keys the training loop, CLI and early stopping read)."""
        return {
            "entity_f1": self.f1,
            "entity_precision": self.precision,
            "entity_recall": self.recall,
            "macro_f1": self.macro_f1,
            "micro_f1": self.f1,
            "accuracy": self.accuracy,
        }


def ner_scores(gold: list[list[str]], pred: list[list[str]], scheme: str) -> NerScores:
    """seqeval strict-mode entity scores in ``scheme`` plus token accuracy over every word."""
    from seqeval.metrics import classification_report

    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred, strict=True)):
        raise ValueError("gold and predicted tag sequences differ in shape")
    n_tok = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True))
    report = classification_report(
        gold, pred, mode="strict", scheme=_scheme_class(scheme), output_dict=True, zero_division=0
    )
    per_type = {
        k: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for k, v in report.items()
        if not k.endswith(" avg")
    }
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    macro = report.get("macro avg", {"f1-score": 0.0})
    return NerScores(
        float(micro["precision"]),
        float(micro["recall"]),
        float(micro["f1-score"]),
        float(macro["f1-score"]),
        correct / max(n_tok, 1),
        int(micro["support"]),
        per_type,
    )


def entities(tags: list[str], scheme: str) -> list[tuple[str, int, int]]:
    """(type, start, end-exclusive) of the well-formed entities in one tag sequence (strict reading)."""
    from seqeval.scheme import Entities

    return [(e.tag, e.start, e.end) for e in Entities([list(tags)], _scheme_class(scheme)).entities[0]]


# ----------------------------------------------------------------------------------------------
# constrained decoding


def allowed_transitions(labels: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean (start [K], transition [K, K], end [K]) masks of what ``scheme`` allows."""

    def split(t: str) -> tuple[str, str]:
        return ("O", "") if t == "O" else (t[0], t[2:])

    parts = [split(t) for t in labels]
    k = len(labels)
    trans = np.zeros((k, k), dtype=bool)
    start = np.zeros(k, dtype=bool)
    end = np.zeros(k, dtype=bool)
    for j, (pj, tj) in enumerate(parts):
        start[j] = pj in ("O", "B", "S")
        end[j] = pj in ("O", "B", "I") if scheme == "IOB2" else pj in ("O", "E", "S")
        for i, (pi, ti) in enumerate(parts):
            if scheme == "IOB2":
                trans[i, j] = pj in ("O", "B") or (pj == "I" and pi in ("B", "I") and ti == tj)
            else:
                inside = pi in ("B", "I")
                if pj in ("I", "E"):
                    trans[i, j] = inside and ti == tj
                else:  # O, B, S need the previous entity closed
                    trans[i, j] = not inside
    return start, trans, end


def constrained_decode(log_probs: np.ndarray, masks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[int]:
    """Most probable tag path [n] under per-position log-probabilities [n, K] and the allowed transitions.

    Viterbi is a dozen lines; pulling in a CRF library for it alone is not worth a dependency.
    """
    start, trans, end = masks
    n, k = log_probs.shape
    if n == 0:
        return []
    neg = -1e9
    t_pen = np.where(trans, 0.0, neg)
    score = log_probs[0] + np.where(start, 0.0, neg)
    back = np.zeros((n, k), dtype=np.int64)
    for i in range(1, n):
        cand = score[:, None] + t_pen  # [prev, cur]
        back[i] = cand.argmax(axis=0)
        score = cand.max(axis=0) + log_probs[i]
    score = score + np.where(end, 0.0, neg)
    path = [int(score.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return path[::-1]


# ----------------------------------------------------------------------------------------------
# reports


def write_ner_reports(
    out_dir: Path,
    split: str,
    gold: list[list[str]],
    pred: list[list[str]],
    scheme: str,
    tokens: list[list[str]] | None = None,
) -> str:
    """Write the seqeval report (txt + json), a per-type F1 plot and the predictions; return the report text.

    The text report is named ``classification_report_<split>.txt`` so `growthcurve finetune` prints it
    as it does for text classification.
    """
    from seqeval.metrics import classification_report

    out_dir = Path(out_dir)
    scores = ner_scores(gold, pred, scheme)
    text = classification_report(gold, pred, mode="strict", scheme=_scheme_class(scheme), digits=4, zero_division=0)
    text += f"\nentity-level ({scheme}, strict) micro F1 {scores.f1:.4f}; token accuracy {scores.accuracy:.4f}\n"
    write_text(out_dir / f"classification_report_{split}.txt", text)
    write_json(out_dir / f"ner_report_{split}.json", {"scheme": scheme, "mode": "strict", **asdict(scores)})
    if tokens is not None:
        with atomic_open(out_dir / f"predictions_{split}.jsonl") as fh:
            for toks, g, p in zip(tokens, gold, pred, strict=True):
                fh.write(json.dumps({"tokens": toks, "tags": g, "predicted": p}, ensure_ascii=False) + "\n")
    plot_per_type(scores, out_dir / f"ner_f1_{split}.png", f"Entity F1 per type ({split})")
    return text


def plot_per_type(scores: NerScores, path: Path, title: str) -> None:
    """Horizontal bars of precision, recall and F1 per entity type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = sorted(scores.per_type)
    if not types:
        return
    y = np.arange(len(types))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(types) + 1.5))
    for off, key in ((-0.25, "precision"), (0.0, "recall"), (0.25, "f1")):
        ax.barh(y + off, [scores.per_type[t][key] for t in types], height=0.25, label=key)
    ax.set_yticks(y, [f"{t} (n={scores.per_type[t]['support']})" for t in types])
    ax.set_xlim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{title}: micro F1 {scores.f1:.3f}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
