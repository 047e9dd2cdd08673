"""The reviewers' page through FastAPI's TestClient: login by token, CSRF on every POST, escaping, and every
bad request answered 4xx with the queue unchanged."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from growthcurve.review import queue as rq
from growthcurve.review.auth import add_reviewer
from growthcurve.review.web import create_review_app
from growthcurve.store import get_engine, init_db, insert_rows
from growthcurve.store.schema import predictions, review_reviewers
from tests.review.conftest import LABELS, T0

EVIL = '<script>alert("x")</script> & <b>bold</b>'


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[tuple[TestClient, sa.Engine, str]]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = init_db(url)
    rows = [
        {
            "request_id": f"r{i}",
            "ts": T0,
            "model_name": "m",
            "model_version": "v1",
            "input_text": EVIL if i == 0 else f"text number {i}",
            "label": LABELS[i % 4],
            "score": 0.5,
            "output": {"top_k": [{"label": LABELS[i % 4], "probability": 0.5}]},
        }
        for i in range(6)
    ]
    insert_rows(engine, predictions, rows)
    rq.build_queue(url, "q", labels=LABELS, config=rq.QueueConfig(mix={"uncertainty": 1}, double_share=0))
    with TestClient(create_review_app(engine, "q")) as client:
        yield client, engine, url
    engine.dispose()


def login(client: TestClient, token: str) -> str:
    """Log in through the form; returns the page's CSRF token."""
    page = client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"token": token, "csrf": nonce}, follow_redirects=True)
    assert r.status_code == 200, r.text
    return state(r.text)["csrf"]


def state(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="state">(.*?)</script>', html, re.S).group(1))


def answers(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from review_answers")).scalar_one()


def test_login_answer_and_escaping(site: tuple[TestClient, sa.Engine, str]) -> None:
    client, engine, _ = site
    assert "reviewer token" in client.get("/").text  # not logged in: the login form
    csrf = login(client, add_reviewer(engine, "ann"))
    with engine.connect() as conn:
        evil_id = conn.execute(sa.text("select id from review_items where text like '<script>%'")).scalar_one()
    page = client.get(f"/?item={evil_id}")
    # the text is shown as text: escaped, never as markup
    assert EVIL not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page.text
    st = state(page.text)
    assert "</script>" not in re.search(r'id="state">(.*?)</script>', page.text, re.S).group(1)
    item = st["item"]
    r = client.post(
        "/api/answer",
        json={"item_id": item["id"], "action": "label", "label": "refund", "stream": item["stream"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200 and r.json()["stored"] is True
    with engine.connect() as conn:
        row = conn.execute(sa.text("select reviewer, label, source, stream from review_answers")).one()
    assert tuple(row) == ("ann", "refund", "prediction", "uncertainty")
    # undo brings the item back on the page
    r = client.post("/api/undo", headers={"X-CSRF-Token": csrf})
    assert r.json()["item_id"] == item["id"]
    assert state(client.get(f"/?item={item['id']}").text)["item"]["id"] == item["id"]


def test_bad_requests_are_4xx_and_change_nothing(site: tuple[TestClient, sa.Engine, str]) -> None:
    client, engine, url = site
    csrf = login(client, add_reviewer(engine, "ann"))
    item = state(client.get("/").text)["item"]
    h = {"X-CSRF-Token": csrf}
    cases = [
        ({"item_id": item["id"], "action": "label", "label": "nope"}, h, 422, "unknown_label"),
        ({"item_id": 987654, "action": "label", "label": "refund"}, h, 404, "unknown_item"),
        ({"item_id": item["id"], "action": "dance"}, h, 422, "unknown_action"),
        ({"item_id": "1", "action": "label", "label": "refund"}, h, 422, "invalid_request"),
        ({"item_id": item["id"], "action": "label", "label": "refund"}, {}, 403, "bad_csrf"),
        ({"item_id": item["id"], "action": "label", "label": "refund"}, {"X-CSRF-Token": "x" * 64}, 403, "bad_csrf"),
    ]
    for body, headers, status, code in cases:
        r = client.post("/api/answer", json=body, headers=headers)
        assert r.status_code == status and r.json()["error"]["code"] == code, (body, r.text)
    assert answers(engine) == 0
    # a stale page: bob answered the item after ann's page showed it
    rq.record_answer(engine, "q", item["id"], "bob", "label", "balance")
    r = client.post(
        "/api/answer",
        json={"item_id": item["id"], "action": "label", "label": "refund"},
        headers=h,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "stale_item"
    assert answers(engine) == 1
    # nothing to undo for a fresh reviewer
    csrf2 = login(client, add_reviewer(engine, "cy"))
    r = client.post("/api/undo", headers={"X-CSRF-Token": csrf2})
    assert r.status_code == 409
    assert answers(engine) == 1


def test_tokens_missing_wrong_expired(site: tuple[TestClient, sa.Engine, str]) -> None:
    client, engine, _ = site
    r = client.post("/api/answer", json={"item_id": 1, "action": "skip"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
    client.cookies.set("gc_review", "not-a-token")
    assert client.post("/api/answer", json={"item_id": 1, "action": "skip"}).status_code == 401
    token = add_reviewer(engine, "old", hours=1)
    with engine.begin() as conn:
        conn.execute(review_reviewers.update().values(expires=dt.datetime(2020, 1, 1)))
    client.cookies.set("gc_review", token)
    r = client.post("/api/answer", json={"item_id": 1, "action": "skip"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_token"
    page = client.get("/")
    assert page.status_code == 401 and "expired" in page.text
    # the login form refuses a bad token with the message, and a form without its CSRF nonce
    client.cookies.clear()
    r = client.post("/login", data={"token": "nope", "csrf": "x"})
    assert r.status_code == 403
    assert answers(engine) == 0


def test_unknown_queue_is_refused(tmp_path: Path) -> None:
    engine = init_db(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(rq.ReviewError, match="no review queue 'nope'"):
        create_review_app(engine, "nope")
    engine.dispose()


def test_store_url_roundtrip(site: tuple[TestClient, sa.Engine, str]) -> None:
    _, _, url = site
    engine = get_engine(url)
    assert rq.load_queue(engine, "q").labels == LABELS
    engine.dispose()


def test_new_label_offered_only_when_the_queue_allows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = init_db(url)
    row = {"ts": T0, "model_name": "m", "model_version": "v1", "label": "refund", "score": 0.5, "output": {}}
    insert_rows(engine, predictions, [{**row, "request_id": f"r{i}", "input_text": f"t {i}"} for i in range(3)])
    rq.build_queue(url, "open", labels=LABELS, config=rq.QueueConfig(allow_new_labels=True))
    with TestClient(create_review_app(engine, "open")) as client:
        csrf = login(client, add_reviewer(engine, "ann"))
        st = state(client.get("/").text)
        assert st["allow_new_labels"] is True
        body = {"item_id": st["item"]["id"], "action": "label", "label": "crypto"}
        r = client.post("/api/answer", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 422 and "send new_label=true" in r.json()["error"]["message"]
        r = client.post("/api/answer", json={**body, "new_label": True}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["new_label"] is True
    engine.dispose()
