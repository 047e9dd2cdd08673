"""Pruning: the asked fraction of encoder weights becomes zero, neuron pruning shrinks the model and keeps
the strongest neurons, a compressed run loads, predicts and exports like any run, and RUN is never touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from growthcurve.compression import prune as P
from growthcurve.compression.compress import compress_run
from growthcurve.errors import ConfigError
from growthcurve.models.build import count_parameters
from growthcurve.training.runfolder import load_run
from tests.compression.conftest import toy_rows

TEXTS = [t for t, _ in toy_rows(120, 11)]


def _tiny_classifier() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return BertForSequenceClassification(cfg).eval()


def test_magnitude_prune_zeroes_the_smallest_weights_globally() -> None:
    model = _tiny_classifier()
    linears = P.encoder_linears(model)
    weights = torch.cat([m.weight.detach().abs().flatten() for m in linears])
    cut = torch.quantile(weights, 0.3)
    head = model.classifier.weight.detach().clone()
    masks = P.magnitude_prune(model, 0.3)
    assert P.sparsity(model) >= 0.3
    after = torch.cat([m.weight.detach().flatten() for m in linears])
    kept = weights[after != 0]
    assert kept.min() >= cut  # what survived is the larger-magnitude part, across all layers at once
    assert torch.equal(model.classifier.weight, head)  # the head is not pruned
    assert not any(hasattr(m, "weight_orig") for m in linears)  # prune.remove made it permanent
    # masks put the zeros back after training moved them
    with torch.no_grad():
        for m in linears:
            m.weight.add_(0.01)
    P.apply_masks(model, masks)
    assert P.sparsity(model) >= 0.3


def test_neuron_pruning_shrinks_and_keeps_the_strongest_neurons() -> None:
    model = _tiny_classifier()
    ids = torch.randint(5, 50, (3, 9))
    # zero 16 neurons of each layer: pruning 25% must remove exactly those and leave the outputs unchanged
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            dead = torch.arange(0, 64, 4)
            layer.intermediate.dense.weight[dead] = 0
            layer.intermediate.dense.bias[dead] = -10  # gelu(-10) is ~0, as a dead neuron's output is
            layer.output.dense.weight[:, dead] = 0
        ref = model(input_ids=ids).logits
    before = count_parameters(model)[1]
    assert P.prune_ffn_neurons(model, 0.25) == 48
    assert count_parameters(model)[1] == before - 2 * 16 * (2 * 32 + 1)
    assert model.config.intermediate_size == 48
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, ref, atol=1e-5)


def test_heads_and_bad_fractions_are_refused(text_run: Path) -> None:
    with pytest.raises(ConfigError, match="prune_heads"):
        compress_run(text_run, 0.3, structured="heads")
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            compress_run(text_run, bad)


@pytest.fixture(scope="module")
def pruned(text_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compressed") / "pruned"
    compress_run(text_run, 0.3, quantize="dynamic-int8", out_dir=out, sample_size=64, progress=False)
    return out


def test_unstructured_run_loads_predicts_and_reports(pruned: Path, text_run: Path) -> None:
    quantized = load_run(pruned)  # the stable loader reads it like any run, and honours the int8 flag
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quantized.model.modules())
    run = load_run(pruned, int8=False)  # the stored fp32 weights
    assert P.sparsity(run.model) >= 0.3
    assert run.meta["pruning"]["kind"] == "global-unstructured-l1" and run.meta["quantize_dynamic_int8"] is True
    rep = json.loads((pruned / "compress.json").read_text())
    rows = rep["rows"]
    assert set(rows) == {"before", "pruned", "pruned+int8"}
    assert rows["before"]["encoder_linear_sparsity"] == 0
    assert rows["pruned"]["encoder_linear_sparsity"] >= 0.3
    assert rows["pruned"]["nonzero_parameters"] < rows["before"]["nonzero_parameters"]
    assert rows["pruned+int8"]["state_dict_bytes"] < 0.6 * rows["pruned"]["state_dict_bytes"]
    assert rows["pruned"]["test_accuracy"] >= 0.75  # chance is 0.5
    enc = run.tokenizer(["the movie was awful", "so wonderful"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert run.model(**enc).logits.argmax(-1).tolist() == [run.labels.index("neg"), run.labels.index("pos")]
    assert (text_run / "model" / "model.safetensors").is_file() and not (text_run / "compress.json").exists()


def test_pruned_run_exports_to_onnx(pruned: Path) -> None:
    from growthcurve.compression.onnx import OnnxPredictor, export_onnx

    res = export_onnx(pruned, quantize="int8")
    assert res.report["max_abs_diff"]["fp32"] <= 1e-4
    probs = OnnxPredictor(pruned, quantize="int8").predict_proba(TEXTS)
    assert 0.2 < probs.argmax(1).mean() < 0.8


def test_recovery_keeps_the_zeros(text_run: Path, tmp_path: Path) -> None:
    res = compress_run(text_run, 0.5, recover_epochs=1, out_dir=tmp_path / "rec", sample_size=32, progress=False)
    rep = res.report
    assert rep["recovery"]["epochs"] == 1 and rep["recovery"]["learning_rate"] == 3e-3
    run = load_run(tmp_path / "rec")
    assert P.sparsity(run.model) >= 0.5
    assert (tmp_path / "rec" / "config.yaml").is_file() and (tmp_path / "rec" / "metrics.json").is_file()
    assert rep["rows"]["pruned"]["test_accuracy"] >= 0.75
    # one registry row: the compressed run is the next version of the source's model, the source its parent
    from growthcurve.store.registry import find_by_artefact, list_runs

    row, src = find_by_artefact(tmp_path / "rec"), find_by_artefact(text_run)
    assert row is not None and row.kind == "compress" and row.ref == res.ref
    if src is not None and src.ref:  # the fixture run was recorded in this test's store
        assert row.parent == src.id and row.model == src.model and row.version == src.version + 1
    assert [r.kind for r in list_runs() if r.artefact == row.artefact] == ["compress"]


def test_neuron_compress_shrinks_the_saved_model(text_run: Path, tmp_path: Path) -> None:
    res = compress_run(text_run, 0.5, structured="neurons", out_dir=tmp_path / "neu", sample_size=32, progress=False)
    rows = res.report["rows"]
    assert rows["pruned"]["parameters"] < rows["before"]["parameters"]
    run = load_run(tmp_path / "neu")
    assert run.model.config.intermediate_size == 64
    assert count_parameters(run.model)[1] == rows["pruned"]["parameters"]
    size = (tmp_path / "neu" / "model" / "model.safetensors").stat().st_size
    assert size < (text_run / "model" / "model.safetensors").stat().st_size
    assert 0.0 <= rows["pruned"]["test_accuracy"] <= 1.0


def test_compress_never_writes_into_the_run(text_run: Path, pruned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from growthcurve.cli import main

    listing = sorted(p.name for p in text_run.iterdir())
    for out in (text_run, text_run / "pruned", text_run / "model", text_run.parent, pruned):
        with pytest.raises(SystemExit) as exc:
            main(["compress", str(text_run), "--prune", "0.3", "--out", str(out)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and "--out" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in text_run.iterdir()) == listing


def test_cli_compress_prints_the_table(text_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from growthcurve.cli import main

    main(["compress", str(text_run), "--prune", "0.2", "--structured", "neurons", "--out", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert "before" in out and "pruned" in out and "texts/s" in out
    assert (tmp_path / "c" / "compress.json").is_file()
