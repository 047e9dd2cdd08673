"""Temperature scaling, the answer threshold and the coverage-vs-accuracy curve: pure functions on arrays.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T fitted to minimise the dev
negative log-likelihood; log-probabilities stand in for logits (they differ by a per-row constant, which
softmax ignores), so any run that gives probabilities — transformer or TF-IDF — can be calibrated.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from growthcurve.errors import DataError

_EPS = 1e-12
_LOG_T_BOUNDS = (-4.0, 4.0)  # T in [0.018, 55]: far wider than any sane fit, keeps the search bounded


def _log_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[0] == 0:
        raise DataError(f"probabilities must be a non-empty (n, classes) array, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise DataError("probabilities contain NaN or infinity: the intent model is broken")
    return np.log(np.clip(p, _EPS, 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident probabilities, T < 1 sharpens them."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise DataError(f"temperature must be a positive finite number, got {temperature}")
    return softmax(_log_probs(probs) / temperature, axis=1)


def nll(probs: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the gold classes ``y`` under temperature-scaled ``probs``."""
    lp = log_softmax(_log_probs(probs) / temperature, axis=1)
    y = np.asarray(y, dtype=int)
    return float(-lp[np.arange(len(y)), y].mean())


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The T minimising dev NLL (a bounded 1-D search over log T with scipy)."""
    y = np.asarray(y, dtype=int)
    if len(y) != np.asarray(probs).shape[0]:
        raise DataError(f"{len(y)} gold labels for {np.asarray(probs).shape[0]} probability rows")
    if len(y) < 2:
        raise DataError("temperature scaling needs at least 2 dev rows")
    res = minimize_scalar(lambda lt: nll(probs, y, float(np.exp(lt))), bounds=_LOG_T_BOUNDS, method="bounded")
    return float(np.exp(res.x))


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, coverage, answered accuracy) when answering every row with confidence ≥ threshold,
    one point per distinct confidence, highest threshold first."""
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1 or conf.size == 0:
        raise DataError("confidence and correct must be 1-D arrays of the same non-zero length")
    order = np.argsort(-conf, kind="stable")
    c, k = conf[order], ok[order]
    hits = np.cumsum(k)
    n = np.arange(1, len(c) + 1)
    last = np.r_[c[1:] != c[:-1], True]  # the last row of each run of equal confidences
    return c[last], n[last] / len(c), hits[last] / n[last]


def wilson_lower(hits: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion at ``confidence`` (e.g. 0.9), via statsmodels."""
    from statsmodels.stats.proportion import proportion_confint

    lo, _ = proportion_confint(np.asarray(hits), np.asarray(n), alpha=2 * (1 - confidence), method="wilson")
    return np.asarray(lo, dtype=float)


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float, bound: float | None = None
) -> tuple[float, float, float, bool]:
    """The lowest threshold whose answered accuracy reaches ``target`` (most coverage that meets it).

    With ``bound`` (e.g. 0.9) the test is the one-sided Wilson lower bound of the answered accuracy at that
    confidence, not the point estimate: the lowest point-estimate threshold on dev sits exactly on the
    target, so an unseen test set lands below it about half the time; the bound buys that margin with a
    little coverage. Returns (threshold, coverage, answered accuracy, reached). When no threshold reaches
    the target, the one with the best (bounded) answered accuracy (ties: more coverage) is returned with
    ``reached=False``.
    """
    if not 0 < target <= 1:
        raise DataError(f"target answered accuracy must be in (0, 1], got {target}")
    if bound is not None and not 0.5 <= bound < 1:
        raise DataError(f"confidence of the accuracy bound must be in [0.5, 1), got {bound}")
    t, cov, acc = coverage_curve(confidence, correct)
    judged = acc
    if bound is not None:
        n = np.rint(cov * len(np.asarray(confidence))).astype(int)
        judged = wilson_lower(np.rint(acc * n).astype(int), n, bound)
    meets = np.flatnonzero(judged >= target - 1e-12)
    if meets.size:
        i = int(meets[-1])  # thresholds fall along the array: the last one that meets is the lowest
        return float(t[i]), float(cov[i]), float(acc[i]), True
    best = judged.max()
    i = int(np.flatnonzero(judged >= best - 1e-12)[-1])
    return float(t[i]), float(cov[i]), float(acc[i]), False
