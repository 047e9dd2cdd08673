"""`growthcurve finetune`, `evaluate` and `predict`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    oos_label: Annotated[
        str | None, typer.Option(help="label of out-of-scope rows (default: the run's data.oos_label, else oos)")
    ] = None,
    slice_by: Annotated[
        str | None, typer.Option(help="column to slice by: accuracy/macro-F1 per value with bootstrap intervals")
    ] = None,
    min_slice_rows: Annotated[int, typer.Option(min=2, help="smaller slices: no interval, not compared")] = 30,
    n_boot: Annotated[int, typer.Option(min=100, help="bootstrap resamples per interval")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Evaluate a run's best model on a labelled file: metrics, classification report, confusion matrix;
    out-of-scope rows (AUROC, FPR@95, recall at the threshold) and slices when asked."""
    from growthcurve.training.inference import EvalOptions, evaluate_run

    options = EvalOptions(oos_label, slice_by, min_slice_rows, n_boot, seed)
    res = evaluate_run(run, data, out, text_column, label_column, progress=not quiet, options=options)
    for w in res["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    m = res["metrics"]
    console.print(
        f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
        f"micro-F1 {m['micro_f1']:.4f}  loss {m['loss']:.4f}"
    )
    if "ood" in res:
        _print_ood(res["ood"])
    if "slices" in res:
        _print_slices(res["slices"])
    console.print(f"reports in {res['out_dir']}")


def _print_ood(o: dict[str, Any]) -> None:
    """The out-of-scope lines of `evaluate` (each under 80 columns)."""
    acc = o.get("in_scope_answered_accuracy")
    shown = "–" if acc is None else f"{acc:.4f}"
    console.print(
        f"out of scope: {o['detector']} > {o['threshold']:.4g}; in-scope answered {o['in_scope_answered']:.4f} "
        f"(accuracy {shown})",
        highlight=False,
    )
    if "auroc" in o:
        console.print(
            f"  {o['oos_rows']} out-of-scope rows: AUROC {o['auroc']:.4f}  FPR@95 {o['fpr95']:.4f}  "
            f"recall {o['oos_recall']:.4f}",
            highlight=False,
        )


def _print_slices(s: dict[str, Any]) -> None:
    """One row per slice with its intervals, then the largest gap per metric (flagged when it excludes 0)."""
    pct = f"{s['confidence']:.0%}"
    table = Table(title=f"slices by {s['column']} ({pct} bootstrap intervals, {s['n_boot']} resamples)")
    table.add_column("slice", overflow="ellipsis", max_width=16)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("accuracy", justify="right", no_wrap=True)
    table.add_column("macro-F1", justify="right", no_wrap=True)

    def cell(r: dict[str, Any], key: str) -> str:
        ci = r.get(f"{key}_ci")
        return f"{r[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " (few rows)")

    for r in s["slices"]:
        table.add_row(r["value"], str(r["rows"]), cell(r, "accuracy"), cell(r, "macro_f1"))
    console.print(table)
    for name, g in s["gaps"].items():
        flag = "[red]FLAGGED[/] (excludes 0)" if g["flagged"] else "includes 0"
        pair = f"{g['best'][:12]} vs {g['worst'][:12]}"
        console.print(
            f"{name} gap {g['gap']:.3f} ({pair}) \\[{g['ci'][0]:.3f}, {g['ci'][1]:.3f}] {flag}", highlight=False
        )
    if s["too_small"]:
        names = ", ".join(s["too_small"][:5]) + (" ..." if len(s["too_small"]) > 5 else "")
        console.print(
            f"[yellow]warning:[/] {len(s['too_small'])} slice(s) under {s['min_rows']} rows "
            f"(no interval, not compared): {names}",
            highlight=False,
        )


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
    explain: Annotated[
        bool, typer.Option("--explain", help="per-word attributions of the predicted label (text classifiers)")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Predict labels for new texts; writes one JSON object per line (label, score, top-k, out-of-scope verdict,
    and with --explain the per-word attributions).

    Under ``accelerate launch --multi_gpu --num_processes N`` with ``--out`` the rows are shared out
    across the N processes and merged back into one file in input order."""
    from growthcurve.training.inference import Predictor, launched_processes, predict_to_file, read_inputs

    rank, world = launched_processes()
    if world > 1 and not out:
        raise ConfigError(f"{world} launched processes need --out FILE (they merge their shares into it)")
    if explain:
        from growthcurve.training.explain import check_explainable
        from growthcurve.training.runfolder import read_meta

        check_explainable(read_meta(run)[1])  # before loading anything: an image/token/int8 run says why
    predictor = Predictor(run, batch_size=batch_size)
    texts = read_inputs(file, text_column)
    if not texts:
        raise DataError(f"no texts to predict in {'stdin' if file == '-' else file}")
    if out:
        n = predict_to_file(predictor, texts, out, top_k=top_k, progress=not quiet, explain=explain)
        if rank == 0:
            console.print(f"wrote {n} predictions to {out}" + (f" ({world} processes)" if world > 1 else ""))
    else:
        rows = predictor.predict(texts, top_k=top_k, explain=explain)
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


ood_app = typer.Typer(help="Out-of-scope detectors of text-classification runs.", no_args_is_help=True)


@ood_app.command("fit")
def ood_fit(
    run: Annotated[Path, typer.Argument(help="run folder of a single-label text-classification run")],
    train: Annotated[str | None, typer.Option(help="training file (default: the one in RUN/config.yaml)")] = None,
    dev: Annotated[str | None, typer.Option(help="dev file (default: the run's dev split)")] = None,
    oos_label: Annotated[
        str | None, typer.Option(help="rows with this label in train/dev are out-of-scope examples")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="refit a detector the run already has")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Fit and save a run's out-of-scope detector (class statistics on train, threshold on dev): for runs made
    before detectors, or to refit one."""
    from growthcurve.training.ood import fit_detector_for_run

    det, report = fit_detector_for_run(run, train, dev, overwrite, oos_label, progress=not quiet)
    console.print(
        f"out-of-scope detector {det.detector} (threshold {det.threshold:.4g}, {det.info['threshold_rule']}) "
        f"saved in {run / 'model'}",
        highlight=False,
    )
    for split, o in report.items():
        console.print(f"[bold]{split}[/]", highlight=False)
        _print_ood(o)


def register(app: typer.Typer) -> None:
    """Add the model-building commands to the root CLI."""
    app.command()(finetune)
    app.command()(evaluate)
    app.command()(predict)
    app.command()(merge)
    app.add_typer(ood_app, name="ood")
