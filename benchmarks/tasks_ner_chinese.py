"""NER on WNUT-17 (MiniLM vs BiLSTM tagger) and Chinese vocabulary extension (coverage and accuracy).

Run: OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/tasks_ner_chinese.py [--only wnut,chinese,intents]
(one torch thread: on 2 cores shared with other jobs it is several times faster than two contended threads)
Writes benchmarks/results/tasks_ner_chinese.json and prints a side-by-side table with shared/REFERENCE.md.

Parts:
- wnut: entity-level F1 (seqeval strict IOB2) on the WNUT-17 test split; model selection on dev.
- chinese: a small, clearly synthetic Chinese 4-class set (template sentences around class keywords) trained
  with MiniLM with and without vocabulary extension.
- intents: the default `growthcurve finetune` run (bundled intents, 30% Chinese) with extend_vocab=false
  and with the default (auto), scored on the Chinese rows of its test split.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GROWTHCURVE_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULT = ROOT / "benchmarks" / "results" / "tasks_ner_chinese.json"
REFERENCE = {"bert_base_uncased_wnut17_f1": (0.42, 0.45), "bert_base_cased_wnut17_f1": (0.40, 0.48)}
CJK = re.compile(r"[\u4e00-\u9fff]")

# WNUT-17 recipes, chosen on dev (see docs/token-classification.md)
MINILM_WNUT = {"train.epochs": 6, "train.learning_rate": 1e-4, "train.batch_size": 16, "train.precision": "bf16"}
BILSTM_WNUT = {"model.type": "rnn", "train.epochs": 15, "train.learning_rate": 2e-3, "train.batch_size": 16}


def _finetune(sets: dict[str, Any]) -> tuple[Any, float]:
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    cfg = load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()])
    t0 = time.perf_counter()
    res = run_finetune(cfg, progress=False)
    return res, time.perf_counter() - t0


def lenient_f1(run_dir: Path) -> float:
    """seqeval default (conlleval-style) F1 from the saved test predictions, as model cards report it."""
    from seqeval.metrics import f1_score

    rows = [json.loads(x) for x in (run_dir / "predictions_test.jsonl").read_text(encoding="utf-8").splitlines()]
    return float(f1_score([r["tags"] for r in rows], [r["predicted"] for r in rows]))


def bench_wnut(tmp: Path) -> dict[str, Any]:
    data = SHARED / "wnut17"
    base = {"task": "token-classification", "data.train": data / "train.jsonl", "data.dev": data / "dev.jsonl",
            "data.test": data / "test.jsonl", "resume": False}  # fmt: skip
    rows = {}
    for name, extra in (("minilm", {"model.name_or_path": "minilm", **MINILM_WNUT}), ("bilstm", BILSTM_WNUT)):
        out = tmp / f"wnut-{name}"
        res, secs = _finetune({**base, **extra, "output_dir": out})
        rows[name] = {
            "test_entity_f1_strict": round(res.test["entity_f1"], 4),
            "test_entity_f1_lenient": round(lenient_f1(out), 4),
            "test_precision": round(res.test["entity_precision"], 4),
            "test_recall": round(res.test["entity_recall"], 4),
            "test_token_accuracy": round(res.test["accuracy"], 4),
            "dev_entity_f1": round(res.dev["entity_f1"], 4),
            "best_epoch": res.best_epoch,
            "train_seconds": round(res.train_seconds, 1),
            "wall_seconds": round(secs, 1),
            "recipe": {k: v for k, v in extra.items() if k != "model.name_or_path"},
        }
        print(f"wnut17 {name}: {rows[name]}", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------
# Chinese

ZH_CLASSES = {  # clearly synthetic: template sentences around class keywords
    "weather": ["暴雨", "台风", "霜冻", "雾霾", "冰雹", "晴朗", "潮湿", "闷热"],
    "food": ["饺子", "馄饨", "烧卖", "粽子", "煎饼", "酱鸭", "炒饭", "汤圆"],
    "transport": ["地铁", "轮渡", "缆车", "高铁", "驿站", "航班", "隧道", "码头"],
    "health": ["咳嗽", "发烧", "肠胃", "牙疼", "眩晕", "过敏", "骨折", "失眠"],
}
ZH_PREFIX = ["今天", "请问", "我想知道", "明天", "关于", "你好，", "麻烦问一下", ""]
ZH_SUFFIX = ["怎么样", "的情况", "有什么建议", "吗", "的问题", "，谢谢", "需要注意什么", ""]


def synthetic_chinese(n: int, seed: int) -> list[tuple[str, str]]:
    """(text, label) rows: a prefix, a keyword of the class, a suffix (shared across classes)."""
    rng = random.Random(seed)
    labels = sorted(ZH_CLASSES)
    return [
        (rng.choice(ZH_PREFIX) + rng.choice(ZH_CLASSES[lab]) + rng.choice(ZH_SUFFIX), lab)
        for lab in (rng.choice(labels) for _ in range(n))
    ]


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def bench_chinese(tmp: Path) -> dict[str, Any]:
    data = {split: _write_csv(tmp / f"zh-{split}.csv", synthetic_chinese(n, seed))
            for split, n, seed in (("train", 400, 0), ("dev", 100, 1), ("test", 200, 2))}  # fmt: skip
    rows = {}
    for mode in ("false", "true"):
        out = tmp / f"zh-{mode}"
        sets = {"data.train": data["train"], "data.dev": data["dev"], "data.test": data["test"], "output_dir": out,
                "model.extend_vocab": mode, "train.epochs": 3, "resume": False}  # fmt: skip
        res, secs = _finetune(sets)
        vocab = json.loads((out / "model" / "run.json").read_text(encoding="utf-8"))["vocab"]
        rows[f"extend_vocab_{mode}"] = {
            "test_accuracy": round(res.test["accuracy"], 4),
            "test_macro_f1": round(res.test["macro_f1"], 4),
            "coverage": vocab["coverage_after"],
            "coverage_before": vocab["coverage_before"],
            "added_tokens": vocab["added_tokens"],
            "wall_seconds": round(secs, 1),
        }
        print(f"synthetic chinese, extend_vocab={mode}: {rows[f'extend_vocab_{mode}']}", flush=True)
    return rows


def bench_intents(tmp: Path) -> dict[str, Any]:
    import pandas as pd

    from growthcurve.data.text import bundled_intents_dir
    from growthcurve.training.inference import Predictor

    test = pd.read_csv(bundled_intents_dir() / "test.csv")
    zh = test[test["text"].map(lambda s: bool(CJK.search(s)))]
    rows = {}
    for mode in ("false", "null"):
        out = tmp / f"intents-{mode}"
        res, secs = _finetune({"output_dir": out, "model.extend_vocab": mode, "resume": False})
        pred = [r["label"] for r in Predictor(out).predict(zh["text"].tolist())]
        zh_acc = sum(p == y for p, y in zip(pred, zh["label"], strict=True)) / len(zh)
        vocab = json.loads((out / "model" / "run.json").read_text(encoding="utf-8"))["vocab"]
        rows[f"extend_vocab_{mode}"] = {
            "test_accuracy": round(res.test["accuracy"], 4),
            "chinese_test_accuracy": round(zh_acc, 4),
            "chinese_test_rows": len(zh),
            "coverage_before": vocab["coverage_before"],
            "coverage_after": vocab["coverage_after"],
            "added_tokens": vocab["added_tokens"],
            "wall_seconds": round(secs, 1),
        }
        print(f"default intents run, extend_vocab={mode}: {rows[f'extend_vocab_{mode}']}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="wnut,chinese,intents", help="comma-separated parts to run")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "wnut" in parts:
            rows["wnut17"] = bench_wnut(tmp)
        if "chinese" in parts:
            rows["synthetic_chinese"] = bench_chinese(tmp)
        if "intents" in parts:
            rows["default_intents"] = bench_intents(tmp)
    # parts not run now keep their previous numbers (re-read here: parts may run in parallel processes)
    previous = json.loads(RESULT.read_text(encoding="utf-8")) if RESULT.is_file() else {}
    rows = {**previous.get("rows", {}), **rows}
    wnut, zh = rows.get("wnut17", {}), rows.get("synthetic_chinese", {})
    summary = {
        "ner_f1_minilm": wnut.get("minilm", {}).get("test_entity_f1_strict"),
        "ner_f1_bilstm": wnut.get("bilstm", {}).get("test_entity_f1_strict"),
        "chinese_coverage_after_extension": zh.get("extend_vocab_true", {}).get("coverage"),
        "chinese_coverage_without_extension": zh.get("extend_vocab_false", {}).get("coverage"),
        "chinese_accuracy_with_extension": zh.get("extend_vocab_true", {}).get("test_accuracy"),
        "chinese_accuracy_without_extension": zh.get("extend_vocab_false", {}).get("test_accuracy"),
        "intents_chinese_test_accuracy_before": rows.get("default_intents", {})
        .get("extend_vocab_false", {})
        .get("chinese_test_accuracy"),
        "intents_chinese_test_accuracy_after": rows.get("default_intents", {})
        .get("extend_vocab_null", {})
        .get("chinese_test_accuracy"),
    }
    out = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/tasks_ner_chinese.py",
        "reference": {"source": "shared/REFERENCE.md (WNUT-17 published model cards)", **REFERENCE},
        "rows": rows,
        "summary": summary,
    }
    from growthcurve.atomic import write_json

    write_json(RESULT, out)
    lo, hi = REFERENCE["bert_base_uncased_wnut17_f1"]
    print("\n| measure | growthcurve | reference | ratio |\n|---|---|---|---|")
    for name, ref in (("ner_f1_minilm", (lo + hi) / 2), ("ner_f1_bilstm", (lo + hi) / 2)):
        v = summary[name]
        if v is not None:
            print(f"| {name} (test, strict) | {v:.3f} | bert-base-uncased {lo:.2f}-{hi:.2f} | {v / ref:.2f} |")
    for k in ("chinese_coverage_without_extension", "chinese_coverage_after_extension",
              "chinese_accuracy_without_extension", "chinese_accuracy_with_extension",
              "intents_chinese_test_accuracy_before", "intents_chinese_test_accuracy_after"):  # fmt: skip
        if summary[k] is not None:
            print(f"| {k} | {summary[k]:.3f} | - | - |")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
