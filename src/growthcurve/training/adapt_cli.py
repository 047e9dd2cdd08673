"""`growthcurve adapt DATA`: masked-LM adaptation of an encoder on unlabelled texts, written as a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from growthcurve.errors import ConfigError

console = Console()


def adapt(
    data: Annotated[Path, typer.Argument(help="unlabelled texts: .txt (one a line), .csv/.tsv/.jsonl, .conll")],
    out: Annotated[Path, typer.Option(help="model folder to write (encoder + tokenizer)")] = Path("runs/adapted"),
    model: Annotated[str, typer.Option(help="base encoder: a local folder or 'minilm'")] = "minilm",
    steps: Annotated[int | None, typer.Option(help="masked-LM steps (default 200 unless --minutes)")] = None,
    minutes: Annotated[float | None, typer.Option(help="stop after this many minutes")] = None,
    column: Annotated[str, typer.Option(help="text column of a CSV/JSONL file")] = "text",
    extend_vocab: Annotated[
        bool | None, typer.Option("--extend-vocab/--no-extend-vocab", help="add missing characters (default: auto)")
    ] = None,
    new_rows_init: Annotated[str, typer.Option(help="mean_noise, pieces or cooc (docs/chinese.md)")] = "cooc",
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float, typer.Option("--lr", min=0.0)] = 2e-4,
    max_length: Annotated[int, typer.Option(min=8, max=4096)] = 128,
    seed: int = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="no progress bar")] = False,
) -> None:
    """Teach an encoder the words of your domain before fine-tuning (task-adaptive pretraining).

    Adds the characters its vocabulary misses (Chinese), trains it with a masked-LM head on DATA, and writes a
    folder that `finetune --set model.name_or_path=OUT` uses as its base model.
    """
    import torch

    from growthcurve.models.adapt import DEFAULT_MINUTES, DEFAULT_STEPS, adapt_mlm, read_texts
    from growthcurve.models.hf import load_tokenizer, resolve_model_path
    from growthcurve.models.vocab import INITS
    from growthcurve.models.vocab import extend_vocab as extend
    from growthcurve.training.hardware import resolve_precision

    if new_rows_init not in INITS:
        raise ConfigError(f"--new-rows-init '{new_rows_init}': use {', '.join(INITS)}")
    if steps is not None and steps < 1:
        raise ConfigError("--steps must be at least 1")
    if minutes is not None and minutes <= 0:
        raise ConfigError("--minutes must be positive")
    if threads:
        torch.set_num_threads(threads)
    if steps is None and minutes is None:
        steps, minutes = DEFAULT_STEPS, DEFAULT_MINUTES
    texts = read_texts(data, column)
    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    ext = extend(extend_vocab, tokenizer, texts, seed=seed, init=new_rows_init)
    console.print(ext.message())
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    _, res = adapt_mlm(
        path, tokenizer, texts, out, steps=steps, minutes=minutes, batch_size=batch_size,
        learning_rate=learning_rate, max_length=max_length, seed=seed, bf16=bf16, resize=ext.resize,
        progress=not quiet,
    )  # fmt: skip
    table = Table(title=f"masked-LM adaptation -> {res.path}")
    for col in ("texts", "added characters", "steps", "seconds", "MLM loss before", "MLM loss after"):
        table.add_column(col, justify="right")
    table.add_row(
        str(res.texts), str(len(ext.added)), f"{res.steps} ({res.stopped_by})", f"{res.seconds:.0f}",
        f"{res.loss_before:.3f}", f"{res.loss_after:.3f}",
    )  # fmt: skip
    console.print(table)
    console.print(f"use it: growthcurve finetune --set model.name_or_path={res.path}")


def register(app: typer.Typer) -> None:
    """Add `growthcurve adapt` to the root CLI."""
    app.command()(adapt)
