"""POST /predict carries the run's out-of-scope verdict and, when asked, the explanation of each answer; a
planted out-of-scope query is flagged; `explain` is refused (422) where the backend cannot explain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from growthcurve.serving import ServeSettings, create_app

IN_SCOPE = "so wonderful this film"
PLANTED = "zxq vbnm qwrtp kjhg plmq"  # words the tiny tokenizer has never seen: far from every training text


def _client(handlers: Any, store_url: str) -> TestClient:
    return TestClient(create_app(list(handlers), ServeSettings(), store_url))


def test_predict_flags_a_planted_out_of_scope_query(text_handlers: tuple[Any, Any], store_url: str) -> None:
    with _client(text_handlers[:1], store_url) as c:
        r = c.post("/predict", json={"text": [IN_SCOPE, PLANTED]})
        assert r.status_code == 200, r.text
        ok, far = r.json()["predictions"]
    assert ok["out_of_scope"] is False and far["out_of_scope"] is True
    assert far["ood_score"] > ok["ood_score"]
    assert "explanation" not in ok  # only when asked


def test_predict_explains_when_asked(text_handlers: tuple[Any, Any], store_url: str) -> None:
    with _client(text_handlers[:1], store_url) as c:
        r = c.post("/predict", json={"text": "the acting was awful", "explain": True})
        assert r.status_code == 200, r.text
        p = r.json()["predictions"][0]
        bad = c.post("/predict", json={"text": "x", "explain": "yes"})
    e = p["explanation"]
    assert e["method"] == "integrated_gradients" and e["label"] == p["label"] == "neg"
    assert [w["text"] for w in e["tokens"]] == ["the", "acting", "was", "awful"]
    assert max(e["tokens"], key=lambda w: w["score"])["text"] == "awful"
    assert bad.status_code == 422 and "explain" in bad.json()["error"]["message"]


def test_explain_refused_by_the_onnx_backend(text_runs: tuple[Path, Path], store_url: str, tmp_path: Path) -> None:
    import shutil

    from growthcurve.compression.onnx import export_onnx
    from growthcurve.serving import load_handler

    run = Path(shutil.copytree(text_runs[1], tmp_path / "run"))  # the shared run folder stays as it is
    export_onnx(run)
    with _client([load_handler(run, backend="onnx")], store_url) as c:
        r = c.post("/predict", json={"text": IN_SCOPE, "explain": True})
        plain = c.post("/predict", json={"text": [IN_SCOPE, PLANTED]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "explain_not_available"
    assert "--backend onnx" in r.json()["error"]["message"]
    assert [p["out_of_scope"] for p in plain.json()["predictions"]] == [False, True]  # the detector on ONNX too
