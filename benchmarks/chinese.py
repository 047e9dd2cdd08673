"""Chinese that learns: TF-IDF vs TextCNN/BiLSTM vs MiniLM with vocabulary extension, with and without masked-LM
adaptation (each new-row initialisation), on the shared real Chinese corpora, side by side.

Run one dataset at a time on a shared 2-core machine (rows accumulate in the JSON):
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/chinese.py --datasets waimai --train-rows 100000 \
        --eval-rows 100000 --epochs 3 --max-length 64 --scratch-steps 900
(docs/chinese.md lists the invocation of each dataset)
Writes benchmarks/results/chinese.json (date, command, torch build, CPU model and flags, rows, summary).
Data: $GROWTHCURVE_SHARED_DATA or ../shared/data (waimai_10k, online_shopping_7_cats, msra_ner); the licences are
unclear, so subsamples are written to a temporary folder, never into the repository.

Targets (issue 19, adaptation time inside the budget): waimai MiniLM+adapt >= TF-IDF + 3 points; shopping
sentiment (all and >= 60 characters) >= TF-IDF + 2 points; msra_ner entity F1 >= 0.80 and above the BiLSTM.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GROWTHCURVE_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULT = ROOT / "benchmarks" / "results" / "chinese.json"
DATASETS = ("waimai", "shopping", "shopping_long", "msra")
ROWS = (
    "tfidf",
    "textcnn",
    "bilstm",
    "minilm_ext",
    "minilm_adapt_mean_noise",
    "minilm_adapt_cooc",
    "minilm_adapt_pieces",
)


# the MiniLM row the summary reports: adaptation with the default new-row initialisation
def _default_row() -> str:
    from growthcurve.config import ModelConfig

    return f"minilm_adapt_{ModelConfig().new_rows_init}"


def machine() -> dict[str, Any]:
    """CPU model and the SIMD flags that decide bf16/int8 speed, torch build, thread count."""
    import torch

    from growthcurve.cpuinfo import cpu_family, cpu_flags, cpu_model

    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_family": cpu_family(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "load_average_at_start": os.getloadavg(),
        "note": (
            f"{os.cpu_count()} cores; 1-minute load {os.getloadavg()[0]:.1f} at the start"
            + (" (shared with other jobs: timings are noisy)" if os.getloadavg()[0] > 1.5 else "")
        ),
    }


def _write_csv(path: Path, rows: list[dict[str, str]], fields: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _subsample(rows: list[dict[str, str]], n: int | None, seed: int) -> list[dict[str, str]]:
    if n is None or len(rows) <= n:
        return rows
    return random.Random(seed).sample(rows, n)


def _repair_iob2(sents: list[str]) -> tuple[list[str], int]:
    """Make an ``I-X`` that follows neither ``B-X`` nor ``I-X`` a ``B-X`` (conlleval's reading of such tags).

    A handful of MSRA sentences start an entity with ``I-``; growthcurve refuses such files (as it should, with
    the line number), so the benchmark repairs them the standard way and records how many tags it changed.
    """
    fixed, out = 0, []
    for sent in sents:
        prev, lines = "O", []
        for line in sent.split("\n"):
            parts = line.split("\t")
            if len(parts) == 2 and parts[1].startswith("I-") and prev[2:] != parts[1][2:]:
                parts[1] = "B-" + parts[1][2:]
                fixed += 1
            prev = parts[-1] if len(parts) == 2 else "O"
            lines.append("\t".join(parts))
        out.append("\n".join(lines))
    return out, fixed


def prepare(name: str, tmp: Path, train_rows: int | None, eval_rows: int | None) -> dict[str, Any]:
    """Train/dev/test files of one dataset (subsampled into ``tmp``) and the rows actually used."""
    if name == "msra":
        src = SHARED / "msra_ner"
        out: dict[str, Any] = {"task": "token-classification"}
        for split, fname, n in (
            ("train", "train", train_rows),
            ("dev", "validation", eval_rows),
            ("test", "test", eval_rows),
        ):  # noqa: E501
            sents = (src / f"{fname}.conll").read_text(encoding="utf-8").strip().split("\n\n")
            out[f"{split}_full"] = len(sents)
            sents = random.Random(0).sample(sents, n) if n and len(sents) > n else sents
            sents, fixed = _repair_iob2(sents)
            (tmp / f"msra_{split}.conll").write_text("\n\n".join(sents) + "\n", encoding="utf-8")
            out[split], out[f"{split}_rows"] = str(tmp / f"msra_{split}.conll"), len(sents)
            out[f"{split}_iob2_repairs"] = fixed
        return out
    folder = SHARED / ("waimai_10k" if name == "waimai" else "online_shopping_7_cats")
    out = {"task": "text-classification"}
    for split, fname, n in (
        ("train", "train", train_rows),
        ("dev", "validation", eval_rows),
        ("test", "test", eval_rows),
    ):  # noqa: E501
        with (folder / f"{fname}.csv").open(encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r["text"].strip()]
        if name == "shopping_long":
            rows = [r for r in rows if len(r["text"]) >= 60]
        out[f"{split}_full"] = len(rows)
        rows = _subsample(rows, n, 0)
        out[split] = str(_write_csv(tmp / f"{name}_{split}.csv", rows, ["text", "label"]))
        out[f"{split}_rows"] = len(rows)
    return out


def overrides(row: str, data: dict[str, Any], out: Path, args: argparse.Namespace) -> list[str]:
    """--set overrides of one benchmark row."""
    sets: dict[str, Any] = {
        "task": data["task"],
        "data.train": data["train"],
        "data.dev": data["dev"],
        "data.test": data["test"],
        "output_dir": out,
        "resume": False,
        "train.seed": 0,
    }
    if row in ("tfidf", "textcnn", "bilstm"):
        sets["model.type"] = {"tfidf": "tfidf", "textcnn": "textcnn", "bilstm": "rnn"}[row]
        if row != "tfidf":
            sets["train.max_steps"] = args.scratch_steps
            sets["train.epochs"] = 50
    else:
        sets.update(
            {
                "model.max_length": args.max_length,
                **(
                    {"train.max_steps": args.steps, "train.epochs": 50} if args.steps else {"train.epochs": args.epochs}
                ),
                "model.adapt": "none" if row == "minilm_ext" else "mlm",
                "model.extend_vocab": True,
            }
        )
        if row != "minilm_ext":
            sets["model.adapt_steps"] = args.adapt_steps
            sets["model.new_rows_init"] = row.removeprefix("minilm_adapt_")
    return [f"{k}={v}" for k, v in sets.items()]


def _child(sets: list[str], threads: int, queue: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.hardware import peak_rss_mb

    t0 = time.perf_counter()
    res = run_finetune(load_finetune_config(None, sets), progress=True)
    metrics = json.loads((Path(res.run_dir) / "metrics.json").read_text(encoding="utf-8"))
    queue.put(
        {
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "train_seconds": round(res.train_seconds, 1),
            "steps": metrics.get("train", {}).get("steps"),
            "test": res.test,
            "adaptation": metrics.get("adaptation"),
            "vocab": metrics.get("vocab") or (metrics.get("train") or {}).get("vocab"),
            "warnings": metrics.get("warnings", []),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )


def run_row(sets: list[str], threads: int) -> dict[str, Any]:
    """One run in a fresh process, so its peak RSS is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(sets, threads, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"error": f"exit code {proc.exitcode}"}
    return queue.get()


def _score(entry: dict[str, Any] | None, key: str) -> float | None:
    test = (entry or {}).get("test") or {}
    return test.get(key)


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's summary keys plus target checks (None where a row was not run)."""

    def acc(ds: str, row: str) -> float | None:
        return _score(results.get(ds, {}).get("rows", {}).get(row), "accuracy")

    def f1(row: str) -> float | None:
        return _score(results.get("msra", {}).get("rows", {}).get(row), "entity_f1")

    s: dict[str, Any] = {
        "waimai_tfidf_acc": acc("waimai", "tfidf"),
        "waimai_minilm_acc": acc("waimai", _default_row()),
        "shopping_tfidf_acc": acc("shopping", "tfidf"),
        "shopping_minilm_acc": acc("shopping", _default_row()),
        "shopping_long_tfidf_acc": acc("shopping_long", "tfidf"),
        "shopping_long_minilm_acc": acc("shopping_long", _default_row()),
        "msra_bilstm_f1": f1("bilstm"),
        "msra_minilm_f1": f1(_default_row()),
    }
    adapt = [
        (r.get("adaptation") or {}).get("seconds", 0.0) / 60
        for d in results.values()
        for r in d.get("rows", {}).values()
        if r.get("adaptation")
    ]
    s["adapt_minutes"] = round(max(adapt), 2) if adapt else None
    targets = {}
    for ds, margin in (("waimai", 0.03), ("shopping", 0.02), ("shopping_long", 0.02)):
        a, b = s[f"{ds}_minilm_acc"], s[f"{ds}_tfidf_acc"]
        targets[f"{ds}_minilm_ge_tfidf_plus_{round(margin * 100)}pt"] = (
            None if a is None or b is None else a >= b + margin
        )
    m, b = s["msra_minilm_f1"], s["msra_bilstm_f1"]
    targets["msra_minilm_f1_ge_0.80_and_above_bilstm"] = None if m is None or b is None else (m >= 0.8 and m > b)
    s["targets_met"] = targets
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="waimai", help=f"comma-separated: {','.join(DATASETS)}")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated benchmark rows")
    ap.add_argument("--train-rows", type=int, default=3000, help="subsample the training split to this many rows")
    ap.add_argument("--eval-rows", type=int, default=800, help="subsample dev and test to this many rows")
    ap.add_argument("--epochs", type=float, default=3.0, help="MiniLM fine-tuning epochs (batch 32)")
    ap.add_argument("--steps", type=int, default=None, help="MiniLM fine-tuning steps instead of --epochs")
    ap.add_argument("--adapt-steps", type=int, default=200, help="masked-LM adaptation steps (the default's)")
    ap.add_argument("--scratch-steps", type=int, default=400, help="TextCNN/BiLSTM steps")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    datasets = [d for d in args.datasets.split(",") if d]
    wanted = [r for r in args.rows.split(",") if r]
    for d in datasets:
        if d not in DATASETS:
            ap.error(f"unknown dataset '{d}' (use {', '.join(DATASETS)})")
    if not SHARED.is_dir():
        print(f"error: shared data folder '{SHARED}' does not exist (set GROWTHCURVE_SHARED_DATA)", file=sys.stderr)
        return 2
    out = json.loads(RESULT.read_text(encoding="utf-8")) if RESULT.is_file() else {"datasets": {}}
    out["machine"] = machine()
    out["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out.setdefault("commands", []).append(" ".join(["python", "benchmarks/chinese.py", *sys.argv[1:]]))
    with tempfile.TemporaryDirectory(prefix="gc-chinese-") as tmp_s:
        tmp = Path(tmp_s)
        for ds in datasets:
            data = prepare(ds, tmp, args.train_rows, args.eval_rows)
            entry = out["datasets"].setdefault(ds, {"rows": {}})
            entry["budget"] = {
                "train_rows": data["train_rows"],
                "dev_rows": data["dev_rows"],
                "test_rows": data["test_rows"],
                "minilm_steps": args.steps,
                "minilm_epochs": None if args.steps else args.epochs,
                "adapt_steps": args.adapt_steps,
                "scratch_steps": args.scratch_steps,
                "batch_size": 32,
                "max_length": args.max_length,
                "threads": args.threads,
                **{f"{x}_iob2_repairs": data[f"{x}_iob2_repairs"] for x in ("train", "dev", "test") if ds == "msra"},
                "subsampled": any(data[f"{x}_rows"] < data[f"{x}_full"] for x in ("train", "dev", "test")),
            }
            for row in wanted:
                if (ds == "msra" and row in ("tfidf", "textcnn")) or (ds != "msra" and row == "bilstm"):
                    continue  # TF-IDF/TextCNN classify texts; the BiLSTM tagger is the NER baseline
                print(f"== {ds} / {row}", flush=True)
                res = run_row(overrides(row, data, tmp / f"run-{ds}-{row}", args), args.threads)
                entry["rows"][row] = {**res, "budget": dict(entry["budget"])}  # rows of several invocations
                key = "entity_f1" if ds == "msra" else "accuracy"
                print(f"   {key} {_score(res, key)}  train {res.get('train_seconds')} s", flush=True)
                out["summary"] = summarise(out["datasets"])
                from growthcurve.atomic import write_json

                write_json(RESULT, out)
    s = out["summary"]
    for ds in ("waimai", "shopping", "shopping_long"):
        a, b = s[f"{ds}_minilm_acc"], s[f"{ds}_tfidf_acc"]
        if a is not None and b is not None:
            print(f"{ds}: MiniLM+adapt {a:.4f} vs TF-IDF {b:.4f} (ratio {a / b:.3f}, {100 * (a - b):+.1f} points)")
    print(json.dumps(s["targets_met"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
