"""The shared optimisation loop on `accelerate`: batching, bf16 autocast, clipping, schedules,
checkpoints, resume after an interruption with identical results, early stopping.

Recipes (text, token and image classification, baselines, PEFT variants) prepare data and model, then
call `fit` with one `FitHooks` bundle: how to batch rows, how to compute the loss of a batch, how to
validate, how to save the best model. The loop runs unchanged under `accelerate launch` (DDP): each
process takes every world-th batch.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from growthcurve.atomic import atomic_path, write_json
from growthcurve.config import FinetuneConfig
from growthcurve.data.fingerprint import data_fingerprint
from growthcurve.errors import ConfigError, DivergedError, GrowthcurveError
from growthcurve.training.batching import collate, plan_batches
from growthcurve.training.compile import compile_regions, compile_report

log = logging.getLogger(__name__)

CHECKPOINT = Path("checkpoints") / "last.pt"

EpochCallback = Callable[[int, dict[str, float] | None], None]
_EPOCH_CALLBACKS: ContextVar[tuple[EpochCallback, ...]] = ContextVar("growthcurve_epoch_callbacks", default=())


@contextmanager
def on_epoch_end(callback: EpochCallback) -> Iterator[None]:
    """Call ``callback(epoch, dev_metrics)`` on the main process after each epoch's validation, for any fit
    run inside the block (hyperparameter search prunes from it). An exception it raises (e.g.
    ``optuna.TrialPruned``) stops the fit and propagates. A context variable rather than a recipe argument,
    so no recipe signature changes for an observer."""
    token = _EPOCH_CALLBACKS.set((*_EPOCH_CALLBACKS.get(), callback))
    try:
        yield
    finally:
        _EPOCH_CALLBACKS.reset(token)


class Interrupted(GrowthcurveError):
    """Training stopped by Ctrl-C/SIGTERM after saving a checkpoint."""

    exit_code = 130


@dataclass
class FitOutcome:
    """What the loop did: history per epoch, the best epoch, timing, and what `finish_run` records with it."""

    history: list[dict[str, Any]]
    best_epoch: int
    global_step: int
    train_seconds: float
    samples_seen: int
    sparse_embeddings: bool = False
    warnings: list[str] = field(default_factory=list)  # e.g. "the model is not learning" (metrics.json warnings)
    epochs_run: float | None = None  # optimiser steps / steps per epoch; None: one per history entry
    compile: dict[str, Any] | None = None  # train.compile's report; None where no loop ran (TF-IDF)

    @property
    def samples_per_s(self) -> float:
        return self.samples_seen / max(self.train_seconds, 1e-9)


class TrainRows(Protocol):
    """What the loop needs of a training set: its size and each row's length (it plans length-bucketed batches
    from them and hands the chosen row indices to ``FitHooks.collate``). Token ids (`Encoded`), word rows and
    image rows (all of length 1) all qualify."""

    @property
    def lengths(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


@dataclass
class FitHooks:
    """What a recipe tells the loop: batch rows, score a batch, validate the model, save the best one."""

    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    validate: Callable[[torch.nn.Module], dict[str, float] | None]
    save_best: Callable[[torch.nn.Module], None]
    collate: Callable[[Any, np.ndarray, int], dict[str, torch.Tensor]] = collate  # (rows, indices, pad id)
    pad_id: int = 0


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def config_fingerprint(cfg: FinetuneConfig) -> dict[str, Any]:
    """The parts of the config a resumed run must share with the interrupted one, and the fingerprints of
    its data files (same paths with other contents must not resume either)."""
    data = cfg.model_dump(mode="json")
    data.pop("resume", None)
    data.pop("output_dir", None)
    data.pop("registry", None)  # where the run is recorded and logged does not change its results
    data.pop("name", None)  # nor which model lineage its version is filed under
    data["train"].pop("report_to", None)
    data["train"].pop("checkpoint_every_steps", None)
    data.pop("ood", None)  # the out-of-scope detector is fitted after training: it never changes the weights
    if data["data"].get("oos_label") is None:  # unset: a checkpoint made before the key existed still resumes
        data["data"].pop("oos_label", None)
    data["data_files"] = data_fingerprint([cfg.data.train, cfg.data.dev, cfg.data.test])
    return data


def load_checkpoint(cfg: FinetuneConfig) -> dict[str, Any] | None:
    """The run folder's last checkpoint when resuming; a stale one is removed when ``resume=false``."""
    path = Path(cfg.output_dir) / CHECKPOINT
    if not path.exists():
        return None
    if not cfg.resume:
        path.unlink()
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a truncated file cannot happen with atomic writes, but a foreign one can
        raise ConfigError(f"checkpoint '{path}' is unreadable; delete it or set resume=false") from None
    saved, now = state.get("fingerprint") or {}, config_fingerprint(cfg)
    if saved != now:
        same_config = {k: v for k, v in saved.items() if k != "data_files"} == {
            k: v for k, v in now.items() if k != "data_files"
        }
        what = "other contents in its data files" if same_config else "a different config"
        raise ConfigError(
            f"'{cfg.output_dir}' holds a run with {what}; pick another output_dir or set resume=false to start over"
        )
    return state


def param_groups(model: torch.nn.Module, weight_decay: float, exclude: torch.Tensor | None) -> list[dict[str, Any]]:
    """AdamW groups as in BERT: no decay on biases and LayerNorm weights; ``exclude`` left out."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad or p is exclude:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def sparse_embedding(model: torch.nn.Module, mode: str, world: int) -> torch.nn.Embedding | None:
    """The word-embedding table to update lazily (sparse gradient + SparseAdam), or None.

    On a small encoder the dense gradient and AdamW update of the ~30k x H embedding table cost a large
    share of each CPU step although a batch touches a few hundred rows (MiniLM-L6 on BANKING77, AMX, bf16:
    ~100 samples/s with the table trained densely, ~138 with it frozen).
    """
    if mode == "off":
        return None
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    ok = isinstance(emb, torch.nn.Embedding) and emb.weight.requires_grad and world == 1
    if mode == "on" and not ok:
        raise ConfigError("train.sparse_embeddings=on needs a trainable nn.Embedding and a single process")
    if not ok or not isinstance(emb, torch.nn.Embedding) or (mode == "auto" and emb.num_embeddings < 8192):
        return None
    emb.sparse = True
    return emb


def embedding_rows(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The word-embedding parameters that train: the dense table when it is trainable, else the rows PEFT
    trains as trainable tokens (``trainable_tokens_delta``: a PEFT run's added characters)."""
    get = getattr(model, "get_input_embeddings", None)
    w = getattr(get() if callable(get) else None, "weight", None)
    if isinstance(w, torch.nn.Parameter) and w.requires_grad:
        return [w]
    return [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n and p.requires_grad]


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Global-norm clipping that also handles a sparse embedding gradient.

    torch.nn.utils.clip_grad_norm_ does not accept sparse COO gradients, hence this small version.
    """
    dense = [p.grad for p in params if p.grad is not None and not p.grad.is_sparse]
    norms = list(torch._foreach_norm(dense)) if dense else []
    sq = torch.stack(norms).float().square().sum() if dense else torch.zeros(())
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            sq = sq + p.grad._values().float().square().sum()
    total = float(sq.sqrt())
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        if dense:
            torch._foreach_mul_(dense, coef)
        for p in params:
            if p.grad is not None and p.grad.is_sparse:
                p.grad.mul_(coef)
    return total


@contextmanager
def stop_on_signals() -> Iterator[dict[str, bool]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks at step boundaries, so a checkpoint is saved."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not in the main thread: no handlers, the flag never flips
        previous = {}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def score_of(metrics: dict[str, float], name: str) -> float:
    """Higher is better for every early-stopping metric (loss is negated)."""
    if name == "loss":
        return -metrics["loss"]
    if name not in metrics:
        raise ConfigError(f"train.early_stopping_metric '{name}' is not computed for this task ({', '.join(metrics)})")
    return metrics[name]


@dataclass
class _Optimisation:
    """The optimisers, their schedules and the step budget (`_setup_optimisation`), with the model as
    accelerate prepared it."""

    model: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]
    sparse: bool  # the word-embedding table trains with sparse gradients and SparseAdam
    trainable: list[torch.nn.Parameter]
    step_hook: Callable[[int, int], None] | None  # the model's own hook after each step (AdaLoRA's rank budget)
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int


def _new_best() -> dict[str, Any]:
    return {"metric": -math.inf, "loss": math.inf, "epoch": -1, "bad_epochs": 0}


def _new_stall() -> dict[str, Any]:
    return {"first": [], "recent": [], "warnings": []}


@dataclass
class _Progress:
    """Where the loop stands and what it has seen: everything a checkpoint holds besides the weights, the
    optimiser and scheduler states and the RNGs."""

    global_step: int = 0
    epoch: int = 0  # the epoch to resume in, and the batch of it to resume at
    batch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=_new_best)
    epoch_loss: list[float] = field(default_factory=lambda: [0.0, 0])  # loss sum and rows of the current epoch
    train_seconds: float = 0.0
    samples_seen: int = 0
    # "not learning" check: first/recent per-step losses; warnings go to the console and metrics.json
    stall: dict[str, Any] = field(default_factory=_new_stall)


@dataclass
class _Loop:
    """What stays fixed while the loop runs: the config, the prepared model and optimisers, the recipe's hooks,
    the data, where checkpoints go and how this process sits among the others."""

    tc: Any  # cfg.train
    accelerator: Any
    opt: _Optimisation
    train: TrainRows
    hooks: FitHooks
    bf16: bool
    compiled: Any
    writer: Any  # the accelerator when the main process logs to trackers, else None
    run_dir: Path
    fingerprint: dict[str, Any]
    stop_after_steps: int | None

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def world(self) -> int:
        return int(self.accelerator.num_processes)


def fit(
    cfg: FinetuneConfig,
    accelerator: Any,
    model: torch.nn.Module,
    train: TrainRows,
    hooks: FitHooks,
    state: dict[str, Any] | None = None,
    bf16: bool = False,
    progress: bool = True,
    stop_after_steps: int | None = None,
) -> FitOutcome:
    """Train ``model`` on ``train`` (a `TrainRows`: ``len()`` and ``.lengths``) as ``cfg.train`` says; validate
    and keep the best after each epoch.

    ``hooks.validate`` returns dev metrics (or None without a dev split: the last epoch is kept);
    ``hooks.save_best`` writes the model; ``state`` is a checkpoint from `load_checkpoint`;
    ``stop_after_steps`` simulates an interruption (tests of resume).

    Read top to bottom as torchtune's recipes: compile → optimisers and schedule → restore → epochs (train,
    then validate and keep the best) → outcome. The order matters: the optimisers are built on the compiled
    model, and the RNG states are restored after accelerate has prepared it, as the interrupted run had them.
    """
    tc = cfg.train
    main = accelerator.is_main_process
    # train.compile=regions for every recipe: the repeated layers compile in place, or one warning says why not
    compiled = compile_regions(model, tc.compile, lambda m: tqdm.write(f"warning: {m}") if main else None)
    opt = _setup_optimisation(cfg, accelerator, model, len(train))
    p = _restore(state, opt, accelerator) if state is not None else _Progress()
    if state is not None and main:
        tqdm.write(f"resuming {cfg.output_dir} at epoch {p.epoch + 1}, step {p.global_step}/{opt.total_steps}")
    loop = _Loop(
        tc=tc,
        accelerator=accelerator,
        opt=opt,
        train=train,
        hooks=hooks,
        bf16=bf16,
        compiled=compiled,
        writer=accelerator if main and accelerator.trackers else None,  # train.report_to, started by the recipe
        run_dir=Path(cfg.output_dir),
        fingerprint=config_fingerprint(cfg),
        stop_after_steps=stop_after_steps,
    )

    # ---- epochs
    n_epochs = math.ceil(opt.total_steps / opt.steps_per_epoch)
    start_epoch = p.epoch
    stop_early = p.best["bad_epochs"] >= (tc.early_stopping_patience or math.inf)
    bar = tqdm(
        total=opt.total_steps,
        initial=p.global_step,
        desc="train",
        unit="step",
        disable=not (progress and main),
        dynamic_ncols=True,
    )
    with stop_on_signals() as flag:
        for epoch in range(start_epoch, n_epochs):
            if stop_early or (p.global_step >= opt.total_steps and epoch > start_epoch):
                break
            _train_epoch(loop, p, epoch, p.batch if epoch == start_epoch else 0, flag, bar)
            if main:
                stop_early = _end_epoch(loop, p, epoch, bar)
            accelerator.wait_for_everyone()
            if loop.world > 1:  # only the main process validates: it tells the others when early stopping ends it
                from accelerate.utils import broadcast_object_list

                stop_early = broadcast_object_list([stop_early])[0]
    bar.close()  # the trackers stay open: the recipe logs the best model's test metrics, then ends them

    if p.stall["warnings"] and _fell_since(p.stall, opt.model):
        # a plateau, not a dead run (random-init models often sit at chance for a while): do not record it
        if main:
            tqdm.write("note: the train loss fell after the not-learning warning; it is not kept in metrics.json")
        p.stall["warnings"] = []
    return FitOutcome(
        history=p.history,
        best_epoch=p.best["epoch"],
        global_step=p.global_step,
        train_seconds=p.train_seconds,
        samples_seen=p.samples_seen,
        sparse_embeddings=opt.sparse,
        warnings=list(p.stall["warnings"]),
        epochs_run=round(p.global_step / opt.steps_per_epoch, 4),
        compile=compile_report(compiled),
    )


def _setup_optimisation(cfg: FinetuneConfig, accelerator: Any, model: torch.nn.Module, rows: int) -> _Optimisation:
    """Fused AdamW (no decay on biases and LayerNorm; the embedding rows in a group of their own at
    ``train.embedding_lr_scale``), SparseAdam for a sparse word-embedding table, linear warm-up and decay over
    the step budget, and the model and optimisers prepared by accelerate."""
    tc = cfg.train
    world, main = accelerator.num_processes, accelerator.is_main_process
    sparse = sparse_embedding(model, tc.sparse_embeddings, world)
    sparse_param = sparse.weight if sparse is not None else None
    groups = param_groups(model, tc.weight_decay, sparse_param)
    if not any(g["params"] for g in groups) and sparse_param is None:
        raise ConfigError("nothing to train: every parameter of the model is frozen")
    emb_lr = tc.learning_rate * tc.embedding_lr_scale
    if sparse_param is None and tc.embedding_lr_scale != 1.0:
        # the trained embedding rows in a group of their own, at their own rate (no decay, as below)
        emb_rows = embedding_rows(model)
        if not emb_rows:
            raise ConfigError(
                f"train.embedding_lr_scale={tc.embedding_lr_scale:g} has nothing to act on: the word-embedding "
                "table is frozen and no added rows train (set it to 1, or train the embeddings)"
            )
        ids = {id(p) for p in emb_rows}
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in ids]} for g in groups]
        groups.append({"params": emb_rows, "weight_decay": 0.0, "lr": emb_lr})
    device = accelerator.device
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(groups, lr=tc.learning_rate, fused=device.type in ("cpu", "cuda"))
    ]
    if sparse_param is not None:
        # Lazy Adam on the rows a batch touches (no weight decay on embeddings, as many BERT recipes do).
        optimizers.append(torch.optim.SparseAdam([sparse_param], lr=emb_lr))
    batches_per_epoch = rows // (tc.batch_size * world) or 1
    steps_per_epoch = math.ceil(batches_per_epoch / tc.grad_accum_steps)
    total_steps = math.ceil(tc.epochs * steps_per_epoch)
    if tc.max_steps:
        total_steps = min(total_steps, tc.max_steps)
    elif main and abs(total_steps - tc.epochs * steps_per_epoch) > 1e-9:
        # a fractional epoch count runs whole optimiser steps: say how many, never round silently
        tqdm.write(
            f"note: train.epochs={tc.epochs:g} of {steps_per_epoch} step(s) each runs {total_steps} steps "
            f"({total_steps / steps_per_epoch:g} epochs)"
        )
    from transformers import get_linear_schedule_with_warmup

    warmup = int(round(tc.warmup_ratio * total_steps))
    schedulers = [get_linear_schedule_with_warmup(o, warmup, total_steps) for o in optimizers]
    model, *optimizers = accelerator.prepare(model, *optimizers)
    return _Optimisation(
        model=model,
        optimizers=optimizers,
        schedulers=schedulers,
        sparse=sparse_param is not None,
        trainable=[p for p in model.parameters() if p.requires_grad],
        step_hook=getattr(accelerator.unwrap_model(model), "on_optimizer_step", None),
        batches_per_epoch=batches_per_epoch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    )


def _restore(state: dict[str, Any], opt: _Optimisation, accelerator: Any) -> _Progress:
    """Put a checkpoint back: weights, optimiser and scheduler states, the RNGs, and where the loop stood."""
    accelerator.unwrap_model(opt.model).load_state_dict(state["model"])
    for o, s in zip(opt.optimizers, state["optimizers"], strict=True):
        o.load_state_dict(s)
    for sch, s in zip(opt.schedulers, state["schedulers"], strict=True):
        sch.load_state_dict(s)
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    return _Progress(
        global_step=state["global_step"],
        epoch=state["epoch"],
        batch=state["batch"],
        history=state["history"],
        best=state["best"],
        epoch_loss=state["epoch_loss"],
        train_seconds=state["train_seconds"],
        samples_seen=state["samples_seen"],
        stall=state.get("stall", _new_stall()),
    )


def _checkpoint(loop: _Loop, p: _Progress, epoch: int, batch: int) -> None:
    """Write ``checkpoints/last.pt`` (main process, atomically): resume at ``batch`` of ``epoch``."""
    if not loop.main:
        return
    opt = loop.opt
    payload = {
        "fingerprint": loop.fingerprint,
        "model": loop.accelerator.unwrap_model(opt.model).state_dict(),
        "optimizers": [o.state_dict() for o in opt.optimizers],
        "schedulers": [s.state_dict() for s in opt.schedulers],
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "global_step": p.global_step,
        "epoch": epoch,
        "batch": batch,
        "history": p.history,
        "best": p.best,
        "epoch_loss": p.epoch_loss,
        "train_seconds": p.train_seconds,
        "samples_seen": p.samples_seen,
        "stall": p.stall,
    }
    with atomic_path(loop.run_dir / CHECKPOINT) as tmp:
        torch.save(payload, tmp)


def _forward_backward(loop: _Loop, batch: dict[str, torch.Tensor], labels: torch.Tensor, last_micro: bool) -> Any:
    """One micro-batch's loss and gradients (gradients synchronised across processes on the last one only)."""
    model, accelerator = loop.opt.model, loop.accelerator
    with nullcontext() if last_micro else accelerator.no_sync(model):
        with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=loop.bf16):
            logits = model(**batch).logits
        loss = loop.hooks.loss(logits.float(), labels)
        accelerator.backward(loss / loop.tc.grad_accum_steps)
    return loss


def _clear_grads(loop: _Loop) -> None:
    for o in loop.opt.optimizers:
        o.zero_grad(set_to_none=True)


def _stop(loop: _Loop, bar: Any, error: GrowthcurveError) -> GrowthcurveError:
    """Close the bar and the trackers before ``error`` leaves the loop."""
    bar.close()
    if loop.writer:
        end_trackers(loop.writer)
    return error


def _train_epoch(loop: _Loop, p: _Progress, epoch: int, start_batch: int, flag: dict[str, bool], bar: Any) -> None:
    """The optimiser steps of one epoch from ``start_batch``: accumulate, check the loss, clip, step, log,
    checkpoint; a Ctrl-C/SIGTERM (``flag``) saves a checkpoint and raises `Interrupted`."""
    tc, opt, accelerator, train = loop.tc, loop.opt, loop.accelerator, loop.train
    world, rank, device = loop.world, accelerator.process_index, accelerator.device
    stall_at = int(tc.stall_check * opt.total_steps)
    stall_window = max(1, min(10, stall_at // 2))
    # train.batch_size is per process: each global batch (batch_size x world rows) is planned as one process
    # would plan it and split across the ranks, so N processes at B see the batches one process sees at B x N
    # (equal global batch gives the same updates, up to float summation order)
    plan = plan_batches(train.lengths, tc.batch_size * world, tc.seed, epoch, tc.batching, tc.bucket_size_multiplier)
    if world > 1:  # a bucket's short tail batch may hold fewer rows than processes: no empty share
        plan = [rows[rank::world] for rows in plan if len(rows) >= world]
    plan = plan[: opt.batches_per_epoch]
    opt.model.train()
    t0 = time.perf_counter()
    b = start_batch
    while b < len(plan) and p.global_step < opt.total_steps:
        step_start = tuple(p.epoch_loss)
        for micro in range(tc.grad_accum_steps):
            if b >= len(plan):
                break
            batch = {k: v.to(device) for k, v in loop.hooks.collate(train, plan[b], loop.hooks.pad_id).items()}
            labels = batch.pop("labels")
            last_micro = micro == tc.grad_accum_steps - 1 or b + 1 >= len(plan)
            compiled = loop.compiled
            if compiled is not None and compiled.pending:  # compiles now: timed, falls back to eager
                loss = compiled.first_step(
                    partial(_forward_backward, loop, batch, labels, last_micro), partial(_clear_grads, loop)
                )
            else:
                loss = _forward_backward(loop, batch, labels, last_micro)
            n = len(plan[b])
            p.epoch_loss[0] += float(loss.detach()) * n
            p.epoch_loss[1] += n
            p.samples_seen += n * world
            b += 1
        if world > 1:  # the step's loss over every process's rows: logs, stall check, checkpoint agree
            mine = [p.epoch_loss[0] - step_start[0], p.epoch_loss[1] - step_start[1]]
            total = accelerator.reduce(torch.tensor(mine, dtype=torch.float64, device=device), "sum")
            p.epoch_loss = [step_start[0] + float(total[0]), step_start[1] + int(total[1])]
        step_loss = (p.epoch_loss[0] - step_start[0]) / max(p.epoch_loss[1] - step_start[1], 1)
        if not math.isfinite(step_loss):  # before the update: no nan weight reaches a checkpoint
            raise _stop(
                loop,
                bar,
                DivergedError(
                    f"training diverged: the train loss is {step_loss} at step {p.global_step + 1}/{opt.total_steps} "
                    f"(epoch {epoch + 1}); this step was not applied. Lower train.learning_rate (now "
                    f"{tc.learning_rate:g}), keep train.max_grad_norm at about 1, or set train.precision=fp32"
                ),
            )
        if tc.max_grad_norm:
            clip_grad_norm(opt.trainable, tc.max_grad_norm)
        for o in opt.optimizers:
            o.step()
        for sch in opt.schedulers:
            sch.step()
        if opt.step_hook is not None:
            opt.step_hook(p.global_step, opt.total_steps)
        _clear_grads(loop)
        p.global_step += 1
        bar.update(1)
        if stall_at >= 4:
            warning = _stall_check(
                p.stall, step_loss, p.global_step, stall_at, stall_window, opt.total_steps, tc, opt.model
            )
            if warning and loop.main:
                tqdm.write(f"warning: {warning}")
        if p.global_step % 10 == 0:
            mean_loss = p.epoch_loss[0] / max(p.epoch_loss[1], 1)
            bar.set_postfix(loss=f"{mean_loss:.4f}", epoch=epoch + 1)
            if loop.writer:
                lr = opt.schedulers[0].get_last_lr()[0]
                loop.writer.log({"train/loss": mean_loss, "train/lr": lr}, step=p.global_step)
        interrupted = flag["stop"] or (loop.stop_after_steps is not None and p.global_step >= loop.stop_after_steps)
        if p.global_step % tc.checkpoint_every_steps == 0 or interrupted:
            p.train_seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            _checkpoint(loop, p, epoch, b)
        if interrupted:
            raise _stop(
                loop,
                bar,
                Interrupted(
                    f"stopped at step {p.global_step}/{opt.total_steps}; checkpoint saved in "
                    f"{loop.run_dir / CHECKPOINT}. Run the same command again to resume"
                ),
            )
    p.train_seconds += time.perf_counter() - t0


def _end_epoch(loop: _Loop, p: _Progress, epoch: int, bar: Any) -> bool:
    """Main process, after an epoch: validate, keep the best model, log, checkpoint, tell the epoch observers;
    returns whether early stopping ends the fit."""
    tc, accelerator = loop.tc, loop.accelerator
    entry: dict[str, Any] = {
        "epoch": epoch + 1,
        "step": p.global_step,
        "train_loss": p.epoch_loss[0] / max(p.epoch_loss[1], 1),
        "samples_per_s": p.samples_seen / max(p.train_seconds, 1e-9),
    }
    p.epoch_loss = [0.0, 0]
    line = f"epoch {epoch + 1}: train loss {entry['train_loss']:.4f}"
    with loop.compiled.eager() if loop.compiled is not None else nullcontext():
        dev = loop.hooks.validate(accelerator.unwrap_model(loop.opt.model))
    if dev is not None:
        entry["dev"] = dev
        score = score_of(dev, tc.early_stopping_metric)
        # ties (common on small dev sets) go to the lower dev loss
        best = p.best
        improved = score > best["metric"] or (score == best["metric"] and dev["loss"] < best["loss"])
        shown = " ".join(f"{k} {v:.4f}" for k, v in dev.items() if k in _SHOWN)
        line += f" | dev {shown}" + (" (best)" if improved else "")
        if loop.writer:
            loop.writer.log({f"dev/{k}": v for k, v in dev.items()}, step=p.global_step)
    else:
        improved, score = True, float(epoch)  # no dev split: keep the last epoch
    if improved:
        p.best = {"metric": score, "loss": (dev or {}).get("loss", 0.0), "epoch": epoch + 1, "bad_epochs": 0}
        loop.hooks.save_best(loop.opt.model)
    else:
        p.best["bad_epochs"] += 1
    p.history.append(entry)
    tqdm.write(line)
    write_json(loop.run_dir / "metrics.json", {"epochs": p.history, "best_epoch": p.best["epoch"]})
    stop_early = False
    patience = tc.early_stopping_patience
    if patience and p.best["bad_epochs"] >= patience:
        tqdm.write(f"early stopping: no dev {tc.early_stopping_metric} gain for {patience} epoch(s)")
        stop_early = True
    _checkpoint(loop, p, epoch + 1, 0)
    for callback in _EPOCH_CALLBACKS.get():
        try:
            callback(epoch + 1, dev)
        except BaseException:
            bar.close()
            if loop.writer:
                end_trackers(loop.writer)
            raise
    return stop_early


def _fell_since(stall: dict[str, Any], model: Any) -> bool:
    """Whether the loss of the last steps is clearly (10%) below the start and away from a uniform guess."""
    first, recent = float(np.mean(stall["first"])), float(np.mean(stall["recent"]))
    k = getattr(getattr(model, "config", None), "num_labels", None) or 0
    return math.isfinite(recent) and recent < 0.9 * first and not (k > 1 and recent > 0.9 * math.log(k))


def _stall_check(
    stall: dict[str, Any], loss: float, step: int, at: int, window: int, total: int, tc: Any, model: Any
) -> str | None:
    """Record one step's loss; at step ``at`` return a warning when the loss has not moved from its start.

    "Not moved": the mean of the last ``window`` steps is within 2% of the mean of the first ``window`` (or
    above it), or within 2% of ln(num_labels), the loss of a uniform guess; a non-finite loss counts too. A run
    whose loss starts and stays below half the uniform guess's is not checked: it began from trained weights.
    """
    if len(stall["first"]) < window:
        stall["first"].append(loss)
    stall["recent"] = [*stall["recent"][-(window - 1) :], loss] if window > 1 else [loss]
    if step != at:
        return None
    first, recent = float(np.mean(stall["first"])), float(np.mean(stall["recent"]))
    k = getattr(getattr(model, "config", None), "num_labels", None) or 0
    chance = math.log(k) if k > 1 else None
    if chance is not None and math.isfinite(recent) and first < 0.5 * chance and recent < 0.5 * chance:
        # the run started from weights that already do the task (retrain, a continued run, a task learned in
        # the first steps): a loss that stays low is not a stall
        return None
    near_chance = chance is not None and abs(recent - chance) <= 0.02 * chance
    if math.isfinite(recent) and recent < 0.98 * first and not near_chance:
        return None
    where = f" (ln {k} = {chance:.4f}, a uniform guess)" if near_chance else ""
    msg = (
        f"the model is not learning: train loss {recent:.4f} after {step}/{total} steps ({step / total:.0%} of the "
        f"budget) against {first:.4f} at the start{where}; try a higher train.learning_rate "
        f"(now {tc.learning_rate:g}), more train.epochs, model.adapt=mlm when many characters were added, "
        "or check that the labels match the texts"
    )
    stall["warnings"].append(msg)
    return msg


_SHOWN = ("loss", "accuracy", "macro_f1", "entity_f1", "micro_f1")


def end_trackers(accelerator: Any) -> None:
    """Finish the run's trackers (flush TensorBoard, end the MLflow/W&B run) once; a second call does nothing.
    Not ``accelerator.end_training()``: that also destroys the process group, which the recipe still needs
    after the fit (scoring under ``accelerate launch``, several fits in one process)."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []
