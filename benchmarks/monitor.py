"""Sentiment-monitor benchmark: MiniLM vs TF-IDF on Twitter Financial News Sentiment, topic + sentiment on
online_shopping_7_cats beside TF-IDF, and the surge alerts on replays of the validation stream (injected
negative surge of known size and start: detection delay; clean replays: false alerts per 1,000 windows),
plus `monitor run` throughput with the fine-tuned MiniLM in the loop.

Run: .venv/bin/python benchmarks/monitor.py [--epochs 4]   (writes benchmarks/results/monitor.json)
Data: $GROWTHCURVE_SHARED_DATA (default ../shared/data): twitter_financial_news_sentiment, online_shopping_7_cats.
The MiniLM budget: `--epochs` over the train split (dev = 5% of it, best epoch by dev macro-F1), or
`--max-steps` optimiser steps of batch 32 when smaller. The alert replays are run for every `--alphas`
value on the same replay files (the sweep that picks the detector's default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rich.console import Console
from rich.table import Table
from sklearn.metrics import accuracy_score, f1_score
from tqdm import tqdm

from growthcurve.apps.monitor.detect import DetectorSettings
from growthcurve.apps.monitor.model import RunClassifier, fit_monitor
from growthcurve.apps.monitor.pipeline import StreamMonitor, list_alerts
from growthcurve.atomic import write_json
from growthcurve.config import load_finetune_config
from growthcurve.store import init_db
from growthcurve.training.dispatch import run_finetune
from growthcurve.training.inference import evaluate_run

console = Console()
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GROWTHCURVE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TWITTER = SHARED / "twitter_financial_news_sentiment"
SHOPPING = SHARED / "online_shopping_7_cats"
RESULTS = ROOT / "benchmarks" / "results" / "monitor.json"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def machine() -> dict[str, Any]:
    """CPU model and the flags that decide the fast path (AMX/AVX-512 bf16 vs AVX2), torch build, threads."""
    from growthcurve.cpuinfo import cpu_family, cpu_flags, cpu_model

    return {
        "cpu_model": cpu_model(),
        "cpu_family": cpu_family(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def tfidf(train: Path, label: str, valid: Path, out: Path) -> dict[str, Any]:
    """The practitioner's first try: the engine's TF-IDF + logistic regression, scored on ``valid``."""
    cfg = load_finetune_config(
        None, ["model.type=tfidf", f"data.train={train}", f"data.label_column={label}", f"output_dir={out}"]
    )
    run_finetune(cfg, progress=False)
    return evaluate_run(out, valid, progress=False)["metrics"]


class Cached:
    """The MiniLM's verdicts on the validation texts, looked up: replays then test the detector, not the CPU."""

    def __init__(self, negative: dict[str, bool]) -> None:
        self.negative = negative

    def classify(self, texts: list[str]) -> tuple[list[bool], list[str | None]]:
        return [self.negative[t] for t in texts], [None] * len(texts)


class Recording:
    """Wraps the real classifier and remembers each text's verdict (for the cached replays)."""

    def __init__(self, inner: RunClassifier) -> None:
        self.inner = inner
        self.seen: dict[str, bool] = {}
        self.labels: dict[str, str] = {}

    def classify(self, texts: list[str]) -> tuple[list[bool], list[str | None]]:
        rows = self.inner.predict(texts)
        self.seen.update((t, r["negative"]) for t, r in zip(texts, rows, strict=True))
        self.labels.update((t, r["label"]) for t, r in zip(texts, rows, strict=True))
        return [r["negative"] for r in rows], [r["topic"] for r in rows]


def write_replay(
    path: Path,
    rng: random.Random,
    bearish: list[str],
    other: list[str],
    windows: int,
    per_window: int,
    base_share: float,
    surge: tuple[int, int, float] | None,
) -> None:
    """``windows`` hourly windows of ``per_window`` validation texts drawn with replacement: Bearish with
    probability ``base_share``, or ``surge_share`` inside the surge windows ``start .. start + length - 1``."""
    with path.open("w", encoding="utf-8") as fh:
        for w in range(windows):
            q = surge[2] if surge and surge[0] <= w < surge[0] + surge[1] else base_share
            for j in range(per_window):
                text = rng.choice(bearish) if rng.random() < q else rng.choice(other)
                ts = START + dt.timedelta(hours=w, seconds=(j + 0.5) * 3600 / per_window)
                fh.write(json.dumps({"timestamp": ts.isoformat(), "text": text}) + "\n")


def replay_alerts(
    cached: Cached,
    eng: Any,
    surge_files: list[Path],
    clean_files: list[Path],
    alpha: float,
    start: int,
    length: int,
    max_scale: int = 2,
) -> dict[str, Any]:
    """Detection delay on the surge replays and false alerts on the clean ones, for one detector setting."""
    settings = DetectorSettings(alpha=alpha, max_scale=max_scale)
    delays, missed, pre_false, pre_windows = [], 0, 0, 0
    for r, p in enumerate(tqdm(surge_files, desc=f"surge replays a={alpha:g} k={max_scale}")):
        name = f"surge{r}-a{alpha:g}-k{max_scale}"
        StreamMonitor(cached, p, eng, name, settings, batch_size=256, log=lambda m: None).run()
        hours = sorted(
            int((a["window_start"] - START.replace(tzinfo=None)).total_seconds() // 3600)
            for a in list_alerts(eng, name, limit=1000)
        )
        pre_false += sum(h < start for h in hours)
        pre_windows += start
        hit = [h - start for h in hours if start <= h < start + length]
        if hit:
            delays.append(hit[0])
        else:
            missed += 1
    clean_alerts, clean_windows = 0, 0
    for r, p in enumerate(tqdm(clean_files, desc=f"clean replays a={alpha:g} k={max_scale}")):
        name = f"clean{r}-a{alpha:g}-k{max_scale}"
        StreamMonitor(cached, p, eng, name, settings, batch_size=256, log=lambda m: None).run()
        clean_alerts += len(list_alerts(eng, name, limit=1000))
        clean_windows += len({json.loads(line)["timestamp"][:13] for line in p.open(encoding="utf-8")})
    return {
        "alpha": alpha,
        "max_scale": max_scale,
        "detected": len(delays),
        "missed": missed,
        "mean_delay_windows": sum(delays) / len(delays) if delays else None,
        "max_delay_windows": max(delays) if delays else None,
        "clean_windows": clean_windows,
        "clean_alerts": clean_alerts,
        "false_alerts_per_1000": 1000 * clean_alerts / max(clean_windows, 1),
        "pre_surge_false_alerts_per_1000": 1000 * pre_false / max(pre_windows, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=4, help="MiniLM epochs over the train split")
    ap.add_argument("--max-steps", type=int, default=None, help="cap on MiniLM optimiser steps (batch 32)")
    ap.add_argument("--lr", type=float, default=1e-4, help="MiniLM learning rate")
    ap.add_argument("--alphas", default="0.01,0.005,0.002,0.001", help="detector alphas to sweep")
    ap.add_argument("--replays", type=int, default=40, help="surge replays and clean replays each")
    ap.add_argument("--windows", type=int, default=50, help="windows per replay")
    ap.add_argument("--per-window", type=int, default=60, help="texts per window")
    ap.add_argument("--minilm-dir", type=Path, help="monitor folder (reused if trained before)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    for d in (TWITTER, SHOPPING):
        if not d.is_dir():
            console.print(f"[red]error:[/] data folder {d} is missing (set GROWTHCURVE_SHARED_DATA)")
            return 2
    work = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    budget = f"{args.epochs:g} epochs" + (f", at most {args.max_steps} steps" if args.max_steps else "")
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "notes": "shared 2-core machine (3-6 engineers at once): timings are noisy. MiniLM budget: "
        f"{budget} of batch 32 over the 9,543 train texts (max_length 64, lr {args.lr:g}, bf16 where AMX); "
        "dev for model selection = 5% of train (best epoch by dev macro-F1), validation scored once "
        "(upstream uses validation as the test set).",
    }

    # 1. sentiment: MiniLM through `monitor fit` vs TF-IDF
    console.rule("sentiment: Twitter Financial News (train → validation)")
    t0 = time.perf_counter()
    mon_dir = args.minilm_dir or work / "twitter-monitor"
    reused = args.minilm_dir is not None and (mon_dir / "monitor.json").is_file()
    if not reused:
        fit_monitor(
            mon_dir,
            TWITTER / "train.csv",
            None,
            "text",
            "label_name",
            None,
            None,
            [
                *([f"train.max_steps={args.max_steps}"] if args.max_steps else []),
                f"train.epochs={args.epochs:g}",
                "train.batch_size=32",
                "model.max_length=64",
                f"train.learning_rate={args.lr:g}",
                "train.warmup_ratio=0.06",
                "train.checkpoint_every_steps=50",
                "data.dev_fraction=0.05",  # the dev pass costs as much as ~2 steps on this machine
                "model.extend_vocab=false",  # stock MiniLM: emoji and rare symbols stay [UNK]
                "model.adapt=none",
            ],
            progress=True,
            log=console.print,
        )
    train_s = time.perf_counter() - t0
    if reused:  # reused: the training time is the earlier invocation's (same budget)
        prev = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        train_s = prev.get("sentiment", {}).get("minilm", {}).get("train_seconds")
        results["notes"] += f" MiniLM folder reused from an earlier invocation of this script ({args.minilm_dir})."
    # 3. throughput of `monitor run` with the MiniLM in the loop, on the validation stream in file order
    console.rule("monitor run throughput (MiniLM in the loop)")
    valid = pd.read_csv(TWITTER / "validation.csv")
    stream = work / "valid.jsonl"
    with stream.open("w", encoding="utf-8") as fh:
        for i, text in enumerate(valid["text"]):
            ts = START + dt.timedelta(seconds=i * 60)
            fh.write(json.dumps({"timestamp": ts.isoformat(), "text": text}) + "\n")
    eng = init_db(f"sqlite:///{work / 'bench.db'}")
    rec = Recording(RunClassifier(mon_dir))
    summ = StreamMonitor(rec, stream, eng, "throughput", batch_size=64, log=lambda m: None).run()
    results["throughput"] = {"texts": summ.processed, "seconds": summ.seconds, "texts_per_s": summ.texts_per_s}

    # the validation texts' MiniLM labels come from the throughput run (one inference pass on this slow CPU)
    truth = valid["label_name"].to_list()
    pred = [rec.labels[t] for t in valid["text"]]
    minilm = {"macro_f1": f1_score(truth, pred, average="macro"), "accuracy": accuracy_score(truth, pred)}
    base = tfidf(TWITTER / "train.csv", "label_name", TWITTER / "validation.csv", work / "tw-tfidf")
    results["sentiment"] = {
        "minilm": {k: minilm[k] for k in ("macro_f1", "accuracy")} | {"train_seconds": round(train_s, 1)},
        "tfidf": {k: base[k] for k in ("macro_f1", "accuracy")},
        "target_macro_f1": 0.84,
        "ratio_minilm_over_tfidf": minilm["macro_f1"] / base["macro_f1"],
    }

    write_json(RESULTS, results)  # partial results survive a later failure

    # 2. Chinese topic + sentiment: the monitor's topic and sentiment models on TF-IDF (see notes)
    console.rule("topic + sentiment: online_shopping_7_cats")
    zh = {}
    for name, col in (("topic", "topic"), ("sentiment", "label_name")):
        m = tfidf(SHOPPING / "train.csv", col, SHOPPING / "test.csv", work / f"zh-{name}")
        zh[name] = {k: m[k] for k in ("accuracy", "macro_f1")}
    results["shopping_zh"] = zh | {
        "model": "tfidf (the monitor's engine run with model.type=tfidf); MiniLM on Chinese needs vocabulary "
        "extension + MLM adaptation (benchmarks/chinese.py) and did not fit this session's CPU budget"
    }

    write_json(RESULTS, results)

    # 4. alerts on replays: injected surge (known start and size) vs clean
    console.rule("alerts on replays of the validation stream")
    is_bear = valid["label_name"].eq("Bearish").to_list()
    bearish = [t for t, b in zip(valid["text"], is_bear, strict=True) if b]
    other = [t for t, b in zip(valid["text"], is_bear, strict=True) if not b]
    base_share = len(bearish) / len(valid)
    surge_start, surge_len, surge_share = 30, 3, 0.40
    settings = DetectorSettings()
    # The replays need a classifier that finds negatives: take the better of the two on validation (recorded)
    if minilm["macro_f1"] >= base["macro_f1"]:
        replay_model, cached = "minilm", Cached(rec.seen)
    else:
        from growthcurve.training.inference import Predictor

        tf_pred = Predictor(work / "tw-tfidf").predict(valid["text"].to_list())
        replay_model = "tfidf"
        cached = Cached({t: p["label"] == "Bearish" for t, p in zip(valid["text"], tf_pred, strict=True)})
    rng = random.Random(0)
    surge_files, clean_files = [], []
    for r in range(args.replays):
        p = work / f"surge{r}.jsonl"
        write_replay(
            p, rng, bearish, other, args.windows, args.per_window, base_share, (surge_start, surge_len, surge_share)
        )
        surge_files.append(p)
        p = work / f"clean{r}.jsonl"
        write_replay(p, rng, bearish, other, args.windows, args.per_window, base_share, None)
        clean_files.append(p)
    alphas = [float(a) for a in args.alphas.split(",") if a]
    sweep = [
        replay_alerts(cached, eng, surge_files, clean_files, alpha, surge_start, surge_len, k)
        for k in (1, 2, 3)
        for alpha in alphas
    ]
    default = DetectorSettings()
    default_alpha = default.alpha
    chosen = next(
        (row for row in sweep if row["alpha"] == default.alpha and row["max_scale"] == default.max_scale), sweep[0]
    )
    results["alerts"] = {
        "setup": f"{args.replays} replays x {args.windows} hourly windows x {args.per_window} validation texts "
        f"(drawn with replacement; true Bearish share {base_share:.3f}); surge: Bearish share {surge_share} in "
        f"windows {surge_start}..{surge_start + surge_len - 1}; detector {settings}; "
        f"the {replay_model} run's verdicts cached "
        "(the better sentiment model on validation in this invocation); the same replay files for every alpha",
        "replay_model": replay_model,
        "default_alpha": default_alpha,
        "default_max_scale": default.max_scale,
        **{k: v for k, v in chosen.items() if k not in ("alpha", "max_scale")},
        "alpha_sweep": sweep,
        "targets": {"alert_delay_windows": 2, "false_alerts_per_1000": 5},
    }
    delays_ok = chosen["missed"] == 0 and chosen["max_delay_windows"] is not None
    results["summary"] = {
        "sentiment_macro_f1": round(minilm["macro_f1"], 4),
        "sentiment_baseline_macro_f1": round(base["macro_f1"], 4),
        "topic_accuracy": round(zh["topic"]["accuracy"], 4),
        "alert_delay_windows": chosen["max_delay_windows"],
        "false_alerts_per_1000": round(results["alerts"]["false_alerts_per_1000"], 2),
        "monitor_texts_per_s": round(summ.texts_per_s, 1),
        "sentiment_target_met": minilm["macro_f1"] >= 0.84,
        "alert_delay_target_met": delays_ok and chosen["max_delay_windows"] <= 2,
        "false_alert_target_met": results["alerts"]["false_alerts_per_1000"] <= 5,
    }
    write_json(RESULTS, results)
    sw = Table(title="alert threshold sweep (same replays)")
    for col in ("alpha", "scales", "detected", "missed", "max delay", "false alerts / 1000"):
        sw.add_column(col, justify="right")
    for row in sweep:
        sw.add_row(
            f"{row['alpha']:g}",
            str(row["max_scale"]),
            str(row["detected"]),
            str(row["missed"]),
            str(row["max_delay_windows"]),
            f"{row['false_alerts_per_1000']:.2f}",
        )
    console.print(sw)
    t = Table(title="monitor benchmark (summary)")
    t.add_column("key")
    t.add_column("value", justify="right")
    for k, v in results["summary"].items():
        t.add_row(k, str(v))
    console.print(t)
    console.print(
        f"MiniLM / TF-IDF macro-F1 = {results['sentiment']['ratio_minilm_over_tfidf']:.3f}; "
        f"target 0.84 {'met' if minilm['macro_f1'] >= 0.84 else 'MISSED'}; wrote {RESULTS}",
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
