"""Issue 4's benchmark: NER, Chinese, images and text baselines in one results file.

Runs the two part-benchmarks (each also usable alone) and merges their results into
benchmarks/results/tasks.json with the summary the issue asks for. MiniLM on BANKING77 (what
pretraining buys over the baselines) comes from train_throughput.<cpu family>.json (the newest full run
with a recipe row), measured by that benchmark.

    python benchmarks/tasks.py               # run both parts (~45 min on 2 cores), then merge
    python benchmarks/tasks.py --merge-only  # merge the committed part results
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = ("tasks_baselines_images", "tasks_ner_chinese")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merge-only", action="store_true", help="do not rerun the parts; merge their JSON files")
    args = ap.parse_args()
    if not args.merge_only:
        for part in PARTS:
            print(f"running {part} ...", flush=True)
            subprocess.run([sys.executable, str(HERE / f"{part}.py")], check=True)
    parts = {p: json.loads((RESULTS / f"{p}.json").read_text()) for p in PARTS}
    images, ner = parts["tasks_baselines_images"]["summary"], parts["tasks_ner_chinese"]["summary"]
    minilm = None
    for tt_path in sorted(RESULTS.glob("train_throughput*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        recipe = json.loads(tt_path.read_text()).get("rows", {}).get("growthcurve_recipe", {})
        if "test_accuracy" in recipe:
            minilm = {"test_accuracy": recipe["test_accuracy"], "train_seconds": recipe.get("train_seconds")}
            minilm["source"] = tt_path.name
            break
    banking = dict(images.get("banking77", {}))
    if minilm:
        banking["minilm_recipe"] = minilm
    summary = {
        "digits_cnn_accuracy": images["digits_cnn_test_accuracy"],
        "digits_cnn_seconds_per_epoch": images["digits_cnn_seconds_per_epoch"],
        "ner_f1_minilm": ner["ner_f1_minilm"],
        "ner_f1_bilstm": ner["ner_f1_bilstm"],
        "chinese_coverage_after_extension": ner["chinese_coverage_after_extension"],
        "chinese_coverage_without_extension": ner.get("chinese_coverage_without_extension"),
        "chinese_accuracy_with_extension": ner.get("chinese_accuracy_with_extension"),
        "chinese_accuracy_without_extension": ner.get("chinese_accuracy_without_extension"),
        "banking77_text_models": banking,
        "targets": {"digits_cnn_accuracy": 0.97, "ner_f1_minilm": 0.40, "ner_f1_minilm_above_bilstm": True},
    }
    doc = {
        "benchmark": "tasks",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "parts": {
            p: {"date": d.get("date"), "command": d.get("command"), "rows": d.get("rows")} for p, d in parts.items()
        },
        "summary": summary,
    }
    sys.path.insert(0, str(HERE.parent / "src"))
    from growthcurve.atomic import write_json

    write_json(RESULTS / "tasks.json", doc)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
