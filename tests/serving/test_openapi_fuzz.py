"""Property tests of the HTTP service from its own OpenAPI schema (schemathesis + Hypothesis).

Every operation the schema declares is called with generated bodies, valid ones and ones that break the schema
on purpose, and each answer is checked against the schema: no 5xx, a status the schema declares, the declared
content type and body, valid data accepted, invalid data refused, 405 with ``Allow`` for other methods, the API
key enforced where the schema says so. A 5xx or a conformance problem on any generated request fails the
suite. The example count is kept small so the whole file runs in well under a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (schemathesis brings hypothesis)

from growthcurve.serving import ServeSettings, create_app  # noqa: E402

KEY = "fuzz-key-0123456789abcdef"
EXAMPLES = 15  # per operation and phase


def _config() -> Any:
    """The checks schemathesis runs, with 413 among the ways to refuse invalid data: a text or body over the
    server's limit is 413 Content Too Large, not 422."""
    return schemathesis.Config.from_dict(
        {
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "422"]
                }
            }
        }
    )


def _schema(handler: Any, store: Path, **serve: Any) -> Any:
    app = create_app([handler], ServeSettings(**serve), f"sqlite:///{store}")
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())


@pytest.fixture(scope="module")
def served(text_handlers: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One text-classification server with an API key and small limits (so the limits are hit)."""
    store = tmp_path_factory.mktemp("fuzz") / "store.db"
    return _schema(text_handlers[0], store, api_keys=[KEY], max_text_chars=200, max_items=4)


@pytest.fixture(scope="module")
def served_ab(text_handlers: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The A/B server of the two runs: its schema requires unit_id."""
    store = tmp_path_factory.mktemp("fuzz-ab") / "store.db"
    app = create_app(list(text_handlers), ServeSettings(experiment="fuzz-ab", salt="s"), f"sqlite:///{store}")
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
    database=None,
)


def _fuzz(schema: Any, headers: dict[str, str] | None = None) -> int:
    """Every operation, with schema-valid and with schema-breaking requests; schemathesis' checks on each
    answer (a failing one raises, and Hypothesis shrinks it to a minimal request). Returns the operations.

    (Not ``schemathesis.pytest.from_fixture``: its lazy loader reads a pytest internal that pytest 9 no longer
    has, so the strategies are drawn here with Hypothesis directly.)"""
    n = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        takes_input = bool(operation.get_request_payload_content_types()) or any(
            True for _ in operation.iter_parameters()
        )
        for mode in schemathesis.GenerationMode:
            if mode is schemathesis.GenerationMode.NEGATIVE and not takes_input:
                continue  # nothing to break in a request without a body or parameters (GET /health ...)

            @given(case=operation.as_strategy(generation_mode=mode))
            @_SETTINGS
            def call(case: Any) -> None:
                case.call_and_validate(headers=headers)

            call()
        n += 1
    return n


def test_every_generated_request_conforms(served: Any) -> None:
    assert _fuzz(served, {"X-API-Key": KEY}) == 6  # predict, feedback, health, ready, models, metrics


def test_every_generated_request_conforms_in_an_ab_test(served_ab: Any) -> None:
    assert _fuzz(served_ab) == 6


def test_the_schema_states_what_the_service_enforces(text_handlers: Any, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app([text_handlers[0]], ServeSettings(api_keys=[KEY], max_items=4), f"sqlite:///{tmp_path / 's.db'}")
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
        predict, feedback = doc["paths"]["/predict"]["post"], doc["paths"]["/feedback"]["post"]
        assert {"400", "401", "403", "413", "422", "503"} <= set(predict["responses"])
        assert {"400", "401", "403", "404", "409", "413", "422", "503"} <= set(feedback["responses"])
        assert predict["security"] == [{"ApiKey": []}]
        body = doc["components"]["schemas"]
        text = body["PredictRequest"]["properties"]["text"]["anyOf"]
        assert text[0]["minLength"] == 1 and text[0]["pattern"] == r"\S" and text[0]["maxLength"] == 5000
        assert text[1]["maxItems"] == 4
        signals = body["FeedbackRequest"]["anyOf"]
        assert {s["required"][0] for s in signals} == {"thumbs", "rating", "label", "click"}
        assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        assert client.get("/metrics").headers["content-type"].startswith("text/plain")
        wrong = client.put("/predict", json={"text": "good"}, headers={"X-API-Key": KEY})
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert wrong.json()["error"]["code"] == "http_error"
