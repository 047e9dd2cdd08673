"""`growthcurve export` (ONNX fp32/int8) and `growthcurve compress` (pruning, recovery, dynamic int8)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError
from growthcurve.store.lineage import run_folder

console = Console()


def _mib(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.2f} MiB"


def _acc(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def export(
    run: Annotated[
        Path,
        typer.Argument(
            parser=run_folder,
            help="run folder or model version (intents@v2) of a transformer text- or token-classification run",
        ),
    ],
    format_: Annotated[str, typer.Option("--format", help="export format (onnx)")] = "onnx",
    quantize: Annotated[str | None, typer.Option(help="also write an int8 model: int8")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default RUN/onnx)")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="onnxruntime threads for the self-check")] = None,
) -> None:
    """Export a run to ONNX (PEFT runs merged first), check it against PyTorch, write export.json."""
    from growthcurve.compression.onnx import FP32_FILE, INT8_FILE, export_onnx

    if format_ != "onnx":
        raise ConfigError(f"--format '{format_}' is not available; the one export format is onnx")
    res = export_onnx(run, out, quantize, threads, progress=True)
    rep = res.report
    table = Table(title=f"ONNX export: {res.out_dir}")
    for col in ("model", "file size", "max |Δlogit| vs torch", "test accuracy"):
        table.add_column(col, justify="right" if col != "model" else "left")
    test = rep.get("test") or {}
    table.add_row("PyTorch (fp32)", "–", "–", _acc(test.get("accuracy_torch_fp32")))
    table.add_row(
        FP32_FILE,
        _mib(rep["files"][FP32_FILE]),
        f"{rep['max_abs_diff']['fp32']:.2e}",
        _acc(test.get("accuracy_onnx_fp32")),
    )
    if INT8_FILE in rep["files"]:
        table.add_row(
            INT8_FILE,
            _mib(rep["files"][INT8_FILE]),
            f"{rep['max_abs_diff']['int8']:.2e}",
            _acc(test.get("accuracy_onnx_int8")),
        )
    console.print(table)
    if INT8_FILE in rep["files"]:
        console.print(
            f"int8 file is {100 * rep['int8_size_ratio']:.1f}% of fp32; arg-max agrees with PyTorch on "
            f"{100 * rep['int8_argmax_agreement']:.1f}% of the check rows"
        )
    fused = rep.get("fusion", {}).get("fused_operators") or {}
    console.print(
        f"graph: {rep['exporter']}, opset {rep['opset']}; fused by onnxruntime: "
        + (", ".join(f"{k} {v}" for k, v in fused.items()) or "nothing (unfused graph, see export_attempts)")
    )
    if rep.get("test_note"):
        console.print(f"test accuracy: {rep['test_note']}")
    console.print(f"fp32 check passed (≤ {rep['tolerance']:g}); export.json in {res.out_dir}")


def compress(
    run: Annotated[
        Path,
        typer.Argument(
            parser=run_folder,
            metavar="RUN",
            help="run folder or model version (intents@v2) of a transformer text-classification run",
        ),
    ],
    prune: Annotated[float, typer.Option(help="fraction to prune, e.g. 0.3")],
    structured: Annotated[
        str | None, typer.Option(help="neurons (feed-forward neurons) or heads; default unstructured weights")
    ] = None,
    recover_epochs: Annotated[float, typer.Option(min=0, help="recovery fine-tune epochs (0: none)")] = 0,
    recover_lr: Annotated[float | None, typer.Option(help="recovery learning rate (default: the run's)")] = None,
    quantize: Annotated[str | None, typer.Option(help="also measure PyTorch dynamic int8: dynamic-int8")] = None,
    out: Annotated[Path | None, typer.Option(help="output run folder (default RUN-pruned next to RUN)")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads for the measurements")] = None,
) -> None:
    """Prune a run into a new run folder; print size, speed and accuracy before/after (compress.json)."""
    import torch

    from growthcurve.compression.compress import compress_run

    if threads is not None:
        torch.set_num_threads(threads)
    res = compress_run(run, prune, structured, recover_epochs, recover_lr, quantize, out)
    _print_compress(res.out_dir, res.report)
    if res.ref:
        console.print(f"model version: {res.ref}", highlight=False)


def _print_compress(out_dir: Path, rep: dict[str, Any]) -> None:
    rows = rep["rows"]
    base = rows["before"]
    table = Table(
        title=f"compress {rep['source_run']} → {out_dir} ({rep['pruning']['kind']}, {rep['pruning']['amount']:g})"
    )
    for col in ("model", "parameters", "non-zero", "state dict", "texts/s", "speed-up", "test accuracy"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, r in rows.items():
        table.add_row(
            name,
            f"{r['parameters']:,}" if "parameters" in r else "–",
            f"{r['nonzero_parameters']:,}" if "nonzero_parameters" in r else "–",
            _mib(r["state_dict_bytes"]),
            f"{r['texts_per_s']:.1f}",
            f"{r['texts_per_s'] / base['texts_per_s']:.2f}×",
            _acc(r["test_accuracy"]),
        )
    console.print(table)
    s = rep["speed"]
    console.print(
        f"speed: {s['sample_texts']} texts, batch {s['batch_size']}, {s['torch_threads']} torch threads "
        f"(one noisy pass); report in {out_dir / 'compress.json'}"
    )
    if rep["quantize"]:
        console.print(
            "the run folder stores the pruned fp32 model with run.json quantize_dynamic_int8=true; "
            "`growthcurve export --quantize int8` gives a deployable int8 file"
        )


def register(app: typer.Typer) -> None:
    """Add `export` and `compress` to the root CLI."""
    app.command()(export)
    app.command()(compress)
