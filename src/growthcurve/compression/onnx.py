"""ONNX export of a run (fp32 + int8) that checks itself against PyTorch, and a predictor that serves it.

``export_onnx("runs/latest", quantize="int8")`` writes ``RUN/onnx/`` (``model.onnx``, ``model.int8.onnx``,
tokenizer, ``labels.json``, ``run.json``, ``export.json``); ``OnnxPredictor("runs/latest")`` reads it back with
the same interface as `growthcurve.training.inference.Predictor`.

The fp32 graph is fused by onnxruntime's transformer optimizer (Attention, SkipLayerNormalization, BiasGelu,
EmbedLayerNormalization) before it is validated and quantised: unfused, onnxruntime runs each attention and
LayerNorm as a dozen small ops, and int8 at batch 32 reached only 1.5x the transformers pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from growthcurve.atomic import check_output_dir, swap_in_dir, write_json
from growthcurve.compression.measure import accuracy, cpu_info, run_test_examples, torch_proba
from growthcurve.errors import ConfigError, ModelError
from growthcurve.evaluation.answer import answer_rows

EXPORT_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_FILE = "export.json"
OPSET = 18  # the torch.export-based exporter's own default opset in torch 2.13
TS_OPSET = 17  # TorchScript exporter: the first opset with LayerNormalization as one op
TOLERANCE = 1e-4  # max abs logit difference allowed between the fp32 ONNX model and PyTorch
EXPORTABLE_TASKS = ("text-classification", "token-classification")
QUANTIZE = ("int8",)

# Texts of varied length for the self-check, used in addition to (or instead of) the run's test split.
_SAMPLE_TEXTS = [
    "hello",
    "I lost my card yesterday and need a new one",
    "what is the exchange rate for euros today?",
    "the movie was great",
    "why was my transfer declined when I had enough money in the account",
    "Paris and Berlin",
    "ok",
    "can you tell me how long it takes for a top-up by bank transfer to show up in my balance, it has been days "
    "and I still see nothing, which is very annoying because I need the money for rent",
]


@dataclass
class ExportResult:
    """Where the export went and how it checked out (the content of ``export.json``)."""

    out_dir: Path
    report: dict[str, Any]


def _why_not_exportable(meta: dict[str, Any]) -> str | None:
    """One line saying why a run cannot be exported, or None when it can."""
    task = meta.get("task", "text-classification")
    model_type = meta.get("model_type", "transformer")
    if task not in EXPORTABLE_TASKS:
        return f"task '{task}' has no ONNX export here (export covers {', '.join(EXPORTABLE_TASKS)} runs)"
    if model_type != "transformer":
        return (
            f"model type '{model_type}' has no ONNX export here (export covers transformer encoders; "
            "tf-idf, RNN and CNN baselines are served by `growthcurve predict` as they are)"
        )
    return None


def _load_fp32(run_dir: Path, work: Path, meta: dict[str, Any]) -> tuple[Any, Any, dict[str, Any], list[str]]:
    """The run's model in fp32 eval mode; LoRA/AdaLoRA/freeze runs are merged first into ``work``."""
    from growthcurve.training.runfolder import load_run

    method = meta.get("method", "full")
    if method != "full":
        from growthcurve.models.peft_methods import MERGEABLE

        if method not in (*MERGEABLE, "freeze"):
            raise ModelError(
                f"cannot export '{run_dir}': a {method} run cannot be merged into plain weights "
                "(only lora, adalora and freeze runs can); serve it with `growthcurve predict`/`serve --backend torch`"
            )
        from growthcurve.training.merge import merge_run

        merge_run(run_dir, work / "merged")
        run = load_run(work / "merged", int8=False)
    else:
        run = load_run(run_dir, int8=False)
    model = run.model.float().eval()
    return model, run.tokenizer, run.meta, run.labels


def _input_names(model: Any, tokenizer: Any) -> list[str]:
    """The tokenizer outputs the model's forward takes, in a fixed order (input_ids first)."""
    import inspect

    params = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in params]
    produced = set(tokenizer("a b")) if tokenizer is not None else set(names)
    return [n for n in names if n in produced]


def _encode(
    tokenizer: Any, texts: list[str], max_length: int, names: list[str], pairs: list[str] | None = None
) -> dict:
    enc = tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {n: np.asarray(enc[n], dtype=np.int64) for n in names}


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Keep the exporters' noise out of the CLI; the self-check after the export is the verdict.

    The dynamo exporter logs one warning per torchvision op it cannot register when torchvision is absent
    (not needed for text models); both exporters warn about tracing internals.
    """
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        onnx_log.setLevel(level)


@contextlib.contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Attention as explicit MatMul/Softmax ops (transformers' eager path) while the graph is traced.

    SDPA exports as a decomposition with IsNaN/Where guards that onnxruntime's Attention fusion does not
    recognise (0 of 6 layers fused on MiniLM); the eager graph fuses. Restored afterwards, so the self-check
    compares against the implementation the run serves with.
    """
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


@contextlib.contextmanager
def _with_features(model: Any) -> Iterator[Any]:
    """The module a text classifier is exported as: its logits and, as a second output ``features``, the
    pooled features its classification head reads (what the out-of-scope detector scores,
    `growthcurve.evaluation.ood`), read by a forward pre-hook on the head for the length of the export.
    Yields None for a model without a head module (token classifiers): it is exported as it is."""
    import torch

    from growthcurve.training.scoring import classifier_head

    head = classifier_head(model) if not _is_token_model(model) else None
    if head is None:
        yield None
        return
    seen: list[torch.Tensor] = []

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(  # the tokenizer's names, spelled out: torch.export keys dynamic shapes by argument name
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor | None = None,
            token_type_ids: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            seen.clear()
            given = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
            logits = self.model(input_ids=input_ids, **{k: v for k, v in given.items() if v is not None}).logits
            x = seen[-1]
            return logits, (x[:, 0] if x.dim() == 3 else x)

    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        # eval, as the model is: the exporter restores the wrapper's mode on the way out, recursively, and a
        # fresh module's default (training) would leave the model with dropout on for the checks that follow
        yield Exported().train(model.training)
    finally:
        hook.remove()


def _outputs(exported: Any) -> list[str]:
    """The graph's output names: logits, and features for a text classifier exported with them."""
    return ["logits", "features"] if exported is not None and not _is_token_model(exported) else ["logits"]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _export_torchscript(model: Any, names: list[str], sample: dict[str, np.ndarray], path: Path) -> None:
    """torch.onnx.export with the TorchScript exporter (``dynamo=False``), dynamic batch/sequence axes.

    This is the graph onnxruntime's transformer optimizer was written against: its Attention and
    EmbedLayerNormalization patterns match here (5 of MiniLM's 6 attentions; the last layer computes token 0
    only, `growthcurve.models.fastpath`, and keeps its plain ops) and not in the dynamo graph (0 attentions).
    Tracing bakes in whatever Python branches the sample takes, so the sample has padding and the self-check
    covers unpadded, padded and truncated batches. A text classifier is exported with its pooled features as a
    second output (`_with_features`).
    """
    import torch

    kwargs = {n: torch.from_numpy(sample[n]) for n in names}
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes |= {"logits": {0: "batch", 1: "sequence"} if _is_token_model(model) else {0: "batch"}}
    with _quiet_export(), _eager_attention(model), _with_features(model) as wrapped:
        if wrapped is not None:
            axes["features"] = {0: "batch"}
        torch.onnx.export(
            wrapped if wrapped is not None else model,
            (),
            str(path),
            kwargs=kwargs,
            input_names=names,
            output_names=_outputs(wrapped),
            dynamic_axes=axes,
            opset_version=TS_OPSET,
            dynamo=False,
        )


def _export_dynamo(model: Any, names: list[str], sample: dict[str, np.ndarray], path: Path) -> None:
    """torch.onnx.export with the torch.export-based (dynamo) exporter and dynamic batch/sequence axes.

    The fallback when the TorchScript graph fails to export or to validate: onnxruntime fuses only its
    LayerNorms and Gelus, which serves slower but exports what torch.export can.
    """
    import torch
    from torch.export import Dim

    batch, seq = Dim("batch"), Dim("sequence")
    kwargs = {n: torch.from_numpy(sample[n]) for n in names}
    with _quiet_export(), _with_features(model) as wrapped:
        program = torch.onnx.export(
            wrapped if wrapped is not None else model,
            (),
            kwargs=kwargs,
            input_names=names,
            output_names=_outputs(wrapped),  # the model output's tensors when no labels are passed
            dynamic_shapes={n: {0: batch, 1: seq} for n in names},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    if program is None:  # the dynamo exporter returns the program; None only from the TorchScript one
        raise ModelError("torch.onnx.export(dynamo=True) returned no program")
    program.save(str(path))


def _graph_outputs(path: Path) -> list[str]:
    """Output names of an ONNX file (read without its weights)."""
    import onnx

    return [o.name for o in onnx.load(str(path), load_external_data=False).graph.output]


def _is_token_model(model: Any) -> bool:
    return type(model).__name__.endswith("ForTokenClassification")


# exporter name -> (function, opset): tried in this order, the first graph that validates is kept
_EXPORTERS: dict[str, tuple[Callable[..., None], int]] = {
    "torchscript": (_export_torchscript, TS_OPSET),
    "dynamo": (_export_dynamo, OPSET),
}


def _fuse(raw: Path, out: Path, config: Any) -> dict[str, Any]:
    """Fuse ``raw`` with onnxruntime's transformer optimizer into ``out``; what it fused (operator counts).

    ``opt_level=0``: only the optimizer's own pattern fusions are written; onnxruntime's generic graph
    optimisations run when a session loads the file, for whichever CPU serves it.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    # "bert" is the optimizer's pattern set for every BERT-layout encoder (RoBERTa, ELECTRA, XLM-R alike)
    fused = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
    counts = {k: int(v) for k, v in fused.get_fused_operator_statistics().items() if v}
    fused.save_model_to_file(str(out))
    return {
        "optimizer": "onnxruntime.transformers.optimizer.optimize_model",
        "model_type": "bert",
        "num_heads": heads,
        "hidden_size": hidden,
        "opt_level": 0,
        "fused_operators": counts,
    }


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # the default, said out loud: onnxruntime's own fusions and layout changes on top of the optimizer's
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # quantised graphs log benign shape-inference warnings at level 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _export_validated(
    model: Any,
    names: list[str],
    sample: dict[str, np.ndarray],
    batches: list[dict],
    out: Path,
    work: Path,
    threads: int | None,
) -> dict[str, Any] | None:
    """Export, fuse and check graphs in order (TorchScript fused, unfused, then dynamo); move the first that
    matches PyTorch within ``TOLERANCE`` to ``out``. What was kept and every attempt, or None if none matched.
    """
    attempts: list[dict[str, Any]] = []
    for name, (export, opset) in _EXPORTERS.items():
        raw = work / f"{name}.onnx"
        try:
            export(model, names, sample, raw)
        except Exception as exc:  # the exporters raise many types; the report needs the first line
            attempts.append({"exporter": name, "error": f"export failed: {_first_line(exc)}"})
            continue
        candidates: list[tuple[Path, dict[str, Any]]] = []
        try:
            fused = work / f"{name}.fused.onnx"
            candidates.append((fused, _fuse(raw, fused, getattr(model, "config", None))))
        except Exception as exc:  # a graph the optimizer cannot read is still served unfused
            attempts.append({"exporter": name, "graph": "fused", "error": f"optimizer failed: {_first_line(exc)}"})
        candidates.append((raw, {"fused_operators": {}, "note": "unfused graph as exported"}))
        for graph, fusion in candidates:
            kind = "fused" if graph != raw else "unfused"
            diff, _, n_checked = _compare(model, _session(graph, threads), batches)
            attempts.append({"exporter": name, "graph": kind, "max_abs_diff": diff})
            if np.isfinite(diff) and diff <= TOLERANCE:
                shutil.move(str(graph), str(out))
                return {
                    "exporter": name,
                    "opset": opset,
                    "fusion": fusion,
                    "attempts": attempts,
                    "max_abs_diff": diff,
                    "rows_compared": n_checked,
                }
    return None


def _check_batches(tokenizer: Any, texts: list[str], max_length: int, names: list[str]) -> list[dict]:
    """Batches for the self-check: single texts, mixed-length batches (padding), one at max_length."""
    batches = [_encode(tokenizer, [t], max_length, names) for t in texts[:3]]
    for i in range(0, min(len(texts), 64), 16):
        batches.append(_encode(tokenizer, texts[i : i + 16], max_length, names))
    batches.append(_encode(tokenizer, [" ".join(texts * 4)] * 2, max_length, names))  # truncated to max_length
    return batches


def _compare(model: Any, session: Any, batches: list[dict]) -> tuple[float, float, int]:
    """(max abs difference of the logits and of the pooled features when the graph has them, arg-max agreement,
    positions compared) of ONNX vs PyTorch fp32."""
    import torch

    from growthcurve.training.scoring import classifier_head

    outputs = [o.name for o in session.get_outputs()]
    head = classifier_head(model) if "features" in outputs else None
    seen: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _m, a: seen.append(a[0])) if head is not None else None
    diff, agree, n = 0.0, 0, 0
    try:
        for b in batches:
            seen.clear()
            with torch.no_grad():
                ref = model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.float().numpy()
            got = session.run(outputs, b)
            if head is not None:
                x = seen[-1]
                feats = (x[:, 0] if x.dim() == 3 else x).float().numpy()
                diff = max(diff, float(np.max(np.abs(feats - got[outputs.index("features")]))))
            logits = got[outputs.index("logits")]
            if ref.ndim == 3:  # token logits: compare real tokens only, padding positions carry no prediction
                keep = b["attention_mask"].astype(bool)
                ref, logits = ref[keep], logits[keep]
            diff = max(diff, float(np.max(np.abs(ref - logits))))
            agree += int(np.sum(ref.argmax(-1) == logits.argmax(-1)))
            n += len(ref)
    finally:
        if hook is not None:
            hook.remove()
    return diff, agree / n, n


def export_onnx(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    quantize: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> ExportResult:
    """Export a transformer text/token-classification run to ONNX (and int8), validated against PyTorch.

    Fails with ModelError when the fp32 graph's logits differ from PyTorch's by more than ``TOLERANCE``.
    """
    import onnxruntime as ort
    import torch

    from growthcurve.training.runfolder import read_meta

    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"--quantize '{quantize}' is not available; choose one of: {', '.join(QUANTIZE)}")
    run_dir = Path(run_dir)
    _, meta, labels = read_meta(run_dir)
    reason = _why_not_exportable(meta)
    if reason:
        raise ModelError(f"cannot export '{run_dir}': {reason}")
    final = Path(out_dir) if out_dir else run_dir / EXPORT_DIR
    if final.resolve() in (run_dir.resolve(), (run_dir / "model").resolve()):
        raise ConfigError(f"--out '{final}' would replace the run itself; give a new folder (default RUN/onnx)")
    # an earlier export is replaced; another run, a file or anything else export did not write is refused
    check_output_dir(final, run_dir, marker=EXPORT_FILE, finished="an earlier export", replace_finished=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        with tempfile.TemporaryDirectory(prefix="gc-export-") as work:
            model, tokenizer, out_meta, labels = _load_fp32(run_dir, Path(work), meta)
            names = _input_names(model, tokenizer)
            max_length = int(meta["max_length"])
            test = run_test_examples(run_dir, labels) if meta.get("task") == "text-classification" else None
            check_texts = _SAMPLE_TEXTS + (test[1][:48] if test else [])
            if progress:
                print(f"exporting {run_dir} to ONNX (fused by onnxruntime's transformer optimizer)...", flush=True)
            batches = _check_batches(tokenizer, check_texts, max_length, names)
            sample = _encode(tokenizer, _SAMPLE_TEXTS[:2], max_length, names)  # two lengths: the trace sees padding
            chosen = _export_validated(model, names, sample, batches, tmp / FP32_FILE, Path(work), threads)
            if chosen is None:
                raise ModelError(
                    f"ONNX export of '{run_dir}' does not match PyTorch with any exporter (max abs logit difference > "
                    f"{TOLERANCE:g}); nothing was written (report this with the model type: {meta.get('base_model')})"
                )
            diff, n_checked = chosen["max_abs_diff"], chosen["rows_compared"]
            report: dict[str, Any] = {
                "format": "onnx",
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "source_run": str(run_dir),
                "task": meta.get("task"),
                "method": meta.get("method", "full"),
                "merged_before_export": meta.get("method", "full") != "full",
                "exporter": f"torch.onnx.export(dynamo={chosen['exporter'] == 'dynamo'})",
                "opset": chosen["opset"],
                "fusion": chosen["fusion"],
                "export_attempts": chosen["attempts"],
                "inputs": names,
                "outputs": _graph_outputs(tmp / FP32_FILE),  # logits, and features for the out-of-scope detector
                "dynamic_axes": {n: ["batch", "sequence"] for n in names},
                "torch": torch.__version__,
                "onnxruntime": ort.__version__,
                "providers": ["CPUExecutionProvider"],
                "available_providers": ort.get_available_providers(),
                "cpu": cpu_info(),
                "tolerance": TOLERANCE,
                "validation": {"batches": len(batches), "rows_compared": n_checked},
                "max_abs_diff": {"fp32": diff},
                "files": {FP32_FILE: (tmp / FP32_FILE).stat().st_size},
            }
            if quantize == "int8":
                import onnx
                from onnxruntime.quantization import QuantType, quantize_dynamic

                # dynamic int8: weights quantised offline, activations per batch at run time (no calibration set)
                # onnxruntime logs "consider pre-processing" on the root logger; its pre-processing
                # (symbolic shape inference + graph optimisation) fails on torch.export graphs ("Incomplete
                # symbolic shape inference", onnxruntime 1.32) and the optimizer above already fused the
                # graph, so quantise the fused graph as it is, quietly.
                root = logging.getLogger()
                level = root.level
                root.setLevel(logging.ERROR)
                try:
                    # the fused graph has com.microsoft ops (Attention, SkipLayerNormalization) that onnx's shape
                    # inference cannot type: their outputs are float, said explicitly
                    quantize_dynamic(
                        str(tmp / FP32_FILE),
                        str(tmp / INT8_FILE),
                        weight_type=QuantType.QInt8,
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                    )
                finally:
                    root.setLevel(level)
                int8 = _session(tmp / INT8_FILE, threads)
                diff8, agree8, _ = _compare(model, int8, batches)
                report["max_abs_diff"]["int8"] = diff8
                report["int8_argmax_agreement"] = agree8
                report["files"][INT8_FILE] = (tmp / INT8_FILE).stat().st_size
                report["int8_size_ratio"] = report["files"][INT8_FILE] / report["files"][FP32_FILE]
            if test is not None:
                report["test"] = _test_accuracy(model, tokenizer, tmp, test, meta, names, threads)
            else:
                report["test"] = None
                report["test_note"] = (
                    "no test file in the run's config.yaml"
                    if meta.get("task") == "text-classification"
                    else "token-classification: entity scores need the torch decoder; the logit check above applies"
                )
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "labels.json", labels)
            write_json(tmp / "run.json", {**out_meta, "exported_from": str(run_dir)})
            model_dir = read_meta(run_dir)[0]
            for name in ("ood.npz", "ood.json"):  # the run's out-of-scope detector travels with the export
                if (model_dir / name).is_file():
                    shutil.copy2(model_dir / name, tmp / name)
            write_json(tmp / EXPORT_FILE, report)  # written last: its presence marks a finished export
        swap_in_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(final, report)


def _test_accuracy(
    model: Any,
    tokenizer: Any,
    onnx_dir: Path,
    test: tuple[str, list[str], np.ndarray],
    meta: dict[str, Any],
    names: list[str],
    threads: int | None,
) -> dict[str, Any]:
    """Accuracy on the run's test split: the exported torch model in fp32, then each ONNX file."""
    path, texts, y = test
    multi = bool(meta.get("multi_label"))
    out: dict[str, Any] = {"path": path, "n": len(texts)}
    probs = torch_proba(model, tokenizer, texts, int(meta["max_length"]), multi)
    out["accuracy_torch_fp32"] = accuracy(probs, y, multi)
    for key, fname in (("accuracy_onnx_fp32", FP32_FILE), ("accuracy_onnx_int8", INT8_FILE)):
        if (onnx_dir / fname).is_file():
            onnx_model = _OnnxModel(onnx_dir / fname, onnx_dir, meta, names, 64, threads, tokenizer)
            out[key] = accuracy(onnx_model.predict_proba(texts), y, multi)
    return out


# A session.run costs about as much as this many padded tokens of MiniLM-L6 besides its tokens (tokenising,
# input copies, op dispatch). On BANKING77 at batch 32 (int8, 2 threads, same run) 16 and 48 gave the same
# throughput and 96 was 10% slower; the cut points are not sensitive to it within that range.
RUN_OVERHEAD_TOKENS = 32


def length_batches(lengths: list[int], max_batch: int, overhead: int = RUN_OVERHEAD_TOKENS) -> list[tuple[int, int]]:
    """Cut ascending ``lengths`` into consecutive batches of at most ``max_batch`` rows, least total cost.

    A batch costs ``overhead + rows * longest`` (every row is padded to the longest). A batch of 32 of
    BANKING77's short texts padded to its longest carries 2.7x the tokens of its texts; cutting it where
    the lengths jump removes most of that. Exact dynamic programming over the cut points: O(n * max_batch).
    Neither transformers' pipeline nor onnxruntime batches by length, so this is ours.
    """
    n = len(lengths)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.int64)
    longest = np.asarray(lengths, dtype=np.float64)
    for stop in range(1, n + 1):
        starts = np.arange(max(0, stop - max_batch), stop)
        # sorted ascending: the batch [start, stop) is padded to lengths[stop - 1]
        costs = best[starts] + overhead + (stop - starts) * longest[stop - 1]
        k = int(np.argmin(costs))
        best[stop], cut[stop] = costs[k], starts[k]
    spans: list[tuple[int, int]] = []
    stop = n
    while stop > 0:
        spans.append((int(cut[stop]), stop))
        stop = int(cut[stop])
    return spans[::-1]


class _OnnxModel:
    """An onnxruntime session plus the tokenizer: probabilities for texts, batched by length."""

    def __init__(
        self,
        onnx_file: Path,
        tok_dir: Path,
        meta: dict[str, Any],
        names: list[str],
        batch_size: int,
        threads: int | None,
        tokenizer: Any = None,
    ) -> None:
        from transformers import AutoTokenizer

        self.session = _session(onnx_file, threads)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(tok_dir))
        self.names = names
        self.max_length = int(meta["max_length"])
        self.multi_label = bool(meta.get("multi_label"))
        self.batch_size = batch_size

    def _pad(self, enc: Any, rows: np.ndarray, width: int) -> dict[str, np.ndarray]:
        """The session inputs of ``rows``, padded to ``width`` as the tokenizer pads (its side; pad id, mask 0,
        segment 0). Done in numpy because the tokenizer's own ``pad`` round-trips every row through Python
        dicts and warns that re-calling the tokenizer is faster, which is the double work this avoids."""
        fill = {"input_ids": self.tokenizer.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0}
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        batch = {}
        for name in self.names:
            arr = np.full((len(rows), width), fill.get(name, 0), dtype=np.int64)
            for j, i in enumerate(rows):
                seq = enc[name][i]
                if left:
                    arr[j, width - len(seq) :] = seq
                else:
                    arr[j, : len(seq)] = seq
            batch[name] = arr
        return batch

    @property
    def outputs(self) -> list[str]:
        """The graph's output names (``logits``, and ``features`` for text classifiers exported with them)."""
        return [o.name for o in self.session.get_outputs()]

    def predict_proba(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Probabilities [n, num_labels]; texts are sorted by length and cut into batches with little padding."""
        return self.scores(texts, pairs, features=False)[0]

    def scores(
        self, texts: list[str], pairs: list[str] | None = None, features: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Probabilities, logits and (when the graph has them and ``features``) pooled features, in input order."""
        # tokenised once, unpadded; each length batch is padded from these ids (not tokenised again)
        enc = self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length)
        lengths = np.array([len(x) for x in enc["input_ids"]])
        order = np.argsort(lengths, kind="stable")
        wanted = ["logits", "features"] if features and "features" in self.outputs else ["logits"]
        probs_out: np.ndarray | None = None
        logits_out: np.ndarray | None = None
        feats_out: np.ndarray | None = None
        for start, stop in length_batches(lengths[order].tolist(), self.batch_size):
            rows = order[start:stop]
            got = self.session.run(wanted, self._pad(enc, rows, int(lengths[rows].max())))
            logits = got[0].astype(np.float64)
            if self.multi_label:
                probs = 1.0 / (1.0 + np.exp(-logits))
            else:
                z = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs = z / z.sum(axis=1, keepdims=True)
            if probs_out is None:
                probs_out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
                logits_out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
            assert logits_out is not None
            probs_out[rows] = probs
            logits_out[rows] = logits
            if len(got) > 1:
                if feats_out is None:
                    feats_out = np.zeros((len(texts), got[1].shape[1]), dtype=np.float32)
                feats_out[rows] = got[1]
        assert probs_out is not None and logits_out is not None
        return probs_out, logits_out, feats_out


def onnx_folder(run_dir: str | Path) -> Path:
    """The finished ONNX export of a run (``RUN/onnx``), or the export folder itself."""
    p = Path(run_dir)
    for cand in (p / EXPORT_DIR, p):
        if (cand / EXPORT_FILE).is_file():
            return cand
    if not p.exists():
        raise ModelError(f"run folder '{p}' does not exist")
    raise ModelError(
        f"'{p}' has no finished ONNX export ({EXPORT_DIR}/{EXPORT_FILE}); run `growthcurve export {p}` first"
    )


class OnnxPredictor:
    """Batched predictions from a run's ONNX export, with the interface of `training.inference.Predictor`.

    ``OnnxPredictor("runs/latest", quantize="int8").predict(["hi"])``; the export must exist (`growthcurve
    export RUN [--quantize int8]`): exporting on the fly would hide a slow, fallible step inside a load.
    """

    def __init__(
        self, run_dir: str | Path, quantize: str | None = None, batch_size: int = 64, threads: int | None = None
    ) -> None:
        if quantize is not None and quantize not in QUANTIZE:
            raise ConfigError(f"quantize '{quantize}' is not available; choose one of: {', '.join(QUANTIZE)} or none")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        folder = onnx_folder(run_dir)
        fname = INT8_FILE if quantize == "int8" else FP32_FILE
        path = folder / fname
        if not path.is_file():
            flag = " --quantize int8" if quantize == "int8" else ""
            raise ModelError(f"'{folder}' has no {fname}; run `growthcurve export {run_dir}{flag}` first")
        self.path = folder
        self.meta: dict[str, Any] = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        self._labels: list[str] = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        if self.meta.get("task") == "token-classification":
            raise ModelError(
                f"'{run_dir}' is a token-classification run: its ONNX export is validated, but turning tag "
                "logits into entity spans lives in the torch decoder; serve it with the torch backend"
            )
        report = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
        self.quantize = quantize
        self.batch_size = batch_size
        self.model_version = _file_id(path)
        self._model = _OnnxModel(path, folder, self.meta, report["inputs"], batch_size, threads)
        self.detector = _export_detector(folder)
        if self.detector is not None and self.detector.needs_features and "features" not in self._model.outputs:
            again = f"growthcurve export {run_dir}{flag_of(quantize)}"
            raise ModelError(
                f"'{folder}' was exported before out-of-scope features were part of the graph, and the run's "
                f"{self.detector.detector} detector reads them; re-export with `{again}`"
            )

    @property
    def labels(self) -> list[str]:
        return self._labels

    def predict_proba(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Probabilities [n, num_labels] (softmax, or sigmoid for multi-label runs)."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self._model.predict_proba(list(texts), pairs)

    def answer(
        self,
        texts: list[str],
        pairs: list[str] | None = None,
        top_k: int | list[int] = 1,
        explain: bool | list[bool] = False,
    ) -> list[dict[str, Any]]:
        """The prediction answer per text (`growthcurve.evaluation.answer`), as `Predictor.answer` gives it;
        explanations need gradients, which an ONNX graph does not give (refused with one line)."""
        if explain is True or (isinstance(explain, list) and any(explain)):
            raise ModelError(
                "explanations need the torch model's gradients: ask the torch backend (`predict`, `serve`)"
            )
        if not texts:
            return []
        multi = bool(self.meta.get("multi_label"))
        if self.detector is None or multi:
            return answer_rows(self.predict_proba(texts, pairs), self.labels, multi, top_k)
        probs, logits, feats = self._model.scores(list(texts), pairs, features=self.detector.needs_features)
        return answer_rows(probs, self.labels, multi, top_k, self.detector.verdict(logits, feats))

    def predict(self, texts: list[str], pairs: list[str] | None = None, top_k: int = 1) -> list[dict[str, Any]]:
        """One dict per text: the text and its answer (`answer`), as `Predictor.predict` gives them."""
        answers = self.answer(texts, pairs, top_k)
        return [{"text": t, **a} for t, a in zip(texts, answers, strict=True)]


def flag_of(quantize: str | None) -> str:
    """The `growthcurve export` flag that makes the ``quantize`` graph."""
    return " --quantize int8" if quantize == "int8" else ""


def _export_detector(folder: Path) -> Any:
    """The out-of-scope detector for an export: the run's own (``RUN/model``, refitted or not since the export)
    when the export is ``RUN/onnx``, else the copy the export took; None when there is none."""
    from growthcurve.evaluation.ood import load_detector

    places = [folder.parent / "model", folder] if folder.name == EXPORT_DIR else [folder]
    for place in places:
        det = load_detector(place)
        if det is not None:
            return det
    return None


def _file_id(path: Path) -> str:
    """First 12 hex digits of the file's sha256: stable across reloads, different for a new export."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]
