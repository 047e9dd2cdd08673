"""`growthcurve compress`: prune a run (optionally recover with a short fine-tune, optionally int8) into a new run.

The output (default ``RUN-pruned/`` next to the run) is an ordinary run folder — ``model/``, ``config.yaml``,
``compress.json`` — that `load_run`, `predict`, `evaluate`, `export` and `serve` read like any other.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from growthcurve.atomic import check_output_dir, write_json
from growthcurve.compression import prune as P
from growthcurve.compression.measure import accuracy, cpu_info, run_test_examples, texts_per_second, torch_proba
from growthcurve.compression.onnx import _SAMPLE_TEXTS
from growthcurve.errors import ConfigError, ModelError

STRUCTURED = ("neurons", "heads")
QUANTIZE = ("dynamic-int8",)
REPORT_FILE = "compress.json"
# Learning rate of a recovery fine-tune when the run was trained with a PEFT method, whose own rate
# (LoRA 3e-3, adapters 1e-2) would wreck full fine-tuning of the merged, pruned model.
RECOVER_LR_AFTER_PEFT = 5e-5


@dataclass
class CompressResult:
    """Where the compressed run went and its before/after report (the content of ``compress.json``)."""

    out_dir: Path
    report: dict[str, Any]
    ref: str | None = None  # the model version the compressed run became (intents@v4), None when not recorded


def default_out(run_dir: Path) -> Path:
    """``RUN-pruned`` next to ``RUN``."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f"{run_dir.name}-pruned"


def _check_out(run_dir: Path, out: Path) -> None:
    """Refuse an output inside or over the run, or over an existing folder."""
    r, o = run_dir.resolve(), out.resolve()
    if o == r or r in o.parents:
        raise ConfigError(f"--out '{out}' is inside or over the run '{run_dir}'; compress writes a new run next to it")
    check_output_dir(out, run_dir, marker=REPORT_FILE, finished="a finished compressed run", replace_finished=False)


def _load_plain(run_dir: Path, work: Path, meta: dict[str, Any]) -> Any:
    """The run loaded as a plain model (LoRA/AdaLoRA/freeze runs merged first), fp32, eval mode."""
    from growthcurve.training.runfolder import load_run

    if meta.get("method", "full") != "full":
        from growthcurve.training.merge import merge_run

        merge_run(run_dir, work / "merged")  # refuses prefix/adapter runs with its own reason
        run = load_run(work / "merged", int8=False)
    else:
        run = load_run(run_dir, int8=False)
    run.model.float().eval()
    return run


def _measure(
    model: Any, tokenizer: Any, meta: dict[str, Any], sample: list[str], test: tuple | None, batch_size: int
) -> dict[str, Any]:
    """Accuracy on the test split (when there is one), texts/s on the fixed sample, parameter counts."""
    from growthcurve.models.build import count_parameters

    max_length, multi = int(meta["max_length"]), bool(meta.get("multi_label"))

    def run(texts: list[str]) -> np.ndarray:
        return torch_proba(model, tokenizer, texts, max_length, multi, batch_size)

    out: dict[str, Any] = {
        "texts_per_s": texts_per_second(run, sample, batch_size),
        "state_dict_bytes": P.state_dict_bytes(model),
    }
    if not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules()):
        out["parameters"] = count_parameters(model)[1]
        out["nonzero_parameters"] = P.nonzero_parameters(model)
        out["encoder_linear_sparsity"] = P.sparsity(model)
    out["test_accuracy"] = accuracy(run(test[1]), test[2], multi) if test else None
    return out


def compress_run(
    run_dir: str | Path,
    amount: float,
    structured: str | None = None,
    recover_epochs: float = 0,
    recover_lr: float | None = None,
    quantize: str | None = None,
    out_dir: str | Path | None = None,
    sample_size: int = 256,
    batch_size: int = 32,
    progress: bool = True,
) -> CompressResult:
    """Prune ``run_dir`` by ``amount`` into a new run folder and report size, speed and accuracy before/after.

    Unstructured: global L1 magnitude pruning of the encoder's Linear weights. ``structured="neurons"``: the
    lowest-norm feed-forward neurons are cut out. ``recover_epochs`` > 0 fine-tunes the pruned model through
    the ordinary training loop; unstructured masks are re-applied afterwards, so the asked sparsity holds.
    """
    from growthcurve.training.runfolder import load_run, read_meta, write_model_folder

    amount = P.check_amount(amount)
    if structured == "heads":
        raise ConfigError(P.HEADS_UNAVAILABLE)
    if structured is not None and structured not in STRUCTURED:
        raise ConfigError(f"--structured '{structured}' is unknown; choose one of: {', '.join(STRUCTURED)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"--quantize '{quantize}' is unknown; choose one of: {', '.join(QUANTIZE)}")
    if recover_epochs < 0:
        raise ConfigError(f"--recover-epochs must be >= 0, got {recover_epochs}")
    run_dir = Path(run_dir)
    _, meta, labels = read_meta(run_dir)
    if meta.get("task", "text-classification") != "text-classification" or meta.get("model_type") != "transformer":
        raise ModelError(
            f"cannot compress '{run_dir}': compress covers transformer text-classification runs "
            f"(this one is task={meta.get('task')}, model_type={meta.get('model_type')})"
        )
    if not (run_dir / "model").is_dir():
        raise ModelError(f"'{run_dir}' is a model folder, not a run folder; pass the run folder that holds model/")
    out = Path(out_dir) if out_dir else default_out(run_dir)
    _check_out(run_dir, out)
    test = run_test_examples(run_dir, labels)
    pool = test[1] if test else _SAMPLE_TEXTS
    sample = [pool[i % len(pool)] for i in range(sample_size)]
    say = print if progress else (lambda *a, **k: None)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory(prefix="gc-compress-") as work_s:
            work = Path(work_s)
            run = _load_plain(run_dir, work, meta)
            plain_meta = run.meta
            say("measuring the run before pruning...", flush=True)
            before = _measure(run.model, run.tokenizer, plain_meta, sample, test, batch_size)
            model = run.model
            masks: dict[str, torch.Tensor] | None = None
            if structured == "neurons":
                width = P.prune_ffn_neurons(model, amount)
                pruning = {"kind": "ffn-neurons", "amount": amount, "intermediate_size": width}
            else:
                masks = P.magnitude_prune(model, amount)
                pruning = {"kind": "global-unstructured-l1", "amount": amount, "scope": "encoder Linear weights"}
            out_meta = {
                **plain_meta,
                "method": "full",
                "compressed_from": str(run_dir),
                "pruning": pruning,
                # a dynamically quantised model cannot be written with save_pretrained: the folder keeps
                # the fp32 weights and load_run applies quantize_dynamic on Linear when it sees this flag
                "quantize_dynamic_int8": quantize == "dynamic-int8",
            }
            recovery: dict[str, Any] | None = None
            if recover_epochs > 0:
                recovery = _recover(
                    run_dir, work, tmp, model, run.tokenizer, labels, plain_meta, recover_epochs, recover_lr, progress
                )
                model = load_run(tmp, int8=False).model.float().eval()
                if masks is not None:
                    # the training loop builds its own model from the folder, so prune masks cannot ride
                    # along as forward hooks; re-applying them after recovery keeps exactly the asked zeros
                    P.apply_masks(model, masks)
                shutil.rmtree(tmp / "checkpoints", ignore_errors=True)  # resume state of a finished run
            else:
                tmp.mkdir()
                if (run_dir / "config.yaml").is_file():
                    shutil.copy2(run_dir / "config.yaml", tmp / "config.yaml")
            write_model_folder(tmp / "model", model, run.tokenizer, labels, out_meta)
            reloaded = load_run(tmp, int8=False)  # the stored fp32 model; predict/evaluate/serve add int8 on load
            say("measuring the pruned run...", flush=True)
            after = _measure(reloaded.model.float().eval(), reloaded.tokenizer, out_meta, sample, test, batch_size)
            after["safetensors_bytes"] = (tmp / "model" / "model.safetensors").stat().st_size
            rows = {"before": before, "pruned": after}
            if quantize == "dynamic-int8":
                q = P.quantize_dynamic_int8(reloaded.model)
                rows["pruned+int8"] = _measure(q, reloaded.tokenizer, out_meta, sample, test, batch_size)
            report = {
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "source_run": str(run_dir),
                "pruning": pruning,
                "recovery": recovery,
                "quantize": quantize,
                "speed": {
                    "sample_texts": len(sample),
                    "batch_size": batch_size,
                    "torch_threads": torch.get_num_threads(),
                },
                "test": {"path": test[0], "n": len(test[1])} if test else None,
                "rows": rows,
                "torch": torch.__version__,
                "cpu": cpu_info(),
                "note": "timings are single passes on a shared machine: noisy",
            }
            write_json(tmp / REPORT_FILE, report)  # last: its presence marks a finished compressed run
        if out.exists():
            out.rmdir()  # an empty folder (checked above)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return CompressResult(out, report, _register(run_dir, out, report))


def _register(run_dir: Path, out: Path, report: dict[str, Any]) -> str | None:
    """Record the compressed run as the next version of its source's model, the source version as parent;
    a store that cannot be written costs one warning, never the compressed run."""
    import sys

    from growthcurve.errors import GrowthcurveError
    from growthcurve.store.lineage import version_by_fingerprint, version_of_folder
    from growthcurve.store.registry import finish_run, start_run, version_ref
    from growthcurve.training.runfolder import MODEL_DIR, model_version, read_meta

    try:
        src_dir, meta, _labels = read_meta(run_dir)
        fp = model_version(src_dir)
        src = version_of_folder(run_dir, fp) or version_by_fingerprint(fp)
        model = src.model if src is not None and src.model else _model_name(run_dir)
        after = report["rows"].get("pruned+int8") or report["rows"]["pruned"]
        metrics = {"test": {"accuracy": after["test_accuracy"]}} if after.get("test_accuracy") is not None else {}
        rid = start_run(
            "compress",
            name=out.name,
            task=meta.get("task"),
            config={"compress": {k: report[k] for k in ("pruning", "recovery", "quantize")}, "source": str(run_dir)},
            artefact=out,
            parent=src.id if src is not None else None,
            model=model,
        )
        version = finish_run(rid, "finished", metrics=metrics, fingerprint=model_version(out / MODEL_DIR))
        return version_ref(model, version)
    except (GrowthcurveError, OSError, KeyError) as exc:
        print(f"warning: the compressed run is not recorded as a model version ({exc})", file=sys.stderr)
        return None


def _model_name(run_dir: Path) -> str:
    """The source run's model name from its config (``name``, else its training data), else its folder name."""
    from growthcurve.config import default_model_name, load_finetune_config

    try:
        return load_finetune_config(run_dir / "config.yaml").model_name
    except Exception:  # a config a newer or older growthcurve wrote: the folder's name still names it
        return default_model_name(str(run_dir.resolve() / "train.csv"))


def _recover(
    run_dir: Path,
    work: Path,
    tmp: Path,
    model: Any,
    tokenizer: Any,
    labels: list[str],
    meta: dict[str, Any],
    epochs: float,
    lr: float | None,
    progress: bool,
) -> dict[str, Any]:
    """Fine-tune the pruned model for ``epochs`` with the run's own config, writing the run into ``tmp``."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.runfolder import write_model_folder

    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise ModelError(
            f"--recover-epochs needs the run's config.yaml (training data, settings); '{cfg_file}' is missing"
        )
    pruned_dir = work / "pruned"
    write_model_folder(pruned_dir, model, tokenizer, labels, {**meta, "method": "full"})
    base = load_finetune_config(cfg_file)
    if lr is None:
        lr = base.train.learning_rate if base.method == "full" else RECOVER_LR_AFTER_PEFT
    cfg = load_finetune_config(
        cfg_file,
        [
            f"model.name_or_path={pruned_dir}",
            "method=full",
            f"train.epochs={epochs}",
            f"train.learning_rate={lr}",
            f"output_dir={tmp}",
            "registry=false",  # the compress row, written when the run is in place, is the one record
        ],
    )
    res = run_finetune(cfg, progress=progress)
    return {"epochs": epochs, "learning_rate": lr, "dev": res.dev, "test_before_remask": res.test}
