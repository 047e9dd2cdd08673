"""Benchmark: baselines without pretrained weights and the image CNN.

* digits (scikit-learn's 8x8 handwritten digits, the embedded default): test accuracy and seconds per epoch
  of the small CNN with the default config (target: >= 97%).
* banking77 (10,003 train / 3,080 test, 77 intents): TF-IDF + logistic regression, BiLSTM and TextCNN,
  default recipes: test accuracy and train time. Reference: TF-IDF + LR 91.3% (REFERENCE.md).

Run: ``nice -n 10 .venv/bin/python benchmarks/tasks_baselines_images.py [--threads 1] [--only digits,tfidf]``
Writes benchmarks/results/tasks_baselines_images.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from growthcurve.atomic import write_json
from growthcurve.config import load_finetune_config
from growthcurve.training.dispatch import run_finetune

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_TFIDF = 0.913
DIGITS_TARGET = 0.97


def shared_data() -> Path:
    """The read-only shared data folder (env GROWTHCURVE_SHARED_DATA, default <repo>/../shared/data)."""
    return Path(os.environ.get("GROWTHCURVE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def run(overrides: list[str], out: Path) -> dict:
    """One finetune run; the measured row."""
    cfg = load_finetune_config(None, [*overrides, f"output_dir={out}", "resume=false"])
    t0 = time.perf_counter()
    res = run_finetune(cfg, progress=False)
    wall = time.perf_counter() - t0
    epochs = max(1, len(res.history))
    return {
        "test_accuracy": res.test["accuracy"] if res.test else None,
        "test_macro_f1": res.test["macro_f1"] if res.test else None,
        "dev_accuracy": res.dev.get("accuracy"),
        "best_epoch": res.best_epoch,
        "epochs_run": epochs,
        "train_seconds": round(res.train_seconds, 2),
        "seconds_per_epoch": round(res.train_seconds / epochs, 3),
        "wall_seconds": round(wall, 2),
        "train_samples_per_s": round(res.train_samples_per_s, 1),
        "trainable_params": res.trainable_params,
        "config": overrides,
    }


def main() -> None:
    """Run the selected rows, print them next to the references and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--only", default="digits,tfidf,textcnn,rnn", help="comma-separated rows to run")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    only = args.only.split(",")
    bank = shared_data() / "banking77"
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "digits" in only:
            print("digits: small CNN, default config ...", flush=True)
            rows["digits_cnn"] = run(["task=image-classification"], Path(tmp) / "digits")
        text = [
            f"data.train={bank / 'train.csv'}",
            f"data.test={bank / 'test.csv'}",
            "data.label_column=category",
        ]
        recipes = {
            # TF-IDF needs no model selection: it trains on all of train, like the reference
            "tfidf": ["model.type=tfidf", "data.dev_fraction=0"],
            "textcnn": ["model.type=textcnn"],
            "rnn": ["model.type=rnn"],
        }
        for name, extra in recipes.items():
            if name in only:
                if not (bank / "train.csv").is_file():
                    print(f"skip {name}: {bank / 'train.csv'} not found (set GROWTHCURVE_SHARED_DATA)")
                    continue
                print(f"banking77: {name} ...", flush=True)
                rows[f"banking77_{name}"] = run([*text, *extra], Path(tmp) / name)

    print(f"\n{'row':<20}{'test acc':>10}{'reference':>11}{'ratio':>8}{'train s':>10}{'s/epoch':>9}")
    refs = {"digits_cnn": DIGITS_TARGET, "banking77_tfidf": REFERENCE_TFIDF}
    for name, r in rows.items():
        ref = refs.get(name)
        ratio = f"{r['test_accuracy'] / ref:.3f}" if ref else "-"
        print(
            f"{name:<20}{r['test_accuracy']:>10.4f}{(f'{ref:.3f}' if ref else '-'):>11}{ratio:>8}"
            f"{r['train_seconds']:>10.1f}{r['seconds_per_epoch']:>9.2f}"
        )
    summary = {
        "digits_cnn_test_accuracy": rows.get("digits_cnn", {}).get("test_accuracy"),
        "digits_cnn_seconds_per_epoch": rows.get("digits_cnn", {}).get("seconds_per_epoch"),
        "digits_target": DIGITS_TARGET,
        "digits_meets_target": (rows.get("digits_cnn", {}).get("test_accuracy") or 0) >= DIGITS_TARGET,
        "banking77": {
            k.removeprefix("banking77_"): {
                "test_accuracy": v["test_accuracy"],
                "train_seconds": v["train_seconds"],
            }
            for k, v in rows.items()
            if k.startswith("banking77_")
        },
        "banking77_reference_tfidf_lr": REFERENCE_TFIDF,
    }
    if "banking77_tfidf" in rows:
        summary["banking77_tfidf_ratio_to_reference"] = round(
            rows["banking77_tfidf"]["test_accuracy"] / REFERENCE_TFIDF, 4
        )
    out = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
        "summary": summary,
    }
    path = ROOT / "benchmarks" / "results" / "tasks_baselines_images.json"
    write_json(path, out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
