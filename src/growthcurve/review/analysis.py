"""What the reviewed labels say: agreement between reviewers (Cohen's and Fleiss' kappa, per label and overall,
disagreements to adjudicate) and the served model's accuracy (the random stream's Wilson interval and the
importance-weighted estimate over every stream; see ``estimate.py`` for the method)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from growthcurve.review.estimate import Interval, random_stream_interval, union_inclusion, weighted_interval
from growthcurve.review.queue import REJECT, ItemState, ReviewError, Snapshot


def _nan_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


@dataclass
class Agreement:
    """Kappas over the items two reviewers answered, and the items they disagree on."""

    pairs: int
    observed: float | None  # share of pairs that agree
    cohen: float | None
    fleiss: float | None
    per_label: dict[str, dict[str, Any]]  # label -> {"kappa", "n"} (one-vs-rest Cohen's kappa)
    disagreements: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _answer_value(a: Any) -> str:
    return a.label if a.action == "label" else REJECT


def agreement(snap: Snapshot) -> Agreement:
    """Cohen's kappa (scikit-learn) of the first two reviewers' answers on each doubly-reviewed item, Fleiss'
    kappa (statsmodels) on the same table, one-vs-rest Cohen's kappa per label, and the open disagreements."""
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    first, second, dis = [], [], []
    for it in sorted(snap.items.values(), key=lambda x: x.id):
        dec = it.decided()
        if len(dec) < 2:
            continue
        a, b = _answer_value(dec[0]), _answer_value(dec[1])
        first.append(a)
        second.append(b)
        if a != b:
            adj = it.adjudication
            dis.append(
                {
                    "item_id": it.id,
                    "text": it.text,
                    "answers": {dec[0].reviewer: a, dec[1].reviewer: b},
                    "adjudicated": None if adj is None else (adj.label or REJECT),
                }
            )
    n = len(first)
    if n == 0:
        return Agreement(0, None, None, None, {}, dis)
    cats = sorted(set(first) | set(second))
    observed = float(np.mean([x == y for x, y in zip(first, second, strict=True)]))
    with np.errstate(divide="ignore", invalid="ignore"):
        cohen = float(cohen_kappa_score(first, second)) if len(cats) > 1 else float("nan")
        index = {c: i for i, c in enumerate(cats)}
        table, _ = aggregate_raters(np.asarray([[index[x], index[y]] for x, y in zip(first, second, strict=True)]))
        fleiss = float(fleiss_kappa(table, method="fleiss")) if len(cats) > 1 else float("nan")
        per_label = {}
        for c in cats:
            x = [v == c for v in first]
            y = [v == c for v in second]
            k = cohen_kappa_score(x, y) if len(set(x) | set(y)) > 1 else float("nan")
            per_label[c] = {"kappa": _nan_none(float(k)), "n": int(sum(x) + sum(y))}
    return Agreement(n, round(observed, 4), _nan_none(cohen), _nan_none(fleiss), per_label, dis)


@dataclass
class Estimate:
    """The served version's accuracy from reviewed traffic."""

    version: str
    requests: int  # the version's requests in the queue's pool
    items: int
    reviewed: int  # items with a decided outcome
    out_of_scope: int
    random: Interval | None
    weighted: Interval | None
    streams: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "requests": self.requests,
            "items": self.items,
            "reviewed": self.reviewed,
            "out_of_scope": self.out_of_scope,
            "random": None if self.random is None else self.random.as_dict(),
            "weighted": None if self.weighted is None else self.weighted.as_dict(),
            "streams": self.streams,
        }


def _correct_share(it: ItemState, version: str, label: str) -> float:
    """Share of the version's requests for this item whose served label is ``label``."""
    v = it.versions.get(version) or {}
    n = v.get("n", 0)
    return float(v.get("served", {}).get(label, 0)) / n if n else 0.0


def versions_of(snap: Snapshot) -> list[str]:
    """Model versions with requests in the queue, most requests first."""
    counts: dict[str, int] = {}
    for it in snap.items.values():
        for v, d in it.versions.items():
            counts[v] = counts.get(v, 0) + int(d.get("n", 0))
    return sorted(counts, key=lambda v: -counts[v])


def estimate(snap: Snapshot, version: str | None = None, alpha: float = 0.05) -> Estimate:
    """Accuracy of ``version`` (default: the queue's run's version, else the one with most requests) on the
    queue's traffic: Wilson on the random stream's answered prefix, Hájek over every stream's prefix."""
    versions = versions_of(snap)
    if version is None:
        queued = snap.queue.model_version
        version = queued if queued in versions else (versions[0] if versions else None)
    if version is None or version not in versions:
        raise ReviewError(
            f"queue '{snap.queue.name}' holds no request of model version {version} "
            f"(versions: {', '.join(versions) or 'none: only uploaded items'})",
            404,
            "unknown_version",
        )
    ver: str = version  # narrowed once, for the nested functions below
    outcome = {iid: it.outcome() for iid, it in snap.items.items()}
    decided = {iid: o for iid, o in outcome.items() if o is not None}
    prefixes: dict[str, list[int]] = {}
    taus: dict[str, float] = {}
    for st, slots in snap.streams.items():
        taken = []
        tau = math.inf
        for iid, key in slots:
            if outcome[iid] is None:
                tau = key
                break
            taken.append(iid)
        else:
            nk = snap.queue.next_keys.get(st)
            tau = math.inf if nk is None else float(nk)
        prefixes[st], taus[st] = taken, tau

    def pi(it: ItemState, st: str) -> float:
        w = it.weights.get(st)
        return 0.0 if w is None else min(1.0, w * taus[st])

    def in_domain(iid: int) -> bool:
        it = snap.items[iid]
        return (it.versions.get(ver) or {}).get("n", 0) > 0 and outcome[iid] is not None

    stream_info: dict[str, dict[str, Any]] = {}
    for st, taken in prefixes.items():
        stream_info[st] = {"answered_prefix": len(taken), "listed": len(snap.streams[st])}
    # the random stream: a uniform sample of requests; its in-scope items of this version
    rnd = None
    if "random" in prefixes:
        its = [snap.items[i] for i in prefixes["random"] if in_domain(i) and decided[i][0] == "label"]
        ys = [_correct_share(it, ver, str(decided[it.id][1])) for it in its]
        m = np.asarray([float(it.versions[ver]["n"]) for it in its])
        p = np.asarray([pi(it, "random") for it in its])
        ratio = m / p if its else np.ones(0)
        if its and np.allclose(ratio, ratio[0], rtol=1e-9):
            rnd = random_stream_interval(ys, alpha)  # self-weighting: the version served every sampled request
        elif its:
            # the random stream samples requests of every version: for one version of an A/B pool, weight back
            rnd = weighted_interval(ys, m, p, alpha, method="hajek-wilson (random stream)")
    union = sorted({i for taken in prefixes.values() for i in taken if in_domain(i)})
    inscope = [i for i in union if decided[i][0] == "label"]
    weighted = None
    if inscope:
        its = [snap.items[i] for i in inscope]
        p = union_inclusion([np.asarray([pi(it, st) for it in its]) for st in prefixes])
        y = [_correct_share(it, ver, str(decided[it.id][1])) for it in its]
        mw = [float(it.versions[ver]["n"]) for it in its]
        weighted = weighted_interval(y, mw, p, alpha)
    pool = [it for it in snap.items.values() if (it.versions.get(version) or {}).get("n", 0) > 0]
    return Estimate(
        version,
        int(sum(it.versions[version]["n"] for it in pool)),
        len(pool),
        sum(1 for it in pool if outcome[it.id] is not None),
        sum(1 for it in pool if it.id in decided and decided[it.id][0] == "reject"),
        rnd,
        weighted,
        stream_info,
    )


def offline_accuracy(run: str | None) -> float | None:
    """The served run's test accuracy from its metrics.json (None when unknown)."""
    if not run:
        return None
    import json
    from pathlib import Path

    f = Path(run) / "metrics.json"
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    acc = (m.get("test") or {}).get("accuracy")
    return float(acc) if isinstance(acc, int | float) else None


__all__ = ["Agreement", "Estimate", "agreement", "estimate", "offline_accuracy", "versions_of"]
