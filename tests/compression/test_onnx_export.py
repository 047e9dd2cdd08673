"""ONNX export: the fp32 graph matches PyTorch, int8 agrees with fp32, LoRA runs merge, token runs validate,
the predictor reads the export back, and runs that cannot be exported fail with one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from growthcurve.compression.onnx import INT8_FILE, OnnxPredictor, export_onnx
from growthcurve.errors import ModelError
from tests.compression.conftest import toy_rows

TOY_TEXTS = [t for t, _ in toy_rows(300, 7)]


def _torch_logits(run_dir: Path, texts: list[str]) -> np.ndarray:
    """Logits of the run's own model, straight from transformers (independent of the export code)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "model").eval()
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    enc = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits.numpy()


@pytest.fixture(scope="module")
def exported(text_run: Path) -> Path:
    export_onnx(text_run, quantize="int8")
    return text_run


def test_fp32_export_matches_pytorch(exported: Path) -> None:
    folder = exported / "onnx"
    for name in ("model.onnx", INT8_FILE, "tokenizer.json", "labels.json", "run.json", "export.json"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "export.json").read_text())
    assert report["max_abs_diff"]["fp32"] <= 1e-4 and report["opset"] >= 17
    # independent check on texts of another length mix (dynamic batch and sequence axes)
    import onnxruntime as ort
    from transformers import AutoTokenizer

    texts = TOY_TEXTS[:37]
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {i.name: enc[i.name].astype(np.int64) for i in sess.get_inputs()})[0]
    assert got.shape == (37, 2)
    assert np.max(np.abs(got - _torch_logits(exported, texts))) <= 1e-4
    # the test split named in config.yaml was scored before and after
    test = report["test"]
    assert test["n"] == 200 and test["accuracy_torch_fp32"] >= 0.9
    assert test["accuracy_onnx_fp32"] == test["accuracy_torch_fp32"]


def test_int8_agrees_with_fp32_on_the_toy_set(exported: Path) -> None:
    fp32 = OnnxPredictor(exported)
    int8 = OnnxPredictor(exported, quantize="int8")
    a, b = fp32.predict_proba(TOY_TEXTS), int8.predict_proba(TOY_TEXTS)
    pa, pb = a.argmax(1), b.argmax(1)
    assert 0.2 < pa.mean() < 0.8  # the model learned: predictions are not all one class
    assert np.mean(pa == pb) >= 0.95
    report = json.loads((exported / "onnx" / "export.json").read_text())
    assert report["files"][INT8_FILE] < report["files"]["model.onnx"]
    assert fp32.model_version != int8.model_version and len(fp32.model_version) == 12


def test_predictor_matches_the_torch_predictor_shape(exported: Path) -> None:
    from growthcurve.compression.measure import torch_proba
    from growthcurve.training.runfolder import load_run

    onnx = OnnxPredictor(exported, batch_size=7)
    run = load_run(exported)
    texts = ["the movie was awful", "so wonderful", *TOY_TEXTS[:20]]
    ref = torch_proba(run.model, run.tokenizer, texts, 32, False)
    assert np.max(np.abs(onnx.predict_proba(texts) - ref)) < 1e-5
    rows = onnx.predict(texts[:2], top_k=2)
    assert [r["label"] for r in rows] == ["neg", "pos"]
    assert set(rows[0]) == {"text", "label", "score", "top_k", "out_of_scope", "ood_score"}
    assert [set(x) for x in rows[0]["top_k"]] == [{"label", "probability"}] * 2
    assert rows[0]["score"] == rows[0]["top_k"][0]["probability"]
    assert onnx.labels == run.labels and onnx.meta["task"] == "text-classification"
    assert onnx.predict_proba([]).shape == (0, 2)
    assert OnnxPredictor(exported).model_version == onnx.model_version  # stable across loads


def test_predictor_without_export_says_to_export(text_run: Path, tmp_path: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(text_run, bare, ignore=shutil.ignore_patterns("onnx"))
    with pytest.raises(ModelError, match="growthcurve export"):
        OnnxPredictor(bare)


def test_lora_run_is_merged_and_exported(lora_run: Path, tmp_path: Path) -> None:
    assert json.loads((lora_run / "model" / "run.json").read_text())["method"] == "lora"
    res = export_onnx(lora_run, out_dir=tmp_path / "lora-onnx")
    assert res.report["merged_before_export"] and res.report["max_abs_diff"]["fp32"] <= 1e-4
    meta = json.loads((tmp_path / "lora-onnx" / "run.json").read_text())
    assert meta["method"] == "full" and meta["merged_from"] == "lora"
    # the ONNX model gives the LoRA run's predictions (torch, unmerged) on the test split
    from growthcurve.training.runfolder import load_run

    run = load_run(lora_run)
    texts = TOY_TEXTS[:64]
    enc = run.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        ref = torch.softmax(run.model(**enc).logits, -1).numpy()
    got = OnnxPredictor(tmp_path / "lora-onnx").predict_proba(texts)
    assert np.max(np.abs(got - ref)) < 1e-4
    assert res.report["test"]["accuracy_onnx_fp32"] >= 0.8


def test_token_classification_export_validates(token_run: Path) -> None:
    res = export_onnx(token_run, quantize="int8")
    rep = res.report
    assert rep["task"] == "token-classification" and rep["max_abs_diff"]["fp32"] <= 1e-4
    assert rep["validation"]["rows_compared"] > 100  # tokens of the check batches, padding left out
    assert rep["test"] is None and "decoder" in rep["test_note"]
    with pytest.raises(ModelError, match="torch backend"):
        OnnxPredictor(token_run)


def test_unsupported_run_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from growthcurve.cli import main

    model = tmp_path / "tfidf-run" / "model"
    model.mkdir(parents=True)
    meta = {"task": "text-classification", "model_type": "tfidf", "method": "full", "max_length": 0}
    (model / "run.json").write_text(json.dumps(meta))
    (model / "labels.json").write_text('["a", "b"]')
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "tfidf-run"), "--format", "onnx"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "model type 'tfidf'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "tfidf-run" / "onnx").exists()

    meta["task"], meta["model_type"] = "image-classification", "transformer"
    (model / "run.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "tfidf-run")])
    assert exc.value.code == 2 and "task 'image-classification'" in capsys.readouterr().err
    meta["task"], meta["method"] = "text-classification", "prefix"
    (model / "run.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "tfidf-run")])
    assert exc.value.code == 2 and "prefix run cannot be merged" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "tfidf-run").iterdir()] == ["model"]  # no temp folder left behind
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "nowhere")])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_a_failed_check_writes_nothing(text_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import growthcurve.compression.onnx as onnx_mod

    monkeypatch.setattr(onnx_mod, "_compare", lambda *a: (0.5, 1.0, 10))  # as a mis-exported graph would
    with pytest.raises(ModelError, match="does not match PyTorch"):
        export_onnx(text_run, out_dir=tmp_path / "strict")
    assert not (tmp_path / "strict").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".strict")]  # no temp folder left behind


def test_cli_export_prints_the_check(text_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from growthcurve.cli import main

    main(["export", str(text_run), "--quantize", "int8", "--out", str(tmp_path / "cli-onnx"), "--threads", "1"])
    out = capsys.readouterr().out
    assert "model.int8.onnx" in out and "check passed" in out
    assert "fused by onnxruntime: " in out and "Attention 1" in out
    report = json.loads((tmp_path / "cli-onnx" / "export.json").read_text())
    assert report["files"]["model.int8.onnx"] > 0 and report["test"]["accuracy_onnx_int8"] >= 0.9
    with pytest.raises(SystemExit) as exc:
        main(["export", str(text_run), "--format", "tflite"])
    assert exc.value.code == 2 and "onnx" in capsys.readouterr().err
