"""What export and compress report: the CPU they ran on, accuracy on the run's test split, texts per second."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# The instruction-set features int8 and bf16 speed depend on, as /proc/cpuinfo names them.
_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_info() -> dict[str, Any]:
    """CPU model name and the int8/bf16-relevant flags it has (read from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    import os

    return {"model": model, "cpus": os.cpu_count(), "flags": {f: f in flags for f in _FLAGS}}


def run_test_examples(run_dir: str | Path, labels: list[str]) -> tuple[str, list[str], np.ndarray] | None:
    """(path, texts, labels) of the test file a text-classification run's config.yaml names, or None.

    Labels are int64 [n] (or float32 [n, num_labels] for multi-label runs), read with the run's own columns.
    """
    from growthcurve.config import load_finetune_config
    from growthcurve.data.text import load_text_splits

    cfg_file = Path(run_dir) / "config.yaml"
    if not cfg_file.is_file():
        return None
    cfg = load_finetune_config(cfg_file)
    if not cfg.data.test or not Path(cfg.data.test).is_file():
        return None
    # the same trick as evaluate_run: the file to score as the only split, labels in the run's order
    data_cfg = cfg.data.model_copy(update={"train": cfg.data.test, "dev": cfg.data.test, "test": None})
    ex = load_text_splits(data_cfg, label_names=labels).dev
    assert ex is not None
    return cfg.data.test, ex.texts, ex.labels


def accuracy(probs: np.ndarray, labels: np.ndarray, multi_label: bool) -> float:
    """Accuracy of the arg-max (single-label) or exact-match accuracy of the 0.5-thresholded labels."""
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set")
    if multi_label:
        return float(np.mean(np.all((probs >= 0.5) == (labels >= 0.5), axis=1)))
    return float(np.mean(probs.argmax(axis=1) == labels))


def texts_per_second(fn: Callable[[list[str]], Any], texts: list[str], batch_size: int, warmup: int = 1) -> float:
    """Throughput of ``fn`` called on consecutive batches of ``texts`` (after ``warmup`` untimed batches)."""
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    for b in batches[:warmup]:
        fn(b)
    start = time.perf_counter()
    for b in batches:
        fn(b)
    return len(texts) / (time.perf_counter() - start)


def torch_proba(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    max_length: int,
    multi_label: bool,
    batch_size: int = 64,
) -> np.ndarray:
    """Probabilities [n, num_labels] of a torch classifier in fp32, texts batched by length.

    The reference side of every before/after comparison: the same tokenisation and batching as the ONNX
    side, so a difference comes from the model, not from padding.
    """
    import torch

    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out: np.ndarray | None = None
    model.eval()
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in rows], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.no_grad():
            logits = model(**enc).logits.float()
        probs = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
        if out is None:
            out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
        out[rows] = probs.numpy()
    assert out is not None
    return out
