"""Growth operations on BANKING77 with MiniLM-L6: hyperparameter search, 2-process training, retraining from
served feedback. One script, three parts, each side by side with its reference in the same invocation.

    python benchmarks/growth_ops.py --part tune|ddp|retrain|all [--quick] [--threads 2] [--work DIR]

- ``tune``: a stratified 2,000-row subset of train, a stratified 20% dev split of it, test untouched;
  `growthcurve tune` (Optuna, its default space for full fine-tuning, median pruning) vs the default config;
  both best configs are trained once more and scored on test.
- ``ddp``: the same subset, `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU, 1 thread each) at
  batch 16 per process vs 1 process (2 threads) at batch 32: equal global batch; test accuracy and per-sample
  training throughput of each.
- ``retrain``: 10 intents' training rows cut to 5% (seeded); a first model on the rest; it is served
  (`create_app` through FastAPI's TestClient: the real routes, so predictions and feedback land in the store
  as production writes them); 1,000 texts from the cut train rows (never the test split) are replayed as
  traffic with their true labels sent as corrected-label feedback; `retrain` from that feedback with
  rehearsal (0.3 of the original rows) and without; test accuracy on the 10 weak intents (gain) and on the
  other 67 (retention; target: drop <= 1 point).

Writes ``benchmarks/results/growth_ops.json`` (parts run earlier are kept, so parts can run separately). The
machine is shared while this runs: timings are noisy; run it under ``nice -n 15``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "growth_ops.json"
TARGETS = {"retrain_retention_drop_points_max": 1.0, "ddp_accuracy_diff_points_max": 0.5}
SUMMARY_KEYS = [
    "default_test_accuracy",
    "tuned_test_accuracy",
    "trials",
    "pruned_trials",
    "ddp_accuracy_diff_points",
    "retrain_retention_drop_points",
    "retrain_gain_points",
    "retrain_no_rehearsal_drop_points",
]


def shared_data() -> Path:
    """The BANKING77 folder (GROWTHCURVE_SHARED_DATA overrides /work/shared/data)."""
    return Path(os.environ.get("GROWTHCURVE_SHARED_DATA", "/work/shared/data")) / "banking77"


def machine() -> dict[str, Any]:
    """CPU model and the flags that decide the fast path (AMX/AVX-512 bf16 vs AVX2), torch build, threads."""
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


def load_banking() -> tuple[pd.DataFrame, pd.DataFrame]:
    src = shared_data()
    if not (src / "train.csv").is_file():
        sys.exit(f"error: {src / 'train.csv'} not found (set GROWTHCURVE_SHARED_DATA to the folder with banking77/)")
    return pd.read_csv(src / "train.csv"), pd.read_csv(src / "test.csv")


def stratified(df: pd.DataFrame, n: int | float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, sample) with ``n`` rows (or that fraction) drawn per class proportion."""
    from sklearn.model_selection import train_test_split

    rest, sample = train_test_split(df, test_size=n, stratify=df["category"], random_state=seed)
    return rest, sample


def minilm_sets(
    train: Path, dev: Path | None, test: Path, out: Path, epochs: float, max_steps: int | None
) -> list[str]:
    """The one training recipe every part uses (the assist benchmark's MiniLM settings)."""
    sets = [
        f"data.train={train}",
        f"data.test={test}",
        "data.label_column=category",
        f"output_dir={out}",
        "model.max_length=32",  # BANKING77 questions are short: 32 word pieces cover nearly all
        "train.batch_size=32",
        "train.learning_rate=3e-4",
        f"train.epochs={epochs}",
        "train.seed=0",
        "resume=false",
    ]
    if dev is not None:
        sets.append(f"data.dev={dev}")
    if max_steps:
        sets.append(f"train.max_steps={max_steps}")
    return sets


def finetune(sets: list[str], config: Path | None = None) -> dict[str, Any]:
    """One training run through the engine (``config`` then ``sets`` overrides); its dev/test scores."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    t0 = time.perf_counter()
    res = run_finetune(load_finetune_config(config, sets), progress=True)
    m = json.loads((Path(res.run_dir) / "metrics.json").read_text())
    return {
        "run_dir": str(res.run_dir),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "dev_accuracy": (m.get("dev") or {}).get("accuracy"),
        "test_accuracy": (m.get("test") or {}).get("accuracy"),
        "train_samples_per_s": m["train"]["samples_per_s"],
        "steps": m["train"]["steps"],
        "precision": m["train"]["precision"],
    }


def subset_2000(work: Path, quick: bool) -> dict[str, Path]:
    """The tune/ddp data: 2,000 stratified train rows (quick: 800), 20% of them as dev, the full test."""
    train, test = load_banking()
    _, sub = stratified(train, 800 if quick else 2000, 0)
    tr, dv = stratified(sub, 0.2, 0)
    work.mkdir(parents=True, exist_ok=True)
    paths = {"train": work / "train_2000.csv", "dev": work / "dev_2000.csv", "test": work / "test.csv"}
    tr.to_csv(paths["train"], index=False)
    dv.to_csv(paths["dev"], index=False)
    (test.groupby("category").head(8) if quick else test).to_csv(paths["test"], index=False)
    return paths


# ---------------------------------------------------------------------------------------------------- tune


def part_tune(work: Path, quick: bool, trials: int) -> dict[str, Any]:
    import yaml

    d = subset_2000(work, quick)
    epochs, max_steps = (1, 15) if quick else (3, None)
    default = finetune(minilm_sets(d["train"], d["dev"], d["test"], work / "tune-default", epochs, max_steps))
    cfg = {}
    for s in minilm_sets(d["train"], d["dev"], d["test"], work / "tune-unused", epochs, max_steps):
        key, value = s.split("=", 1)
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    cfg.pop("resume", None)
    cfg_file = work / "tune.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = work / "tune"
    cmd = [sys.executable, "-m", "growthcurve.cli", "tune", str(cfg_file), "--trials", str(trials), "--out", str(out)]
    cmd += ["--storage", f"sqlite:///{out / 'study.db'}", "--seed", "0"]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    tune_seconds = time.perf_counter() - t0
    summary = json.loads((out / "tune.json").read_text())
    tuned = finetune(
        [f"output_dir={work / 'tune-best'}", f"data.test={d['test']}", "resume=false"],
        config=out / "best.yaml",
    )
    return {
        "data": {
            "train_rows": len(pd.read_csv(d["train"])),
            "dev_rows": len(pd.read_csv(d["dev"])),
            "test": str(d["test"]),
        },
        "command": " ".join(cmd),
        "default": default,
        "tuned": tuned,
        "study": {k: summary.get(k) for k in ("trials", "complete", "pruned", "best_value", "best_params")},
        "tune_wall_seconds": round(tune_seconds, 1),
        "tuned_beats_default_dev": (tuned["dev_accuracy"] or 0) > (default["dev_accuracy"] or 0),
        "tuned_beats_default_test": (tuned["test_accuracy"] or 0) > (default["test_accuracy"] or 0),
    }


# ----------------------------------------------------------------------------------------------------- ddp


def part_ddp(work: Path, quick: bool, threads: int) -> dict[str, Any]:
    d = subset_2000(work, quick)
    epochs, max_steps = (1, 12) if quick else (2, None)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    runs: dict[str, Any] = {}
    for name, procs, bs in (("one_process", 1, 32), ("two_processes", 2, 16)):
        out = work / f"ddp-{name}"
        sets = minilm_sets(d["train"], d["dev"], d["test"], out, epochs, max_steps)
        sets = [s if not s.startswith("train.batch_size=") else f"train.batch_size={bs}" for s in sets]
        # lazy sparse Adam on the embedding table is single-process only: off in both, so the process count is
        # the only difference (with it the 1-process run would use another optimiser on 30k rows)
        sets.append("train.sparse_embeddings=off")
        args = ["-m", "growthcurve.cli", "finetune", "-q", *(a for s in sets for a in ("-s", s))]
        if procs == 1:
            cmd = [sys.executable, *args]
            run_env = {**env, "OMP_NUM_THREADS": str(threads)}
        else:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
            cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
            cmd += ["--main_process_port", "0", *args]
            run_env = {**env, "OMP_NUM_THREADS": str(max(1, threads // 2))}
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=run_env)
        m = json.loads((out / "metrics.json").read_text())
        runs[name] = {
            "processes": procs,
            "batch_size_per_process": bs,
            "global_batch": bs * procs,
            "steps": m["train"]["steps"],
            "test_accuracy": m["test"]["accuracy"],
            "dev_accuracy": m["dev"].get("accuracy"),
            "train_samples_per_s": m["train"]["samples_per_s"],
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "precision": m["train"]["precision"],
            "command": " ".join(cmd[1:]),
        }
    one, two = runs["one_process"], runs["two_processes"]
    return {
        **runs,
        "accuracy_diff_points": round(100 * abs(two["test_accuracy"] - one["test_accuracy"]), 3),
        "throughput_ratio_two_vs_one": round(two["train_samples_per_s"] / one["train_samples_per_s"], 3),
    }


# ------------------------------------------------------------------------------------------------- retrain


def part_retrain(work: Path, quick: bool, replay: int, epochs_full: float) -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from tqdm.auto import tqdm

    from growthcurve.growth.retrain import retrain
    from growthcurve.serving import ServeSettings, create_app, load_handler

    train, test = load_banking()
    rng = np.random.default_rng(0)
    intents = sorted(train["category"].unique())
    if quick:  # a 12-intent slice keeps every step while training in seconds
        intents = sorted(rng.choice(intents, 12, replace=False).tolist())
        train = train[train["category"].isin(intents)]
        test = test[test["category"].isin(intents)].groupby("category").head(15)
    n_weak = 4 if quick else 10
    weak = sorted(rng.choice(intents, n_weak, replace=False).tolist())
    kept_parts, cut_parts = [], []
    for intent, rows in train.groupby("category"):
        if intent in weak:  # the gap a team discovers from its users: 5% of these intents' rows
            rows = rows.sample(frac=1.0, random_state=0)
            k = max(2, math.ceil(0.05 * len(rows)))
            kept_parts.append(rows.iloc[:k])
            cut_parts.append(rows.iloc[k:])
        else:
            kept_parts.append(rows)
    kept, cut = pd.concat(kept_parts), pd.concat(cut_parts)
    tr, dv = stratified(kept, 0.1, 0)
    work.mkdir(parents=True, exist_ok=True)
    files = {"train": work / "retrain_train.csv", "dev": work / "retrain_dev.csv", "test": work / "retrain_test.csv"}
    tr.to_csv(files["train"], index=False)
    dv.to_csv(files["dev"], index=False)
    test.to_csv(files["test"], index=False)
    epochs, max_steps = (2, 40) if quick else (epochs_full, None)
    sets = minilm_sets(files["train"], files["dev"], files["test"], work / "first", epochs, max_steps)
    if (work / "first" / "checkpoints" / "last.pt").is_file():  # an interrupted benchmark continues its first model
        sets = [s if s != "resume=false" else "resume=true" for s in sets]
    first = finetune(sets)
    run = Path(first["run_dir"])

    # ---- serve the first model and replay unseen train texts as traffic, the true labels as corrections
    store = work / "feedback.db"
    store.unlink(missing_ok=True)
    url = f"sqlite:///{store}"
    traffic = cut.sample(n=min(replay, len(cut)), random_state=0)
    texts, labels = traffic["text"].tolist(), traffic["category"].tolist()
    t0 = time.perf_counter()
    served_right = 0
    with TestClient(create_app([load_handler(run)], ServeSettings(max_items=64), url)) as client:
        bar = tqdm(total=len(texts), desc="replay", unit="text")
        for start in range(0, len(texts), 32):
            chunk = texts[start : start + 32]
            r = client.post("/predict", json={"text": chunk, "unit_id": f"user-{start}"})
            r.raise_for_status()
            for p, truth in zip(r.json()["predictions"], labels[start : start + 32], strict=True):
                served_right += p["label"] == truth
                fb = client.post("/feedback", json={"request_id": p["request_id"], "label": truth})
                fb.raise_for_status()
            bar.update(len(chunk))
        bar.close()
    replay_seconds = time.perf_counter() - t0

    # ---- retrain with and without rehearsal; groups scored from the per-label test counts
    variants: dict[str, Any] = {}
    for name, rehearsal in (("rehearsal", 0.3), ("no_rehearsal", 0.0)):
        t0 = time.perf_counter()
        res = retrain(run, url, work / f"retrain-{name}", rehearsal=rehearsal, holdout=0.0, progress=True)
        rep = res.report
        per = rep["per_label_test"]
        variants[name] = {
            "rehearsal_rows": rep["rehearsal"]["rows"],
            "train_rows": rep["train_rows"],
            "feedback": rep["feedback"],
            "weak": _group(per, weak),
            "other": _group(per, [i for i in intents if i not in weak]),
            "test_all": rep["retention"],
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "run_dir": str(res.run_dir),
            "registry_id": res.registry_id,
            "serve_command": res.serve_command,
        }
    with_r, without = variants["rehearsal"], variants["no_rehearsal"]
    return {
        "weak_intents": weak,
        "intents": len(intents),
        "first_model": first,
        "first_model_train_rows": len(tr),
        "cut_rows": len(cut),
        "replay": {
            "texts": len(texts),
            "served_accuracy": served_right / max(len(texts), 1),
            "seconds": round(replay_seconds, 1),
            "path": "serving.create_app via fastapi.testclient: POST /predict (32 texts) + POST /feedback {label}",
        },
        "epochs": epochs,  # the first model's; the retrains inherit its config
        "retrain": variants,
        "gain_points": round(100 * (with_r["weak"]["new"] - with_r["weak"]["old"]), 3),
        "retention_drop_points": round(100 * (with_r["other"]["old"] - with_r["other"]["new"]), 3),
        "no_rehearsal_drop_points": round(100 * (without["other"]["old"] - without["other"]["new"]), 3),
        "no_rehearsal_gain_points": round(100 * (without["weak"]["new"] - without["weak"]["old"]), 3),
    }


def _group(per_label: dict[str, dict[str, int]], names: list[str]) -> dict[str, float]:
    rows = [per_label[n] for n in names if n in per_label]
    n = sum(r["support"] for r in rows)
    return {
        "rows": n,
        "old": sum(r["old_correct"] for r in rows) / max(n, 1),
        "new": sum(r["new_correct"] for r in rows) / max(n, 1),
    }


# ---------------------------------------------------------------------------------------------------- main


def summarise(parts: dict[str, Any]) -> dict[str, Any]:
    tune, ddp, ret = parts.get("tune"), parts.get("ddp"), parts.get("retrain")
    s: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    if tune:
        s.update(
            default_test_accuracy=tune["default"]["test_accuracy"],
            tuned_test_accuracy=tune["tuned"]["test_accuracy"],
            trials=tune["study"]["trials"],
            pruned_trials=tune["study"]["pruned"],
        )
    if ddp:
        s["ddp_accuracy_diff_points"] = ddp["accuracy_diff_points"]
    if ret:
        s.update(
            retrain_retention_drop_points=ret["retention_drop_points"],
            retrain_gain_points=ret["gain_points"],
            retrain_no_rehearsal_drop_points=ret["no_rehearsal_drop_points"],
        )
        s["retention_target_hit"] = ret["retention_drop_points"] <= TARGETS["retrain_retention_drop_points_max"]
    if ddp:
        s["ddp_target_hit"] = ddp["accuracy_diff_points"] < TARGETS["ddp_accuracy_diff_points_max"]
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["tune", "ddp", "retrain", "all"], default="all")
    ap.add_argument("--quick", action="store_true", help="tiny smoke version (minutes): not for the numbers")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2: the machine is shared)")
    ap.add_argument("--trials", type=int, default=None, help="tune trials (default 8; quick 2)")
    ap.add_argument("--replay", type=int, default=None, help="texts replayed as traffic (default 1000; quick 120)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-growth-ops", help="scratch folder")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--epochs", type=float, default=3, help="retrain part: epochs of the first model and retrains")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("GROWTHCURVE_DB_URL", f"sqlite:///{args.work / 'registry.db'}")  # not the repo's store
    args.work.mkdir(parents=True, exist_ok=True)
    mach = machine()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    parts: dict[str, Any] = dict(previous.get("parts", {})) if previous.get("quick") == args.quick else {}
    todo = ["tune", "ddp", "retrain"] if args.part == "all" else [args.part]
    for part in todo:
        t0 = time.perf_counter()
        work = args.work / ("quick" if args.quick else "full") / part
        if part == "tune":
            parts[part] = part_tune(work, args.quick, args.trials or (2 if args.quick else 8))
        elif part == "ddp":
            parts[part] = part_ddp(work, args.quick, args.threads)
        else:
            parts[part] = part_retrain(work, args.quick, args.replay or (120 if args.quick else 1000), args.epochs)
        parts[part]["part_wall_seconds"] = round(time.perf_counter() - t0, 1)
        parts[part]["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        parts[part]["machine"] = {**mach, "load_average_at_end": os.getloadavg()}
    summary = summarise(parts)
    result = {
        "benchmark": "growth_ops",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "machine": mach,
        "targets": TARGETS,
        "parts": parts,
        "summary": summary,
        "notes": [
            "The machine was shared with 3-4 other engineers' jobs (see load_average per part): wall times and "
            "throughputs are noisy; accuracies are not (seeded).",
            "ddp throughput: with other jobs on both cores, a 2-thread process loses far more to contention "
            "(its OpenMP threads wait for each other) than two 1-thread processes; the ratio is only meaningful "
            "from a quiet machine.",
            "A part not run in this invocation keeps its earlier result (its own date and machine); a summary "
            "key is null when its part has never run.",
        ],
    }
    from growthcurve.atomic import write_json

    write_json(args.out, result)
    print(json.dumps(summary, indent=2))
    for k in SUMMARY_KEYS:
        print(f"{k}: {summary.get(k)}")
    if summary.get("ddp_accuracy_diff_points") is not None and "ddp" in parts:
        print(f"ddp throughput two/one processes: {parts['ddp']['throughput_ratio_two_vs_one']}x")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
