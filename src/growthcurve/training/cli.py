"""`growthcurve finetune`, `evaluate` and `predict`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError, DataError
from growthcurve.store.lineage import run_folder

if TYPE_CHECKING:
    from growthcurve.training.runfolder import RunResult

console = Console()


def finetune(
    config: Annotated[Path | None, typer.Argument(help="YAML config; omit to run the embedded default")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="override: KEY=VALUE (e.g. train.epochs=2)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Fine-tune a pretrained model on labelled data and write a run folder with reports."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    cfg = load_finetune_config(config, set_ or [])
    result = run_finetune(cfg, progress=not quiet)
    from accelerate import PartialState

    if PartialState().is_main_process:  # under `accelerate launch` the other ranks hold no results
        _print_result(result)


def _print_result(result: RunResult) -> None:
    run_dir = result.run_dir
    table = Table(title=f"growthcurve run: {run_dir}")
    table.add_column("split")
    for col in ("accuracy", "macro-F1", "micro-F1", "loss"):
        table.add_column(col, justify="right")
    for name, m in (("dev (best)", result.dev), ("test", result.test)):
        if m:  # absent when the run had no dev split or no test file
            table.add_row(
                name, f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", f"{m['micro_f1']:.4f}", f"{m['loss']:.4f}"
            )
    console.print(table)
    console.print(
        f"best epoch {result.best_epoch}; {result.train_samples_per_s:.1f} train samples/s "
        f"({result.precision}); trainable {result.trainable_params:,} of {result.total_params:,} parameters; "
        f"peak RSS {result.peak_rss_mb:.0f} MiB"
    )
    model_dir = Path(run_dir) / "model"
    if (model_dir / "method.json").is_file():  # a PEFT run: what it stores on top of its base model
        from growthcurve.models.peft_methods import task_specific_bytes

        console.print(f"task-specific weights on disk: {task_specific_bytes(model_dir) / 2**20:.2f} MiB")
    report = Path(run_dir) / ("classification_report_test.txt" if result.test else "classification_report_dev.txt")
    if report.is_file():
        console.print(f"[bold]{report.name}[/]")
        console.print(report.read_text(encoding="utf-8"), highlight=False)
    from growthcurve.training.runfolder import run_artefacts

    names = sorted({p.name + ("/" if p.is_dir() else "") for p in run_artefacts(Path(run_dir))})
    console.print(f"run folder: {run_dir} ({', '.join(names)})")
    ref = getattr(result, "ref", None)
    if ref:
        from growthcurve.store import default_url, masked_url

        console.print(
            f"model version: {ref} in the store {masked_url(default_url())} "
            f"(use {ref} wherever a run folder is asked for; `name:` in the config names the model)",
            highlight=False,
            soft_wrap=True,
        )


def evaluate(
    run: Annotated[
        Path, typer.Argument(parser=run_folder, metavar="RUN", help="run folder or model version (intents@v2)")
    ],
    data: Annotated[Path, typer.Argument(help="labelled CSV/TSV/JSONL/Parquet file")],
    out: Annotated[Path | None, typer.Option(help="folder for the reports (default RUN/eval-<name>)")] = None,
    text_column: Annotated[str | None, typer.Option(help="text column if not the training one")] = None,
    label_column: Annotated[str | None, typer.Option(help="label column if not the training one")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Evaluate a run's best model on a labelled file: metrics, classification report, confusion matrix."""
    from growthcurve.training.inference import evaluate_run

    res = evaluate_run(run, data, out, text_column, label_column, progress=not quiet)
    for w in res["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    m = res["metrics"]
    console.print(
        f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
        f"micro-F1 {m['micro_f1']:.4f}  loss {m['loss']:.4f}"
    )
    console.print(f"reports in {res['out_dir']}")


def predict(
    run: Annotated[
        Path, typer.Argument(parser=run_folder, metavar="RUN", help="run folder or model version (intents@v2)")
    ],
    file: Annotated[
        str, typer.Argument(help="text lines, JSONL with a text field, or CSV/TSV/Parquet; '-' reads stdin")
    ] = "-",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="labels with probabilities per text")] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    text_column: Annotated[str, typer.Option(help="field/column holding the text in JSONL or table input")] = "text",
    out: Annotated[Path | None, typer.Option(help="write JSONL here instead of stdout")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Predict labels for new texts; writes one JSON object per line (label, score, top-k).

    Under ``accelerate launch --multi_gpu --num_processes N`` with ``--out`` the rows are shared out
    across the N processes and merged back into one file in input order."""
    from growthcurve.training.inference import Predictor, launched_processes, predict_to_file, read_inputs

    rank, world = launched_processes()
    if world > 1 and not out:
        raise ConfigError(f"{world} launched processes need --out FILE (they merge their shares into it)")
    predictor = Predictor(run, batch_size=batch_size)
    texts = read_inputs(file, text_column)
    if not texts:
        raise DataError(f"no texts to predict in {'stdin' if file == '-' else file}")
    if out:
        n = predict_to_file(predictor, texts, out, top_k=top_k, progress=not quiet)
        if rank == 0:
            console.print(f"wrote {n} predictions to {out}" + (f" ({world} processes)" if world > 1 else ""))
    else:
        rows = predictor.predict(texts, top_k=top_k)
        sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def merge(
    run: Annotated[
        Path,
        typer.Argument(parser=run_folder, metavar="RUN", help="run folder or version of a lora, adalora or freeze run"),
    ],
    out: Annotated[Path | None, typer.Option(help="folder for the plain model (default RUN/merged)")] = None,
) -> None:
    """Fold a LoRA/AdaLoRA run's low-rank updates into the base weights: a plain model folder for export."""
    from growthcurve.training.merge import merge_run

    res = merge_run(run, out)
    console.print(
        f"merged the {res.method} run into {res.out_dir} ({res.bytes_on_disk / 2**20:.1f} MiB of weights); "
        f"it loads like a full fine-tuning run, e.g. growthcurve predict {res.out_dir}"
    )


def register(app: typer.Typer) -> None:
    """Add the model-building commands to the root CLI."""
    app.command()(finetune)
    app.command()(evaluate)
    app.command()(predict)
    app.command()(merge)
