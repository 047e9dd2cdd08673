"""`growthcurve merge`: fold a LoRA/AdaLoRA (or freeze) run into a plain model folder, e.g. for export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from growthcurve.errors import ModelError
from growthcurve.models.peft_methods import MERGEABLE, fold_trainable_tokens, task_specific_bytes
from growthcurve.training.runfolder import load_run, read_meta, write_model_folder

# Why a run cannot be merged, one actionable line per method.
_WHY_NOT = {
    "full": "it is a full fine-tuning run: its model folder is already a plain model, use it as is",
    "prefix": (
        "prefix tuning adds learned key/value positions to every attention layer, extra inputs rather than a change "
        "of weights, so there is nothing to fold into the base model; use the run folder as is"
    ),
    "adapter": (
        "bottleneck adapters add a non-linear layer (down-projection, GELU, up-projection) after each sublayer, "
        "which cannot be folded into the existing linear weights; use the run folder as is"
    ),
}


@dataclass
class MergeResult:
    """Where the merged model went and what it came from."""

    out_dir: Path
    method: str
    bytes_on_disk: int


def merge_run(run_dir: str | Path, out_dir: str | Path | None = None) -> MergeResult:
    """Fold the run's low-rank updates into the base weights and write a plain model folder.

    The folder (default ``RUN/merged``) holds config, safetensors weights, tokenizer, labels and
    ``run.json`` with ``method: full``, so `load_run`, `predict` and exporters read it like a full run.
    """
    model_dir, meta, labels = read_meta(run_dir)
    method = meta.get("method", "full")
    if method not in (*MERGEABLE, "freeze"):
        reason = _WHY_NOT.get(method, f"method '{method}' has no merge")
        raise ModelError(f"cannot merge '{run_dir}': {reason} (merge applies to lora, adalora and freeze runs)")
    run = load_run(run_dir)
    wrapped = run.model
    merged = wrapped.model.merge_and_unload() if method in MERGEABLE else fold_trainable_tokens(wrapped.model)
    merged.eval()
    out = Path(out_dir) if out_dir else model_dir.parent / "merged"
    merged_meta = {**meta, "method": "full", "merged_from": method, "merged_run": str(run_dir)}
    write_model_folder(out, merged, run.tokenizer, labels, merged_meta)
    return MergeResult(out, method, task_specific_bytes(out))
