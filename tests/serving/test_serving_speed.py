"""What keeps the per-request cost of the service low (#12): no thread hop per request, onnx thread default."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

import growthcurve.serving.launch as serve_cli
from growthcurve.serving import ServeSettings, create_app


def test_predict_with_api_key_runs_no_dependency_in_the_thread_pool(
    text_handlers: Any, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI runs a plain `def` dependency in its thread pool: the API-key check and get_core must not be."""
    import fastapi.dependencies.utils as dep_utils

    calls: list[str] = []
    real = dep_utils.run_in_threadpool

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(dep_utils, "run_in_threadpool", counting)
    key = "k" * 20
    app = create_app(text_handlers[:1], ServeSettings(api_keys=[key]), store_url)
    with TestClient(app) as c:
        ok = c.post("/predict", json={"text": "so wonderful"}, headers={"X-API-Key": key})
        assert ok.status_code == 200 and ok.json()["predictions"][0]["label"] == "pos"
        bad = c.post("/predict", json={"text": "so wonderful"}, headers={"X-API-Key": "x" * 20})
        assert bad.status_code == 403 and bad.json()["error"]["code"] == "invalid_api_key"
        fb = c.post(
            "/feedback", json={"request_id": ok.json()["request_id"], "thumbs": True}, headers={"X-API-Key": key}
        )
        assert fb.status_code == 200 and fb.json()["stored"] is True
    assert calls == []


def test_onnx_threads_default_leaves_a_core_for_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_cli.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert serve_cli.inference_threads("onnx", None) == 1
    monkeypatch.setattr(serve_cli.os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert serve_cli.inference_threads("onnx", None) == 7
    monkeypatch.setattr(serve_cli.os, "sched_getaffinity", lambda _pid: {0})
    assert serve_cli.inference_threads("onnx", None) == 1  # one core: still one thread, never zero
    assert serve_cli.inference_threads("onnx", 2) == 2  # an explicit --threads wins
    assert serve_cli.inference_threads("torch", None) is None  # torch keeps its own default
