"""Out-of-scope detection, explanations and the assistant's handoff on BANKING77-OOS (issue #26).

    python benchmarks/ood.py [--run RUN] [--max-steps 740] [--explain-texts 200] [--threads 2]

One invocation, one fine-tuned run for every detector: MiniLM-L6 is fine-tuned through the engine on the 50
in-scope intents (``train.csv``, dev ``validation.csv``; ``--max-steps`` optimiser steps at batch 32, lr 3e-4)
unless ``--run`` names such a run. Its detector is fitted as every run fits it (class statistics on train,
threshold on the in-scope dev rows at 95% in-scope recall; no out-of-scope data is used to fit anything).
Then, for each detector (maximum softmax probability, energy, Mahalanobis, kNN): in-scope test accuracy and
the answered share and accuracy at its threshold, AUROC and FPR@95 against the in-domain out-of-scope test
split (``id_oos_test.csv``, the 27 held-out banking intents) and against the general out-of-scope split
(``ood_oos_validation.csv``, CLINC150), and the out-of-scope recall of each at the threshold. The assistant
(`fit_assistant` on the same run, FAQ = the 50 in-scope intents of `benchmarks/data/banking77_faq.csv`) is
scored end to end: handoff rate on in-scope test, ID-OOS and general out-of-scope questions. Explanation
faithfulness: Integrated Gradients on ``--explain-texts`` seeded test texts, AOPC of deleting the top 1..3
attributed words against 3 x 5 random deletions. Writes ``benchmarks/results/ood.json``.

The reference the issue names is MSP in the same run: the default detector's AUROC on ID-OOS is compared
with MSP's (difference and ratio printed).
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
FAQ = ROOT / "benchmarks" / "data" / "banking77_faq.csv"
TARGETS = {
    "auroc_id_oos_gain_over_msp_min": 0.05,
    "general_oos_recall_min": 0.90,
    "in_scope_answered_accuracy_min": 0.97,
    "aopc_better_than_random_share_min": 0.95,
}


def shared_data() -> Path:
    """The BANKING77-OOS folder (GROWTHCURVE_SHARED_DATA overrides /work/shared/data)."""
    return Path(os.environ.get("GROWTHCURVE_SHARED_DATA", "/work/shared/data")) / "banking77_oos"


def train_run(out: Path, max_steps: int, epochs: float, threads: int) -> dict[str, Any]:
    """Fine-tune MiniLM on the in-scope intents through the engine (its detector is fitted at the end)."""
    import torch

    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.hardware import resolve_precision

    torch.set_num_threads(threads)
    src = shared_data()
    sets = [
        f"data.train={src / 'train.csv'}",
        f"data.dev={src / 'validation.csv'}",
        f"data.test={src / 'test.csv'}",
        f"output_dir={out}",
        "model.name_or_path=minilm",
        "model.max_length=64",
        f"train.epochs={epochs}",
        f"train.max_steps={max_steps}",
        "train.batch_size=32",
        "train.learning_rate=3e-4",
        f"train.precision={resolve_precision('auto', torch.device('cpu'))}",
        "train.seed=0",
    ]
    t0 = time.perf_counter()
    res = run_finetune(load_finetune_config(None, sets), progress=True)
    return {"run_dir": str(res.run_dir), "seconds": round(time.perf_counter() - t0, 1), "settings": sets}


def texts_of(name: str) -> tuple[list[str], list[str]]:
    df = pd.read_csv(shared_data() / name, keep_default_na=False)
    df = df[df["text"].str.strip().ne("") & df["label"].str.strip().ne("")]  # as the engine's reader skips them
    return df["text"].tolist(), df["label"].tolist()


def detector_rows(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every detector of the run on in-scope test, ID-OOS test and general out-of-scope questions."""
    from growthcurve.evaluation.ood import load_detector, ood_report
    from growthcurve.training.ood import run_scorer
    from growthcurve.training.runfolder import load_run

    run = load_run(run_dir)
    det = load_detector(run.path)
    if det is None:
        sys.exit(f"error: {run_dir} has no out-of-scope detector; run `growthcurve ood fit {run_dir}`")
    scorer = run_scorer(run, 128)
    from growthcurve.data.text import TextExamples

    def examples(texts: list[str]) -> TextExamples:
        return TextExamples(texts, None, np.zeros(len(texts), dtype=np.int64))

    test_texts, test_labels = texts_of("test.csv")
    y = np.array([run.labels.index(lab) for lab in test_labels])
    logits, feats = scorer(examples(test_texts))
    correct = logits.argmax(1) == y
    id_l, id_f = scorer(examples(texts_of("id_oos_test.csv")[0]))
    gen_l, gen_f = scorer(examples(texts_of("ood_oos_validation.csv")[0]))
    rows = []
    for name in det.thresholds:
        t = det.thresholds[name]
        ins = det.score(logits, feats, name)
        a = ood_report(ins, det.score(id_l, id_f, name), t, correct)
        b = ood_report(ins, det.score(gen_l, gen_f, name), t, correct)
        rows.append(
            {
                "detector": name,
                "default": name == det.detector,
                "threshold": t,
                "in_scope_test_accuracy": a["in_scope_accuracy"],
                "in_scope_answered": a["in_scope_answered"],
                "in_scope_answered_accuracy": a["in_scope_answered_accuracy"],
                "auroc_id_oos": a["auroc"],
                "fpr95_id_oos": a["fpr95"],
                "id_oos_recall": a["oos_recall"],
                "auroc_general_oos": b["auroc"],
                "fpr95_general_oos": b["fpr95"],
                "general_oos_recall": b["oos_recall"],
            }
        )
    info = {"detector": det.detector, "threshold": det.threshold, **det.info}
    return rows, info


def assist_handoffs(run_dir: Path, work: Path) -> dict[str, Any]:
    """The assistant on the same run: handoff rates (and why) on in-scope, ID-OOS and general OOS questions."""
    from growthcurve.apps.assist import AssistRun, fit_assistant, load_assist_config

    src = shared_data()
    labels = set(pd.read_csv(src / "train.csv")["label"].astype(str))
    faq = pd.read_csv(FAQ)
    faq = faq[faq["intent"].isin(labels)]
    work.mkdir(parents=True, exist_ok=True)
    faq_path = work / "faq_in_scope.csv"
    faq.to_csv(faq_path, index=False)
    cfg = load_assist_config(
        None,
        [
            f"data.train={src / 'train.csv'}",
            f"data.dev={src / 'validation.csv'}",
            f"faq={faq_path}",
            f"intent.run={run_dir}",
            "answer.out_of_scope=intent",
            f"output_dir={work / 'assist'}",
            "name=banking77-oos",
        ],
    )
    fit_assistant(cfg, overwrite=True, progress=False, log=print)
    run = AssistRun(work / "assist")
    out: dict[str, Any] = {"faq_entries": len(faq), "threshold": run.threshold}
    for key, name in (("in_scope_test", "test.csv"), ("id_oos_test", "id_oos_test.csv"),
                      ("general_oos", "ood_oos_validation.csv")):  # fmt: skip
        texts = texts_of(name)[0]
        res = []
        for start in range(0, len(texts), 256):
            res += run.answer(texts[start : start + 256])
        reasons: dict[str, int] = {}
        for r in res:
            if r["outcome"] == "handoff":
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        out[key] = {
            "rows": len(res),
            "handoff_rate": float(np.mean([r["outcome"] == "handoff" for r in res])),
            "out_of_scope_handoff_rate": float(np.mean([r["reason"] == "out_of_scope" for r in res])),
            "reasons": reasons,
        }
    return out


def faithfulness(run_dir: Path, n: int, seed: int) -> dict[str, Any]:
    """AOPC of Integrated Gradients vs random deletions on ``n`` seeded in-scope test texts."""
    from growthcurve.training.explain import aopc
    from growthcurve.training.inference import Predictor

    pred = Predictor(run_dir, batch_size=128)
    texts = texts_of("test.csv")[0]
    rng = np.random.default_rng(seed)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]
    t0 = time.perf_counter()
    answers = pred.answer(sample, explain=True)
    ig_seconds = time.perf_counter() - t0
    exps = [a["explanation"] for a in answers]
    top, rand = aopc(pred.predict_proba, sample, exps, pred.labels, k_max=3, n_random=5, seed=seed)
    words = np.array([len(e["tokens"]) for e in exps])
    several = words >= 2  # with one word, deleting the top word and a random one is the same deletion
    deltas = np.array([abs(e["delta"]) for e in exps])
    return {
        "texts": len(sample),
        "texts_with_2_or_more_words": int(several.sum()),
        "better_than_random_share": float(np.mean(top[several] > rand[several])),
        "better_than_random_share_all_texts": float(np.mean(top > rand)),
        "aopc_top_mean": float(top.mean()),
        "aopc_random_mean": float(rand.mean()),
        "k_max": 3,
        "random_draws": 5,
        "ig_steps": exps[0]["n_steps"] if exps else None,
        "convergence_delta_median": float(np.median(deltas)),
        "convergence_delta_p95": float(np.quantile(deltas, 0.95)),
        "ig_seconds": round(ig_seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="reuse a MiniLM run trained on BANKING77-OOS train.csv (with its detector)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-ood", help="runs go here")
    ap.add_argument("--max-steps", type=int, default=740, help="optimiser steps at batch 32 (185 = one epoch)")
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--explain-texts", type=int, default=200, help="test texts explained for the AOPC check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ood.json")
    args = ap.parse_args()
    if not (shared_data() / "train.csv").is_file():
        sys.exit(f"error: {shared_data()} has no train.csv (set GROWTHCURVE_SHARED_DATA to the folder above it)")
    import torch

    from growthcurve.atomic import write_json
    from growthcurve.cpuinfo import cpu_family, cpu_flags, cpu_model

    torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.UTC)
    load = {"start": list(os.getloadavg())}
    if args.run:
        trained = {"run_dir": args.run, "seconds": None, "settings": "reused with --run"}
    else:
        trained = train_run(args.work / "minilm", args.max_steps, args.epochs, args.threads)
    run_dir = Path(trained["run_dir"])
    load["after_training"] = list(os.getloadavg())
    rows, det_info = detector_rows(run_dir)
    load["after_detectors"] = list(os.getloadavg())
    assist = assist_handoffs(run_dir, args.work)
    load["after_assist"] = list(os.getloadavg())
    faith = faithfulness(run_dir, args.explain_texts, 0)
    load["end"] = list(os.getloadavg())
    by = {r["detector"]: r for r in rows}
    default, msp = by[det_info["detector"]], by["msp"]
    summary = {
        "ood_detector": det_info["detector"],
        "auroc_id_oos": default["auroc_id_oos"],
        "auroc_id_oos_msp": msp["auroc_id_oos"],
        "auroc_general_oos": default["auroc_general_oos"],
        "fpr95_id_oos": default["fpr95_id_oos"],
        "general_oos_recall": default["general_oos_recall"],
        "in_scope_answered_accuracy": default["in_scope_answered_accuracy"],
        "assist_oos_handoff_rate": assist["general_oos"]["handoff_rate"],
        "aopc_better_than_random_share": faith["better_than_random_share"],
    }
    met = {
        "auroc_id_oos_gain_over_msp": summary["auroc_id_oos"] - summary["auroc_id_oos_msp"]
        >= TARGETS["auroc_id_oos_gain_over_msp_min"],
        "general_oos_recall": summary["general_oos_recall"] >= TARGETS["general_oos_recall_min"],
        "in_scope_answered_accuracy": (summary["in_scope_answered_accuracy"] or 0)
        >= TARGETS["in_scope_answered_accuracy_min"],
        "aopc_better_than_random_share": summary["aopc_better_than_random_share"]
        >= TARGETS["aopc_better_than_random_share_min"],
    }
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    doc = {
        "benchmark": "ood",
        "date": started.isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_family": cpu_family(),
            "cpu_flags": cpu_flags(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "torch": torch.__version__,
        "torch_threads": args.threads,
        "data": {
            "dataset": "BANKING77-OOS (Zhang et al. 2021), /work/shared/data/banking77_oos",
            "train_rows": len(texts_of("train.csv")[0]),
            "dev_rows": len(texts_of("validation.csv")[0]),
            "in_scope_test_rows": len(texts_of("test.csv")[0]),
            "id_oos_test_rows": len(texts_of("id_oos_test.csv")[0]),
            "general_oos_rows": len(texts_of("ood_oos_validation.csv")[0]),
            "note": "no out-of-scope rows fit anything: detectors on train, thresholds on in-scope dev",
        },
        "training": {
            **trained,
            "steps": metrics.get("train", {}).get("steps"),
            "train_seconds": metrics.get("train", {}).get("seconds"),
            "precision": metrics.get("train", {}).get("precision"),
            "dev": metrics.get("dev"),
            "test": metrics.get("test"),
        },
        "detector": det_info,
        "rows": rows,
        "assist": assist,
        "explanations": faith,
        "targets": TARGETS,
        "targets_met": met,
        "summary": summary,
        "load_average": load,
    }
    write_json(args.out, doc)
    _print(rows, summary, met, faith, assist)
    print(f"wrote {args.out}")


def _print(
    rows: list[dict[str, Any]], s: dict[str, Any], met: dict[str, bool], faith: dict[str, Any], assist: dict[str, Any]
) -> None:
    """One line per detector (80 columns), the default against MSP, each target as hit or MISS."""
    print(f"{'detector':<12}{'AUROC id':>9}{'FPR95 id':>9}{'AUROC gen':>10}{'rec id':>8}{'rec gen':>8}"
          f"{'answered':>9}{'ans acc':>8}")  # fmt: skip
    for r in rows:
        name = r["detector"] + ("*" if r["default"] else "")
        acc = r["in_scope_answered_accuracy"]
        print(f"{name:<12}{r['auroc_id_oos']:>9.4f}{r['fpr95_id_oos']:>9.4f}{r['auroc_general_oos']:>10.4f}"
              f"{r['id_oos_recall']:>8.3f}{r['general_oos_recall']:>8.3f}{r['in_scope_answered']:>9.3f}"
              f"{(acc if acc is not None else float('nan')):>8.3f}")  # fmt: skip
    gain, ratio = s["auroc_id_oos"] - s["auroc_id_oos_msp"], s["auroc_id_oos"] / s["auroc_id_oos_msp"]
    print(f"default {s['ood_detector']} vs MSP on ID-OOS: AUROC {s['auroc_id_oos']:.4f} vs "
          f"{s['auroc_id_oos_msp']:.4f} ({gain:+.4f}, ratio {ratio:.3f})")  # fmt: skip
    for key, ok in met.items():
        print(f"target {key}: {'hit' if ok else 'MISS'}")
    rates = [assist[k]["handoff_rate"] for k in ("in_scope_test", "id_oos_test", "general_oos")]
    print(f"assist handoff: in-scope {rates[0]:.3f}, ID-OOS {rates[1]:.3f}, general {rates[2]:.3f}")
    print(f"AOPC: top {faith['aopc_top_mean']:.3f} vs random {faith['aopc_random_mean']:.3f}; better than random in "
          f"{faith['better_than_random_share']:.1%} of {faith['texts_with_2_or_more_words']} texts")  # fmt: skip


if __name__ == "__main__":
    main()
