"""The fused export: onnxruntime's optimizer fuses the graph, the fused graph still matches PyTorch, int8 is
quantised from it, the fusion counts in export.json are the ops in the file, a graph that cannot be fused
falls back to one that validates, and the predictor cuts batches where the lengths jump."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from growthcurve.compression import onnx as onnx_mod
from growthcurve.compression.onnx import INT8_FILE, OnnxPredictor, export_onnx, length_batches
from tests.compression.conftest import toy_rows

TOY_TEXTS = [t for t, _ in toy_rows(300, 11)]


def _ops(path: Path) -> Counter[str]:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.fixture(scope="module")
def fused(text_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fused") / "onnx"
    export_onnx(text_run, out_dir=out, quantize="int8")
    return out


def test_fused_graph_is_in_the_file_and_in_export_json(fused: Path) -> None:
    report = json.loads((fused / "export.json").read_text())
    counts = report["fusion"]["fused_operators"]
    ops = _ops(fused / "model.onnx")
    # 2 layers: the first fuses into one Attention op; the last computes token 0 only and keeps plain ops
    assert counts["Attention"] == ops["Attention"] == 1
    assert counts["SkipLayerNormalization"] == ops["SkipLayerNormalization"] == 4  # 2 per layer
    assert counts["BiasGelu"] == ops["BiasGelu"] == 2
    assert counts["EmbedLayerNormalization"] == ops["EmbedLayerNormalization"] == 1
    assert "LayerNormalization" not in ops  # every LayerNorm was folded into a fused op
    assert report["exporter"] == "torch.onnx.export(dynamo=False)" and report["opset"] == 17
    assert report["export_attempts"] == [
        {"exporter": "torchscript", "graph": "fused", "max_abs_diff": report["max_abs_diff"]["fp32"]}
    ]
    assert report["max_abs_diff"]["fp32"] <= 1e-4
    # int8 is quantised from the fused graph: the fused attention became its integer form
    ops8 = _ops(fused / INT8_FILE)
    assert ops8["QAttention"] == 1 and ops8["QEmbedLayerNormalization"] == 1 and ops8["MatMulInteger"] >= 8
    assert report["int8_argmax_agreement"] >= 0.95 and report["int8_size_ratio"] < 1


def test_fused_graph_matches_pytorch_on_new_lengths(fused: Path, text_run: Path) -> None:
    """Independent of the export's own check: other texts, other batch sizes, no padding and truncation."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(text_run / "model").eval()
    tok = AutoTokenizer.from_pretrained(fused)
    sess = ort.InferenceSession(str(fused / "model.onnx"), providers=["CPUExecutionProvider"])
    for texts in (TOY_TEXTS[:1], TOY_TEXTS[1:6], TOY_TEXTS[6:59], [" ".join(TOY_TEXTS[:40])] * 3):
        enc = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
        feed = {i.name: enc[i.name].astype(np.int64) for i in sess.get_inputs()}
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
        assert np.max(np.abs(sess.run(["logits"], feed)[0] - ref)) <= 1e-4


def test_an_unfusable_graph_falls_back_and_says_so(
    text_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("pattern not supported\nsecond line")

    monkeypatch.setattr(onnx_mod, "_fuse", broken)
    rep = export_onnx(text_run, out_dir=tmp_path / "unfused").report
    assert rep["max_abs_diff"]["fp32"] <= 1e-4 and rep["fusion"]["fused_operators"] == {}
    assert rep["export_attempts"][0] == {
        "exporter": "torchscript",
        "graph": "fused",
        "error": "optimizer failed: pattern not supported",
    }
    assert rep["export_attempts"][1]["graph"] == "unfused"
    assert _ops(tmp_path / "unfused" / "model.onnx")["Attention"] == 0

    # a model the TorchScript exporter cannot trace is exported by the dynamo exporter instead
    def no_trace(*args: object) -> None:
        raise RuntimeError("cannot trace")

    monkeypatch.setitem(onnx_mod._EXPORTERS, "torchscript", (no_trace, 17))
    rep = export_onnx(text_run, out_dir=tmp_path / "dynamo").report
    assert rep["exporter"] == "torch.onnx.export(dynamo=True)" and rep["opset"] == 18
    assert rep["export_attempts"][0] == {"exporter": "torchscript", "error": "export failed: cannot trace"}
    assert rep["max_abs_diff"]["fp32"] <= 1e-4


def _brute_force(lengths: list[int], max_batch: int, overhead: int) -> float:
    """Least cost over every way to cut the sorted list into consecutive batches (all 2^(n-1) cut sets)."""
    n, best = len(lengths), float("inf")
    for cuts in itertools.product((False, True), repeat=n - 1):
        bounds = [0, *[i + 1 for i, c in enumerate(cuts) if c], n]
        spans = list(itertools.pairwise(bounds))
        if all(b - a <= max_batch for a, b in spans):
            best = min(best, sum(overhead + (b - a) * lengths[b - 1] for a, b in spans))
    return best


def test_length_batches_finds_the_cheapest_cut() -> None:
    rng = random.Random(0)
    for _ in range(60):
        n, max_batch, overhead = rng.randint(1, 11), rng.randint(1, 6), rng.choice([0, 8, 32, 200])
        lengths = sorted(rng.randint(1, 64) for _ in range(n))
        spans = length_batches(lengths, max_batch, overhead)
        assert spans[0][0] == 0 and spans[-1][1] == n  # covers every row once, in order
        assert all(a < b and b - a <= max_batch for a, b in spans)
        assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
        cost = sum(overhead + (b - a) * lengths[b - 1] for a, b in spans)
        assert cost == _brute_force(lengths, max_batch, overhead)
    # hand-checked: 3 short texts and one long one cost 32+9 + 32+40 = 113 apart, 32+4*40 = 192 together
    assert length_batches([3, 3, 3, 40], 32, 32) == [(0, 3), (3, 4)]
    assert length_batches([10, 10, 11, 12], 32, 32) == [(0, 4)]  # nearly equal lengths stay one batch
    assert length_batches([], 32) == []


def test_predictor_pads_short_texts_apart_from_long_ones(fused: Path) -> None:
    # the export lives outside the run folder here: OnnxPredictor takes the export folder itself
    predictor = OnnxPredictor(fused, batch_size=32)
    widths: list[tuple[int, int]] = []
    session = predictor._model.session

    class Recording:
        def run(self, outputs: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            widths.append(feed["input_ids"].shape)
            return session.run(outputs, feed)

    texts = ["so good", "bad", "awful film", " ".join(TOY_TEXTS[:30]), "great", "the plot was poor"]
    ref = np.stack([predictor.predict_proba([t])[0] for t in texts])
    predictor._model.session = Recording()
    got = predictor.predict_proba(texts)
    assert np.max(np.abs(got - ref)) < 1e-5  # same probabilities as one text at a time, in the input order
    assert len(widths) == 2 and sorted(w[0] for w in widths) == [1, 5]  # the long text got its own batch
    assert min(w[1] for w in widths) <= 7 and max(w[1] for w in widths) == 32
