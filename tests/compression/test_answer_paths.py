"""The prediction answer is one contract: the torch `Predictor`, the ONNX `OnnxPredictor` and ``POST /predict``
(with either backend) answer the same texts with the same answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from growthcurve.compression.onnx import OnnxPredictor, export_onnx
from growthcurve.serving import ServeSettings, create_app, load_handler
from growthcurve.training.inference import Predictor

TEXTS = ["the movie was awful", "so wonderful", "really the plot and acting", "bad sad film", "good"]


@pytest.fixture(scope="module")
def exported(text_run: Path) -> Path:
    if not (text_run / "onnx" / "export.json").is_file():
        export_onnx(text_run)
    return text_run


def _same(a: Any, b: Any, tol: float, where: str = "answer") -> None:
    """Equal structure, keys and labels; numbers equal within ``tol`` (ONNX vs torch float32 kernels)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _same(a[k], b[k], tol, f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, tol, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        # a Mahalanobis distance magnifies the ONNX/torch float differences of the features by the precision
        # matrix: equal to 1e-3 relative; probabilities to ``tol``
        bound = max(tol, 1e-3 * abs(a)) if where.endswith(".ood_score") else tol
        assert isinstance(b, float) and abs(a - b) <= bound, f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _http(run: Path, store: Path, backend: str, texts: list[str], top_k: int) -> list[dict[str, Any]]:
    app = create_app([load_handler(run, backend=backend)], ServeSettings(backend=backend), f"sqlite:///{store}")
    with TestClient(app) as client:
        r = client.post("/predict", json={"text": texts, "top_k": top_k})
    assert r.status_code == 200, r.text
    # the HTTP envelope adds the request id and the truncation flag around the one answer
    return [{k: v for k, v in p.items() if k not in ("request_id", "truncated")} for p in r.json()["predictions"]]


def test_torch_onnx_and_http_answers_are_equal(exported: Path, tmp_path: Path) -> None:
    torch_rows = Predictor(exported).answer(TEXTS, top_k=2)
    assert all("out_of_scope" in r and "ood_score" in r for r in torch_rows)  # the run's detector on every path
    onnx_rows = OnnxPredictor(exported).answer(TEXTS, top_k=2)
    assert [r["label"] for r in torch_rows] == ["neg", "pos", *[r["label"] for r in torch_rows[2:]]]
    _same(torch_rows, onnx_rows, 2e-6)
    _same(torch_rows, _http(exported, tmp_path / "a.db", "torch", TEXTS, 2), 0.0)  # same code, same numbers
    _same(onnx_rows, _http(exported, tmp_path / "b.db", "onnx", TEXTS, 2), 0.0)
    # `predict` is the answer with its input in front, on both backends
    first = {"text": TEXTS[0], **torch_rows[0], "top_k": torch_rows[0]["top_k"][:1]}
    _same(Predictor(exported).predict(TEXTS[:1]), [first], 2e-6)  # alone vs in a batch: padding moves floats
    assert np.isclose(torch_rows[0]["score"], torch_rows[0]["top_k"][0]["probability"])
