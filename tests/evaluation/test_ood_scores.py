"""Each out-of-scope score against a hand computation on a tiny feature set, the threshold rules and the
metrics (AUROC as a pair count, FPR@95 by hand), and the detector's save/load round trip."""

from __future__ import annotations

import math
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from growthcurve.evaluation.ood import (
    auroc,
    class_means,
    energy_score,
    fit_detector,
    fpr_at_recall,
    knn_score,
    load_detector,
    mahalanobis_score,
    msp_score,
    normalise,
    ood_report,
    recall_threshold,
    shared_precision,
    youden_threshold,
)

LOGITS = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [5.0, 5.0, -3.0]])
# two classes in 2-D, three rows each
FEATS = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.5], [-1.0, 2.0], [0.0, 3.0], [-2.0, 2.5]])
Y = np.array([0, 0, 0, 1, 1, 1])


def test_msp_and_energy_by_hand() -> None:
    for row, got_msp, got_energy in zip(LOGITS, msp_score(LOGITS), energy_score(LOGITS), strict=True):
        exps = [math.exp(v) for v in row]
        assert got_msp == pytest.approx(-max(exps) / sum(exps), abs=1e-12)
        assert got_energy == pytest.approx(-math.log(sum(exps)), abs=1e-12)
    # the flat row is the least confident: highest MSP score; T=2 energy is -2 log sum exp(z/2)
    assert np.argmax(msp_score(LOGITS)) == 1
    assert energy_score(LOGITS, 2.0)[0] == pytest.approx(-2 * math.log(sum(math.exp(v / 2) for v in LOGITS[0])))


def test_mahalanobis_by_hand() -> None:
    means, present = class_means(FEATS, Y, 3)  # class 2 has no rows: no mean
    assert present.tolist() == [True, True, False]
    mu = [FEATS[np.equal(Y, c)].mean(axis=0) for c in (0, 1)]
    np.testing.assert_allclose(means, np.array(mu))
    # shrinkage 0: the maximum-likelihood covariance of the class-centred rows, written out
    centred = [FEATS[i] - mu[Y[i]] for i in range(len(Y))]
    cov = [[sum(c[a] * c[b] for c in centred) / len(centred) for b in range(2)] for a in range(2)]
    det = cov[0][0] * cov[1][1] - cov[0][1] * cov[1][0]
    inv = [[cov[1][1] / det, -cov[0][1] / det], [-cov[1][0] / det, cov[0][0] / det]]
    precision = shared_precision(FEATS, Y, means, present, shrinkage=0.0)
    np.testing.assert_allclose(precision, np.array(inv), rtol=1e-9)
    queries = np.array([[2.0, 0.5], [10.0, -10.0], [-1.0, 2.5]])
    for q, got in zip(queries, mahalanobis_score(queries, means, precision), strict=True):
        d2 = []
        for m in mu:
            v = q - m
            d2.append(sum(v[a] * inv[a][b] * v[b] for a, b in product(range(2), range(2))))
        assert got == pytest.approx(min(d2), rel=1e-9)
    # Ledoit-Wolf (the default) shrinks towards a scaled identity: still a valid precision, far point still far
    lw = shared_precision(FEATS, Y, means, present)
    assert np.all(np.linalg.eigvalsh(lw) > 0)
    s = mahalanobis_score(queries, means, lw)
    assert s[1] > 10 * max(s[0], s[2])


def test_knn_by_hand() -> None:
    bank = normalise(FEATS)
    queries = np.array([[1.0, 0.1], [-0.5, 3.0], [0.0, -1.0]])
    for k in (1, 2, 4):
        got = knn_score(queries, bank, k)
        for q, g in zip(queries, got, strict=True):
            qn = q / np.linalg.norm(q)
            dists = sorted(float(np.linalg.norm(qn - b)) for b in bank)
            assert g == pytest.approx(dists[k - 1], abs=1e-5)
    assert knn_score(queries, bank, 100).shape == (3,)  # k beyond the bank: its farthest row


def test_auroc_fpr_and_thresholds_by_hand() -> None:
    inside = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    outside = np.array([0.35, 0.8, 1.0])
    pairs = [(a, b) for a in inside for b in outside]
    by_count = (sum(b > a for a, b in pairs) + 0.5 * sum(b == a for a, b in pairs)) / len(pairs)
    assert auroc(inside, outside) == pytest.approx(by_count)
    # answering 80% of in-scope rows needs the threshold 0.4: out-of-scope 0.35 slips through -> FPR 1/3
    assert recall_threshold(inside, 0.8) == 0.4
    assert fpr_at_recall(inside, outside, 0.8) == pytest.approx(1 / 3)
    # 95% of five rows needs all five (threshold 0.9): 0.35 and 0.8 are accepted
    assert fpr_at_recall(inside, outside, 0.95) == pytest.approx(2 / 3)
    t = youden_threshold(inside, outside)  # J = recall_in - accepted_out is best at 0.3 (0.6 - 0) or 0.4
    recall_in, accepted = (inside <= t).mean(), (outside <= t).mean()
    assert recall_in - accepted == pytest.approx(max((inside <= c).mean() - (outside <= c).mean() for c in inside))
    rep = ood_report(inside, outside, 0.4, np.array([1, 1, 0, 1, 1], dtype=bool))
    assert rep["oos_recall"] == pytest.approx(2 / 3) and rep["in_scope_answered"] == pytest.approx(0.8)
    assert rep["in_scope_answered_accuracy"] == pytest.approx(3 / 4)


def test_fit_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    y = rng.integers(0, 2, 200)
    train = centres[y] + rng.normal(size=(200, 3))
    dev_y = rng.integers(0, 2, 100)
    dev = centres[dev_y] + rng.normal(size=(100, 3))
    dev_logits = dev @ centres.T
    det = fit_detector(train, y, 2, dev_logits, dev, in_scope_recall=0.9, k=5)
    assert det.detector == "mahalanobis" and set(det.thresholds) == {"msp", "energy", "mahalanobis", "knn"}
    for name, t in det.thresholds.items():  # each threshold answers 90% of the in-scope dev rows
        assert (det.score(dev_logits, dev, name) <= t).mean() >= 0.9
    det.save(tmp_path)
    back = load_detector(tmp_path)
    assert back is not None and back.detector == det.detector and back.threshold == det.threshold
    far = np.array([[0.0, 0.0, 9.0]])
    assert back.verdict(far @ centres.T, far).flags.tolist() == [True]
    assert load_detector(tmp_path / "nothing-here") is None
    # with out-of-scope dev rows, auto picks the best dev AUROC and each threshold maximises Youden's J
    oos = rng.normal(size=(60, 3)) + np.array([0.0, 0.0, 6.0])
    det2 = fit_detector(train, y, 2, dev_logits, dev, oos @ centres.T, oos)
    best = max(det2.info["dev_auroc"], key=det2.info["dev_auroc"].get)
    assert det2.info["dev_oos_rows"] == 60 and det2.detector == best
    # no features (a model without a head module): msp and energy only, auto falls back to energy
    det3 = fit_detector(None, y, 2, dev_logits, None)
    assert det3.detector == "energy" and set(det3.thresholds) == {"msp", "energy"}
