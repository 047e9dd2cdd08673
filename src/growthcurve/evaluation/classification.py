"""Classification metrics and the report files a run folder carries (text, JSON, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from growthcurve.atomic import atomic_path, write_json, write_text


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, multi_label: bool, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy and F1 (macro/micro/weighted); for multi-label, subset accuracy at ``threshold``."""
    if multi_label:
        y_pred = (probs >= threshold).astype(int)
        y_true = y_true.astype(int)
    else:
        y_pred = probs.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }


def write_reports(
    out_dir: Path, split: str, y_true: np.ndarray, probs: np.ndarray, labels: list[str], multi_label: bool
) -> dict[str, Any]:
    """Write ``classification_report_<split>.txt/json`` and the confusion-matrix PNG; return the dict."""
    if multi_label:
        y_pred = (probs >= 0.5).astype(int)
        y_true_ = y_true.astype(int)
    else:
        y_pred = probs.argmax(axis=1)
        y_true_ = y_true
    ids = list(range(len(labels)))
    kw: dict[str, Any] = {"target_names": labels, "zero_division": 0}
    if not multi_label:
        kw["labels"] = ids
    text = classification_report(y_true_, y_pred, digits=4, **kw)
    report = classification_report(y_true_, y_pred, output_dict=True, **kw)
    write_text(out_dir / f"classification_report_{split}.txt", text)
    write_json(out_dir / f"classification_report_{split}.json", report)
    if not multi_label:
        cm = confusion_matrix(y_true_, y_pred, labels=ids)
        plot_confusion(cm, labels, out_dir / f"confusion_matrix_{split}.png", f"Confusion matrix ({split})")
    return report


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix as a heat map (counts annotated when the matrix is small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=max(4, 10 - n // 10))
    ax.set_yticks(range(n), labels, fontsize=max(4, 10 - n // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Train loss per logged step and dev metrics per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h for h in history if "dev" in h]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], "o-", label="train loss")
    a.plot([h["epoch"] for h in epochs], [h["dev"]["loss"] for h in epochs], "s-", label="dev loss")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    a.grid(alpha=0.3)
    for key in ("accuracy", "macro_f1"):
        b.plot([h["epoch"] for h in epochs], [h["dev"].get(key, np.nan) for h in epochs], "o-", label=f"dev {key}")
    b.set_xlabel("epoch")
    b.set_ylim(0, 1.02)
    b.legend()
    b.grid(alpha=0.3)
    fig.suptitle("Training curves")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
