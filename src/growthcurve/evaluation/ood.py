"""Out-of-scope detection: know when a closed-set classifier should not answer.

A classifier trained on a closed set of intents is confidently wrong outside it, and its softmax confidence
is a poor out-of-scope detector, worst for queries from the same domain that no intent covers (Zhang et al.
2021, arXiv:2106.04564). Four scores, each computed from the fine-tuned model, **higher = further out of
scope**:

- ``msp``: minus the maximum softmax probability (Hendrycks & Gimpel 2017), the baseline;
- ``energy``: minus the log-sum-exp of the logits (Liu et al. 2020);
- ``mahalanobis``: the smallest Mahalanobis distance (squared) of the pooled features to a class mean under
  one covariance shared by all classes (Lee et al. 2018; Podolskiy et al. 2021 for intents), the covariance
  estimated with Ledoit-Wolf shrinkage (scikit-learn) so a few rows per class in hundreds of dimensions stay
  invertible;
- ``knn``: the Euclidean distance of the L2-normalised features to their k-th nearest training feature (Sun
  et al. 2022), searched exactly with faiss (a TF-IDF run's sparse n-gram vectors: exact sparse products).

The class means, covariance and kNN bank come from the training rows; the threshold is chosen on the dev
split, which the detector has not seen: the share ``in_scope_recall`` of in-scope dev rows is answered, or,
when the data has out-of-scope rows (``data.oos_label``), the threshold maximises Youden's J (in-scope
recall minus out-of-scope acceptance) and ``auto`` picks the detector with the best dev AUROC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import logsumexp, softmax

from growthcurve.atomic import atomic_path, write_json
from growthcurve.errors import DataError, ModelError
from growthcurve.evaluation.answer import OodVerdict

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "DETECTOR_FILE",
    "OodDetector",
    "auroc",
    "energy_score",
    "fit_detector",
    "fpr_at_recall",
    "knn_score",
    "load_detector",
    "mahalanobis_score",
    "msp_score",
    "ood_report",
]

DETECTORS = ("msp", "energy", "mahalanobis", "knn")
FEATURE_DETECTORS = ("mahalanobis", "knn")
# The detector `ood.detector=auto` uses when the data has no out-of-scope rows to choose with, picked on
# BANKING77-OOS (benchmarks/results/ood.json, docs/ood.md).
DEFAULT_DETECTOR = "mahalanobis"
DETECTOR_FILE = "ood.json"  # in the model folder, next to the weights; written last: its presence = complete
STATS_FILE = "ood.npz"


# ---- the four scores (pure functions on arrays) ----------------------------------------------------------


def msp_score(logits: np.ndarray) -> np.ndarray:
    """Minus the maximum softmax probability of each row."""
    return -softmax(np.asarray(logits, dtype=np.float64), axis=1).max(axis=1)


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The free energy ``-T · logsumexp(logits / T)`` of each row."""
    z = np.asarray(logits, dtype=np.float64)
    return -temperature * logsumexp(z / temperature, axis=1)


def class_means(features: np.ndarray, y: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class means of ``features`` [n, d] and which classes have rows (a class without rows has no mean)."""
    x = np.asarray(features, dtype=np.float64)
    present = np.bincount(y, minlength=num_classes) > 0
    means = np.zeros((num_classes, x.shape[1]))
    for c in np.flatnonzero(present):
        means[c] = x[y == c].mean(axis=0)
    return means[present], present


def shared_precision(features: np.ndarray, y: np.ndarray, means: np.ndarray, present: np.ndarray,
                     shrinkage: float | None = None) -> np.ndarray:  # fmt: skip
    """Inverse of the covariance shared by all classes: of the rows centred on their class mean, with
    Ledoit-Wolf shrinkage (``shrinkage=None``) or a fixed shrinkage in [0, 1] (0: the maximum-likelihood one)."""
    from sklearn.covariance import LedoitWolf, ShrunkCovariance

    x = np.asarray(features, dtype=np.float64)
    index = np.cumsum(present) - 1  # class id -> row of ``means``
    centred = x - means[index[y]]
    est = LedoitWolf(assume_centered=True) if shrinkage is None else ShrunkCovariance(assume_centered=True,
                                                                                     shrinkage=shrinkage)  # fmt: skip
    est.fit(centred)
    return np.linalg.pinv(est.covariance_, hermitian=True)


def mahalanobis_score(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """``min_c (x - μ_c)ᵀ P (x - μ_c)`` of each row: the squared distance to the nearest class mean."""
    x = np.asarray(features, dtype=np.float64)
    xp = x @ precision
    d2 = (xp * x).sum(1)[:, None] - 2.0 * xp @ means.T + ((means @ precision) * means).sum(1)[None, :]
    return np.maximum(d2.min(axis=1), 0.0)


def normalise(features: Any) -> Any:
    """Rows scaled to unit L2 norm (float32, what faiss indexes; a sparse matrix stays sparse)."""
    if sparse.issparse(features):
        from sklearn.preprocessing import normalize

        return normalize(sparse.csr_matrix(features, dtype=np.float32), norm="l2")
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sparse_knn_score(features: Any, bank: Any, k: int, chunk: int = 256) -> np.ndarray:
    """`knn_score` for sparse features (a TF-IDF run's n-gram vectors): exact cosine similarities by sparse
    matrix products, ``chunk`` query rows at a time. faiss indexes dense vectors only; a TF-IDF vocabulary has
    10^5 dimensions, and its rows a few hundred non-zeros, which a sparse product handles directly."""
    q = normalise(features)
    k = max(1, min(int(k), bank.shape[0]))
    out = np.zeros(q.shape[0])
    for start in range(0, q.shape[0], chunk):
        sims = (q[start : start + chunk] @ bank.T).toarray()
        kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
        out[start : start + chunk] = np.sqrt(np.maximum(2.0 - 2.0 * kth, 0.0))
    return out


def knn_index(bank: np.ndarray) -> Any:
    """faiss's exact inner-product index over the normalised ``bank`` rows."""
    import faiss

    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    return index


def knn_score(features: np.ndarray, bank: np.ndarray, k: int, index: Any = None) -> np.ndarray:
    """Euclidean distance of each normalised row to its k-th nearest row of ``bank`` (normalised rows).

    faiss's exact inner-product index (``index``: one built by `knn_index` on ``bank``, reused across calls):
    on unit vectors ``|a - b|² = 2 - 2 a·b``, so the k-th largest inner product is the k-th smallest distance.
    """
    k = max(1, min(int(k), len(bank)))
    index = knn_index(bank) if index is None else index
    sims, _ = index.search(np.ascontiguousarray(normalise(features)), k)
    return np.sqrt(np.maximum(2.0 - 2.0 * sims[:, k - 1].astype(np.float64), 0.0))


# ---- quality of a score ------------------------------------------------------------------------------------


def _check(in_scores: np.ndarray, out_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(in_scores, dtype=np.float64), np.asarray(out_scores, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise DataError("out-of-scope metrics need in-scope and out-of-scope rows")
    return a, b


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve of telling out-of-scope rows (positives) from in-scope ones by the score."""
    from sklearn.metrics import roc_auc_score

    a, b = _check(in_scores, out_scores)
    return float(roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b]))


def fpr_at_recall(in_scores: np.ndarray, out_scores: np.ndarray, recall: float = 0.95) -> float:
    """FPR@95: the share of out-of-scope rows answered (accepted as in scope) by the lowest threshold that
    answers ``recall`` of the in-scope rows (scikit-learn's ROC with in-scope as the positive class)."""
    from sklearn.metrics import roc_curve

    a, b = _check(in_scores, out_scores)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(a)), np.zeros(len(b))], -np.r_[a, b])
    return float(fpr[int(np.searchsorted(tpr, recall - 1e-12, side="left"))])


def youden_threshold(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """The threshold (answer when score ≤ it) maximising in-scope recall minus out-of-scope acceptance."""
    from sklearn.metrics import roc_curve

    a, b = _check(in_scores, out_scores)
    fpr, tpr, thr = roc_curve(np.r_[np.ones(len(a)), np.zeros(len(b))], -np.r_[a, b])
    best = int(np.argmax(tpr - fpr))
    return float(-thr[best]) if np.isfinite(thr[best]) else float(a.min()) - 1e-9


def recall_threshold(in_scores: np.ndarray, recall: float) -> float:
    """The lowest threshold that answers (score ≤ threshold) at least ``recall`` of the in-scope rows."""
    a = np.sort(np.asarray(in_scores, dtype=np.float64))
    if len(a) == 0:
        raise DataError("choosing an out-of-scope threshold needs in-scope dev rows")
    return float(a[min(len(a) - 1, int(np.ceil(recall * len(a))) - 1)])


def ood_report(
    in_scores: np.ndarray,
    out_scores: np.ndarray,
    threshold: float,
    in_correct: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """AUROC, FPR@95, out-of-scope recall at ``threshold``, and the in-scope rows answered at it (share and,
    with ``in_correct``, the accuracy of the answered ones)."""
    a, b = _check(in_scores, out_scores)
    answered = a <= threshold
    out: dict[str, float | int | None] = {
        "in_scope_rows": len(a),
        "oos_rows": len(b),
        "auroc": auroc(a, b),
        "fpr95": fpr_at_recall(a, b, 0.95),
        "oos_recall": float((b > threshold).mean()),
        "in_scope_answered": float(answered.mean()),
    }
    if in_correct is not None:
        ok = np.asarray(in_correct, dtype=bool)
        out["in_scope_accuracy"] = float(ok.mean())
        out["in_scope_answered_accuracy"] = float(ok[answered].mean()) if answered.any() else None
    return out


# ---- the detector a run keeps ------------------------------------------------------------------------------


@dataclass
class OodDetector:
    """What a run keeps to score inputs: the chosen detector, its threshold, and the statistics of the
    training features (class means and shared precision for Mahalanobis, the normalised bank for kNN)."""

    detector: str
    threshold: float
    thresholds: dict[str, float]
    means: np.ndarray | None = None
    precision: np.ndarray | None = None
    bank: np.ndarray | None = None
    k: int = 10
    info: dict[str, Any] = field(default_factory=dict)
    _index: Any = field(default=None, repr=False, compare=False)  # the faiss index over ``bank``, built once

    @property
    def needs_features(self) -> bool:
        """Whether the chosen detector reads the pooled features (not only the logits)."""
        return self.detector in FEATURE_DETECTORS

    def score(self, logits: np.ndarray, features: np.ndarray | None, detector: str | None = None) -> np.ndarray:
        """Scores of ``detector`` (default: the chosen one) for a batch; higher is further out of scope."""
        name = detector or self.detector
        if name == "msp":
            return msp_score(logits)
        if name == "energy":
            return energy_score(logits)
        if features is None:
            raise ModelError(f"the {name} out-of-scope detector needs the model's pooled features")
        if name == "mahalanobis":
            if self.means is None or self.precision is None:
                raise ModelError("this out-of-scope detector keeps no Mahalanobis statistics")
            return mahalanobis_score(features, self.means, self.precision)
        if name == "knn":
            if self.bank is None:
                raise ModelError("this out-of-scope detector keeps no kNN bank")
            if sparse.issparse(self.bank):
                return sparse_knn_score(features, self.bank, self.k)
            if self._index is None:
                self._index = knn_index(self.bank)
            return knn_score(features, self.bank, self.k, self._index)
        raise ModelError(f"unknown out-of-scope detector '{name}'; one of {', '.join(DETECTORS)}")

    def verdict(self, logits: np.ndarray, features: np.ndarray | None) -> OodVerdict:
        """The chosen detector's scores and threshold for a batch, as the prediction answer carries them."""
        return OodVerdict(self.score(logits, features), self.threshold, self.detector)

    def save(self, model_dir: str | Path) -> None:
        """Write ``ood.npz`` (statistics) then ``ood.json`` (choice and thresholds, last) into ``model_dir``."""
        d = Path(model_dir)
        (d / DETECTOR_FILE).unlink(missing_ok=True)  # a refit never pairs the old choice with new statistics
        arrays = {k: v for k, v in (("means", self.means), ("precision", self.precision), ("bank", self.bank))
                  if v is not None}  # fmt: skip
        stored: dict[str, np.ndarray] = {}
        for k, v in arrays.items():
            if sparse.issparse(v):  # a TF-IDF bank: CSR parts
                csr = sparse.csr_matrix(v, dtype=np.float32)
                stored |= {f"{k}_data": csr.data, f"{k}_indices": csr.indices, f"{k}_indptr": csr.indptr,
                           f"{k}_shape": np.asarray(csr.shape, dtype=np.int64)}  # fmt: skip
            else:
                stored[k] = v.astype(np.float32)
        with atomic_path(d / STATS_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **stored)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        write_json(
            d / DETECTOR_FILE,
            {"detector": self.detector, "threshold": self.threshold, "thresholds": self.thresholds, "k": self.k,
             **self.info},
        )  # fmt: skip


def load_detector(model_dir: str | Path) -> OodDetector | None:
    """The detector kept in a model folder, or None for a run made before detectors (or with none fitted)."""
    d = Path(model_dir)
    spec = d / DETECTOR_FILE
    if not spec.is_file():
        return None
    try:
        meta = json.loads(spec.read_text(encoding="utf-8"))
        with np.load(d / STATS_FILE) as z:
            arrays: dict[str, Any] = {
                k: np.asarray(z[k], dtype=np.float64 if k != "bank" else np.float32)
                for k in z.files
                if k in ("means", "precision", "bank")
            }
            if "bank_shape" in z.files:
                shape = tuple(int(v) for v in z["bank_shape"])
                arrays["bank"] = sparse.csr_matrix((z["bank_data"], z["bank_indices"], z["bank_indptr"]), shape=shape)
        detector, threshold = str(meta["detector"]), float(meta["threshold"])
        thresholds = {str(k): float(v) for k, v in meta["thresholds"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"the out-of-scope detector in '{d}' is damaged ({type(exc).__name__}); refit it with "
            f"`growthcurve ood fit {d.parent if d.name == 'model' else d} --overwrite`"
        ) from None
    info = {k: v for k, v in meta.items() if k not in ("detector", "threshold", "thresholds", "k")}
    return OodDetector(
        detector, threshold, thresholds, arrays.get("means"), arrays.get("precision"), arrays.get("bank"),
        int(meta.get("k", 10)), info,
    )  # fmt: skip


def fit_detector(
    train_features: np.ndarray | None,
    train_y: np.ndarray,
    num_classes: int,
    dev_logits: np.ndarray,
    dev_features: np.ndarray | None,
    oos_logits: np.ndarray | None = None,
    oos_features: np.ndarray | None = None,
    detector: str = "auto",
    in_scope_recall: float = 0.95,
    k: int = 10,
    bank_size: int = 20_000,
    seed: int = 0,
    shrinkage: float | None = None,
) -> OodDetector:
    """Fit every detector the features allow on the training features, choose thresholds on dev.

    Without features (``train_features`` None) only ``msp`` and ``energy`` are available. With out-of-scope
    dev rows (``oos_logits``) each threshold maximises Youden's J and ``auto`` takes the best dev AUROC;
    without, each threshold answers ``in_scope_recall`` of the in-scope dev rows and ``auto`` is
    `DEFAULT_DETECTOR` (``knn`` for sparse features, where Mahalanobis is not fitted; ``energy`` without
    features).
    """
    y = np.asarray(train_y, dtype=np.int64)
    det = OodDetector("msp", 0.0, {}, k=k)
    available = ["msp", "energy"]
    if train_features is not None and dev_features is not None:
        if len(y) < 2:
            raise DataError("fitting the out-of-scope detector needs at least 2 training rows")
        if not sparse.issparse(train_features):  # a covariance of 10^5 sparse n-gram dimensions is no use
            means, present = class_means(train_features, y, num_classes)
            det.means = means
            det.precision = shared_precision(train_features, y, means, present, shrinkage)
            available.append("mahalanobis")
        bank = normalise(train_features)
        if bank.shape[0] > bank_size:
            bank = bank[np.sort(np.random.default_rng(seed).choice(bank.shape[0], bank_size, replace=False))]
        det.bank = bank
        available.append("knn")
    if detector not in ("auto", *available):
        why = "sparse TF-IDF features" if sparse.issparse(train_features) else "no pooled features"
        raise DataError(
            f"ood.detector={detector} is not available for this run ({why}); use auto or one of {', '.join(available)}"
        )
    has_oos = oos_logits is not None and len(oos_logits) > 0
    dev_scores = {name: det.score(dev_logits, dev_features, name) for name in available}
    oos_scores = (
        {name: det.score(oos_logits, oos_features, name) for name in available}
        if has_oos and oos_logits is not None
        else {}
    )
    for name in available:
        det.thresholds[name] = (
            youden_threshold(dev_scores[name], oos_scores[name])
            if has_oos
            else recall_threshold(dev_scores[name], in_scope_recall)
        )
    dev_auroc = {name: auroc(dev_scores[name], oos_scores[name]) for name in available} if has_oos else {}
    if detector == "auto":
        if has_oos:
            detector = max(available, key=lambda n: dev_auroc[n])
        else:
            detector = next(d for d in (DEFAULT_DETECTOR, "knn", "energy") if d in available)
    det.detector = detector
    det.threshold = det.thresholds[detector]
    det.info = {
        "train_rows": len(y),
        "dev_rows": len(dev_logits),
        "dev_oos_rows": len(oos_logits) if oos_logits is not None else 0,
        "threshold_rule": "youden" if has_oos else f"in_scope_recall={in_scope_recall:g}",
        "available": available,
        "bank_rows": 0 if det.bank is None else int(det.bank.shape[0]),
        "dev_auroc": dev_auroc,
        "dev_in_scope_answered": float((dev_scores[detector] <= det.threshold).mean()),
    }
    return det
