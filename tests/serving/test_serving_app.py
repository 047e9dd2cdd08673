"""The HTTP service end to end with FastAPI's TestClient on two tiny trained runs and a SQLite store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from growthcurve.serving import ServeSettings, create_app, model_version
from growthcurve.store import feedback, predictions


def _client(handlers: Any, store_url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(list(handlers), ServeSettings(**settings), store_url))


def _rows(store_url: str, table: sa.Table) -> list[dict[str, Any]]:
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(table.c.id))]
    engine.dispose()
    return rows


def _metric(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of metric ``name`` (full sample name) keyed by their labels."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


# ---- the endpoints ----------------------------------------------------------------------------------------


def test_predict_one_and_many_with_versions_and_logging(
    text_runs: tuple[Path, Path], text_handlers: Any, store_url: str
) -> None:
    with _client(text_handlers[:1], store_url) as c:
        r = c.post("/predict", json={"text": "the movie was awful"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version"] == model_version(text_runs[0] / "model")
        assert len(body["model_version"]) == 12 and body["experiment"] is None and body["latency_ms"] > 0
        (p,) = body["predictions"]
        assert p["label"] == "neg" and p["request_id"] == body["request_id"] and p["truncated"] is False
        assert p["top_k"][0]["label"] == "neg" and 0.5 < p["score"] <= 1.0

        r = c.post("/predict", json={"text": ["so wonderful", "really bad plot", "love it"], "top_k": 2})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert [p["label"] for p in preds] == ["pos", "neg", "pos"]
        assert all(len(p["top_k"]) == 2 for p in preds)
        assert sum(x["probability"] for x in preds[0]["top_k"]) == pytest.approx(1.0, abs=1e-5)
        assert len({p["request_id"] for p in preds}) == 3
    rows = _rows(store_url, predictions)
    assert [r["input_text"] for r in rows] == ["the movie was awful", "so wonderful", "really bad plot", "love it"]
    assert [r["label"] for r in rows] == ["neg", "pos", "neg", "pos"]
    assert {r["model_version"] for r in rows} == {body["model_version"]}


def test_health_ready_models_docs_and_metrics(text_handlers: Any, store_url: str) -> None:
    with _client(text_handlers[:1], store_url) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/ready").status_code == 200 and c.get("/ready").json() == {"ready": True}
        models = c.get("/models").json()["models"]
        assert models[0]["model_version"] == text_handlers[0].model_version and models[0]["labels"] == 2
        assert c.get("/docs").status_code == 200
        assert "/predict" in c.get("/openapi.json").json()["paths"]
        c.post("/predict", json={"text": "good"})
        c.post("/predict", json={"text": None})
        m = c.get("/metrics")
        assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
        reqs = _metric(m.text, "growthcurve_http_requests_total")
        assert reqs[(("method", "POST"), ("route", "/predict"), ("status", "200"))] == 1
        assert reqs[(("method", "POST"), ("route", "/predict"), ("status", "422"))] == 1
        info = _metric(m.text, "growthcurve_model_info")
        assert any(dict(k)["model_version"] == text_handlers[0].model_version for k in info)
        assert _metric(m.text, "growthcurve_http_request_duration_seconds_count")
        assert _metric(m.text, "growthcurve_batch_size_count")
    # after shutdown a new app on the same file is ready again
    with _client(text_handlers[:1], store_url) as c:
        assert c.get("/ready").status_code == 200


def test_token_run_returns_entity_spans(token_run: Path, store_url: str) -> None:
    from growthcurve.serving import load_handler

    h = load_handler(token_run)
    assert h.task == "token-classification"
    text = "this film was bob and paris"
    with _client([h], store_url) as c:
        r = c.post("/predict", json={"text": text})
        assert r.status_code == 200, r.text
        (p,) = r.json()["predictions"]
    ents = p["entities"]
    assert {(e["type"], e["text"]) for e in ents} == {("PER", "bob"), ("LOC", "paris")}
    assert all(text[e["start"] : e["end"]] == e["text"] for e in ents)


# ---- bad input: a 4xx JSON body, never a 500, and the service goes on --------------------------------------

BAD_PREDICT = [
    ("empty body", b"", 422),
    ("not JSON", b"{text: hi", 422),
    ("JSON array", b'["hi"]', 422),
    ("text null", b'{"text": null}', 422),
    ("text number", b'{"text": 5}', 422),
    ("text bool", b'{"text": true}', 422),
    ("text object", b'{"text": {"a": "b"}}', 422),
    ("nested list", b'{"text": [["a", "b"]]}', 422),
    ("list with number", b'{"text": ["ok", 3]}', 422),
    ("empty list", b'{"text": []}', 422),
    ("empty text", b'{"text": ""}', 422),
    ("blank text", b'{"text": "   "}', 422),
    ("blank in list", b'{"text": ["good", " "]}', 422),
    ("no text", b'{"top_k": 2}', 422),
    ("unknown field", b'{"text": "good", "txt": "x"}', 422),
    ("top_k zero", b'{"text": "good", "top_k": 0}', 422),
    ("top_k string", b'{"text": "good", "top_k": "2"}', 422),
    ("unit_id number", b'{"text": "good", "unit_id": 7}', 422),
    ("text over limit", json.dumps({"text": "good " * 30}).encode(), 413),
    ("too many texts", json.dumps({"text": ["good"] * 9}).encode(), 413),
    ("body over limit", json.dumps({"text": "a" * 3000}).encode(), 413),
]


@pytest.mark.parametrize(("case", "body", "status"), BAD_PREDICT, ids=[c for c, _, _ in BAD_PREDICT])
def test_bad_predict_requests_get_4xx_json(
    text_handlers: Any, store_url: str, case: str, body: bytes, status: int
) -> None:
    with _client(text_handlers[:1], store_url, max_text_chars=100, max_items=8, max_body_bytes=2000) as c:
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (case, r.text)
        err = r.json()["error"]
        assert err["code"] and err["message"]
        assert c.post("/predict", json={"text": "good"}).status_code == 200  # still serving
    assert len(_rows(store_url, predictions)) == 1  # nothing of the bad request was stored


def test_long_text_truncated_with_a_flag(text_handlers: Any, store_url: str) -> None:
    with _client(text_handlers[:1], store_url, max_text_chars=20, long_text="truncate") as c:
        r = c.post("/predict", json={"text": ["awful " * 10, "good"]})
        assert r.status_code == 200
        assert [p["truncated"] for p in r.json()["predictions"]] == [True, False]
    assert _rows(store_url, predictions)[0]["input_text"] == ("awful " * 10)[:20]


def test_api_key_enforced(text_handlers: Any, store_url: str) -> None:
    key = "k" * 24
    with _client(text_handlers[:1], store_url, api_keys=["other-key-0123456789", key]) as c:
        r = c.post("/predict", json={"text": "good"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        r = c.post("/predict", json={"text": "good"}, headers={"X-API-Key": "k" * 23})
        assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_api_key"
        r = c.post("/feedback", json={"request_id": "x", "thumbs": True})
        assert r.status_code == 401
        ok = c.post("/predict", json={"text": "good"}, headers={"X-API-Key": key})
        assert ok.status_code == 200
        rid = ok.json()["request_id"]
        fb = c.post("/feedback", json={"request_id": rid, "thumbs": True}, headers={"X-API-Key": key})
        assert fb.status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200  # open


def test_cors_off_by_default(text_handlers: Any, store_url: str) -> None:
    with _client(text_handlers[:1], store_url) as c:
        r = c.options("/predict", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
    with _client(text_handlers[:1], store_url, cors_origins=["http://app.example"]) as c:
        r = c.post("/predict", json={"text": "good"}, headers={"Origin": "http://app.example"})
        assert r.headers["access-control-allow-origin"] == "http://app.example"


# ---- feedback -----------------------------------------------------------------------------------------------


def test_feedback_stored_and_readable_after_restart(text_handlers: Any, store_url: str) -> None:
    with _client(text_handlers[:1], store_url) as c:
        rid = c.post("/predict", json={"text": "the film was awful"}).json()["request_id"]
        r = c.post("/feedback", json={"request_id": rid, "thumbs": False, "rating": 2, "label": "pos"})
        assert r.status_code == 200, r.text
        assert r.json()["stored"] is True and r.json()["kinds"] == ["thumbs", "rating", "correct"]
    # a new app (a restarted server) on the same file reads it and takes more feedback for the old prediction
    rows = _rows(store_url, feedback)
    assert [(x["kind"], x["value"], x["label"]) for x in rows] == [
        ("thumbs", 0.0, None),
        ("rating", 2.0, None),
        ("correct", 0.0, "pos"),  # served 'neg', the user says 'pos'
    ]
    assert {x["request_id"] for x in rows} == {rid}
    with _client(text_handlers[:1], store_url) as c:
        assert c.post("/feedback", json={"request_id": rid, "click": True}).status_code == 200
    assert [x["kind"] for x in _rows(store_url, feedback)] == ["thumbs", "rating", "correct", "click"]


def test_bad_feedback_gets_4xx(text_handlers: Any, store_url: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with _client(text_handlers[1:2], other) as c:  # a prediction of model B in the same store file as A's later
        rid_b = c.post("/predict", json={"text": "good"}).json()["request_id"]
    with _client(text_handlers[:1], other) as c:
        rid = c.post("/predict", json={"text": "good"}).json()["request_id"]
        cases = [
            ({"request_id": "nope", "thumbs": True}, 404, "unknown_request_id"),
            ({"request_id": rid, "thumbs": True, "model_version": "0123456789ab"}, 409, "model_version_mismatch"),
            ({"request_id": rid_b, "thumbs": True}, 409, "model_version_not_served"),
            ({"request_id": rid}, 422, "invalid_request"),
            ({"request_id": rid, "thumbs": "yes"}, 422, "invalid_request"),
            ({"request_id": rid, "thumbs": 1}, 422, "invalid_request"),
            ({"request_id": rid, "rating": 11}, 422, "invalid_request"),
            ({"request_id": rid, "rating": "5"}, 422, "invalid_request"),
            ({"request_id": rid, "label": "meh"}, 422, "unknown_label"),
            ({"request_id": None, "thumbs": True}, 422, "invalid_request"),
            ({"thumbs": True}, 422, "invalid_request"),
        ]
        for body, status, code in cases:
            r = c.post("/feedback", json=body)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
        r = c.post("/feedback", content=b'{"request_id": "%s", "rating": NaN}' % rid.encode())
        assert r.status_code == 422
        assert c.post("/feedback", json={"request_id": rid, "rating": 4.5}).status_code == 200
    assert [x["value"] for x in _rows(other, feedback)] == [4.5]  # nothing of the rejected ones


# ---- micro-batching -----------------------------------------------------------------------------------------


def test_concurrent_requests_are_micro_batched(text_handlers: Any, store_url: str) -> None:
    app = create_app(text_handlers[:1], ServeSettings(max_batch=16, max_wait_ms=100), store_url)

    async def drive() -> tuple[list[int], str]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                texts = [f"so {w}" for w in ["good", "bad", "awful", "great"] * 6]
                rs = await asyncio.gather(*(client.post("/predict", json={"text": t}) for t in texts))
                labels = [r.json()["predictions"][0]["label"] for r in rs]
                assert labels == ["pos", "neg", "neg", "pos"] * 6  # each answer went back to its own request
                return [r.status_code for r in rs], (await client.get("/metrics")).text

    codes, metrics = asyncio.run(drive())
    assert codes == [200] * 24
    count = sum(_metric(metrics, "growthcurve_batch_size_count").values())
    total = sum(_metric(metrics, "growthcurve_batch_size_sum").values())
    assert total == 24 and count < 24  # fewer batches than requests: some held several texts
    buckets = _metric(metrics, "growthcurve_batch_size_bucket")
    assert min(v for k, v in buckets.items() if dict(k)["le"] == "1.0") < count  # a batch of > 1


@pytest.mark.slow
def test_onnx_backend_serves_the_export(text_runs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    onnx = pytest.importorskip("growthcurve.compression.onnx")
    from growthcurve.serving import load_handler

    run = Path(shutil.copytree(text_runs[0], tmp_path / "run"))
    onnx.export_onnx(run)
    torch_h, onnx_h = load_handler(run), load_handler(run, backend="onnx")
    assert onnx_h.model_version != torch_h.model_version  # another artefact, another version
    texts = ["the movie was awful", "so wonderful", "really bad plot", "love it"]
    with _client([onnx_h], f"sqlite:///{tmp_path / 's.db'}") as c:
        body = c.post("/predict", json={"text": texts, "top_k": 2}).json()
    want = torch_h.predict_batch([torch_h.validate(t) for t in texts])
    assert body["model_version"] == onnx_h.model_version
    assert [p["label"] for p in body["predictions"]] == [w["label"] for w in want]
    for p, w in zip(body["predictions"], want, strict=True):
        assert p["score"] == pytest.approx(w["score"], abs=1e-4)


def test_sync_prediction_log_commits_before_the_answer(text_handlers: Any, store_url: str) -> None:
    with _client(text_handlers[:1], store_url, sync_prediction_log=True) as c:
        rid = c.post("/predict", json={"text": "so good"}).json()["request_id"]
        assert [r["request_id"] for r in _rows(store_url, predictions)] == [rid]  # while the app still runs


@pytest.mark.slow
def test_postgresql_store(text_handlers: Any, pg_url: str) -> None:
    """The same writes against PostgreSQL: predictions, feedback, a restart, an unknown id."""
    with _client(text_handlers[:1], pg_url) as c:
        rid = c.post("/predict", json={"text": ["awful", "so good"]}).json()["predictions"][1]["request_id"]
        assert c.post("/feedback", json={"request_id": rid, "thumbs": True, "label": "pos"}).status_code == 200
    with _client(text_handlers[:1], pg_url) as c:
        assert c.post("/feedback", json={"request_id": rid, "rating": 4}).status_code == 200
        assert c.post("/feedback", json={"request_id": "nope", "rating": 4}).status_code == 404
    fb = [r for r in _rows(pg_url, feedback) if r["request_id"] == rid]
    assert [(r["kind"], r["value"]) for r in fb] == [("thumbs", 1.0), ("correct", 1.0), ("rating", 4.0)]
