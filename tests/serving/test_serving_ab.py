"""Model-version A/B: sticky salted-hash assignment, exposures once per unit, feedback → `ab analyze`."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from growthcurve.errors import ConfigError
from growthcurve.serving import ServeSettings, assign_variant, create_app, parse_weights, unit_uniform
from growthcurve.serving.experiment import write_ab_config
from growthcurve.store import experiment_events


def _events(store_url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(experiment_events).order_by(experiment_events.c.id))]
    engine.dispose()
    return rows


def _ab_client(handlers: Any, store_url: str, **kw: Any) -> TestClient:
    settings = ServeSettings(experiment="tiny-ab", salt="s1", **kw)
    return TestClient(create_app(list(handlers), settings, store_url))


# ---- assignment (pure) --------------------------------------------------------------------------------------


def test_unit_uniform_is_the_salted_sha256_prefix() -> None:
    expected = int(hashlib.sha256(b"salt:exp:user-42").hexdigest()[:16], 16) / 2**64
    assert unit_uniform("salt", "exp", "user-42") == expected
    assert unit_uniform("salt", "exp", "user-42") != unit_uniform("other", "exp", "user-42")


@pytest.mark.parametrize("weights", [[0.5, 0.5], [0.3, 0.7], [0.2, 0.3, 0.5]])
def test_assignment_is_sticky_and_respects_weights(weights: list[float]) -> None:
    n = 10_000
    arms = [assign_variant(unit_uniform("salt", "exp", f"u{i}"), weights) for i in range(n)]
    assert arms == [assign_variant(unit_uniform("salt", "exp", f"u{i}"), weights) for i in range(n)]  # sticky
    for k, w in enumerate(weights):
        sd = math.sqrt(n * w * (1 - w))
        assert abs(arms.count(k) - n * w) < 4 * sd, (k, arms.count(k), n * w)


def test_assign_variant_edges() -> None:
    assert assign_variant(0.0, [0.5, 0.5]) == 0
    assert assign_variant(0.5, [0.5, 0.5]) == 1
    assert assign_variant(0.999999, [0.0, 1.0]) == 1
    assert assign_variant(0.2, [0.0, 1.0]) == 1  # a zero-weight arm never gets a unit
    assert assign_variant(1.0 - 1e-17, [0.1] * 10) == 9  # rounding of the cumulative sum stays in range


def test_parse_weights() -> None:
    assert parse_weights("50,50", 2) == [0.5, 0.5]
    assert parse_weights("1,3", 2) == [0.25, 0.75]
    assert parse_weights(None, 3) == pytest.approx([1 / 3] * 3)
    for bad, msg in [("50", "2 runs"), ("a,b", "'a' is not a number"), ("-1,2", ">= 0"), ("0,0", "sum to 0")]:
        with pytest.raises(ConfigError, match=msg):
            parse_weights(bad, 2)


# ---- the A/B app ----------------------------------------------------------------------------------------------


def test_ab_mode_needs_unit_id_and_an_experiment_name(text_handlers: Any, store_url: str) -> None:
    with pytest.raises(ConfigError, match="--experiment"):
        create_app(list(text_handlers), ServeSettings(), store_url)
    with _ab_client(text_handlers, store_url) as c:
        r = c.post("/predict", json={"text": "good"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unit_id_required"
        assert c.post("/predict", json={"text": "good", "unit_id": "u1"}).status_code == 200


def test_sticky_variants_and_exposure_once_per_unit(text_handlers: Any, store_url: str) -> None:
    versions = {"control": text_handlers[0].model_version, "treatment": text_handlers[1].model_version}
    seen: dict[str, str] = {}
    with _ab_client(text_handlers, store_url) as c:
        for _ in range(3):
            for u in ("u1", "u2", "u3", "u4", "u5", "u6"):
                body = c.post("/predict", json={"text": "so good", "unit_id": u}).json()
                assert versions[body["variant"]] == body["model_version"]
                assert seen.setdefault(u, body["variant"]) == body["variant"]  # same unit, same model
    expected = {u: ["control", "treatment"][assign_variant(unit_uniform("s1", "tiny-ab", u), [0.5, 0.5])] for u in seen}
    assert seen == expected
    with _ab_client(text_handlers, store_url) as c:  # a restart must not expose anyone twice
        c.post("/predict", json={"text": "bad", "unit_id": "u1"})
        c.post("/predict", json={"text": "bad", "unit_id": "u7"})
    ev = _events(store_url)
    exposures = [(e["unit_id"], e["variant"], e["model_version"]) for e in ev if e["metric"] == "exposure"]
    assert sorted(x[0] for x in exposures) == ["u1", "u2", "u3", "u4", "u5", "u6", "u7"]
    assert all(versions[v] == mv and seen.get(u, v) == v for u, v, mv in exposures)
    assert all(e["experiment"] == "tiny-ab" and e["value"] == 1.0 for e in ev)


def test_feedback_becomes_metric_events_of_the_experiment(text_handlers: Any, store_url: str) -> None:
    with _ab_client(text_handlers, store_url) as c:
        p = c.post("/predict", json={"text": "awful", "unit_id": "alice"}).json()
        r = c.post(
            "/feedback",
            json={"request_id": p["request_id"], "thumbs": True, "rating": 5, "click": False, "label": "neg"},
        )
        assert r.status_code == 200 and r.json()["variant"] == p["variant"]
    ev = [e for e in _events(store_url) if e["metric"] != "exposure"]
    served = p["predictions"][0]["label"]
    assert sorted((e["metric"], e["value"]) for e in ev) == [
        ("accuracy", 1.0 if served == "neg" else 0.0),  # the corrected label decides, not the thumbs
        ("click", 0.0),
        ("rating", 5.0),
        ("thumbs", 1.0),
    ]
    assert {(e["unit_id"], e["variant"], e["model_version"]) for e in ev} == {
        ("alice", p["variant"], p["model_version"])
    }


def test_served_accuracy_works_with_the_usual_feedback_ui(text_handlers: Any, store_url: str) -> None:
    """A label is sent only when the answer was wrong: thumbs-up counts 1, a differing label 0, a confirming
    label 1, a thumbs-down 0, a rating alone no accuracy at all (so the metric is never constant 0)."""
    with _ab_client(text_handlers, store_url) as c:
        sent = {}
        for unit, fb in (
            ("u-up", {"thumbs": True}),
            ("u-down", {"thumbs": False}),
            ("u-rate", {"rating": 4}),
            ("u-fix", "wrong"),
            ("u-same", "right"),
        ):
            p = c.post("/predict", json={"text": "so awful", "unit_id": unit}).json()
            served = p["predictions"][0]["label"]
            other = "pos" if served == "neg" else "neg"
            if fb == "wrong":
                fb = {"label": other}
            elif fb == "right":
                fb = {"label": served}
            assert c.post("/feedback", json={"request_id": p["request_id"], **fb}).status_code == 200
            sent[unit] = fb
    acc = {e["unit_id"]: e["value"] for e in _events(store_url) if e["metric"] == "accuracy"}
    assert acc == {"u-up": 1.0, "u-down": 0.0, "u-fix": 0.0, "u-same": 1.0}


def test_served_feedback_is_analysed_by_the_ab_cli(text_handlers: Any, store_url: str, tmp_path: Path) -> None:
    """Two tiny models served, feedback posted, `growthcurve ab analyze` reads the store (no export step)."""
    from growthcurve.cli import main

    thumbs: dict[str, list[float]] = {"control": [], "treatment": []}
    units: dict[str, set[str]] = {"control": set(), "treatment": set()}
    with _ab_client(text_handlers, store_url) as c:
        for i in range(80):
            u = f"user{i}"
            p = c.post("/predict", json={"text": "so good" if i % 2 else "so bad", "unit_id": u}).json()
            units[p["variant"]].add(u)
            if i % 5 == 4:
                continue  # exposed, no feedback: counts for SRM, not for the thumbs mean
            up = (i % 7 != 0) if p["variant"] == "treatment" else (i % 4 == 0)
            fb = c.post("/feedback", json={"request_id": p["request_id"], "thumbs": up})
            assert fb.status_code == 200
            thumbs[p["variant"]].append(1.0 if up else 0.0)
    cfg = write_ab_config(tmp_path / "ab.yaml", store_url, "tiny-ab", {"control": 0.5, "treatment": 0.5})
    doc = yaml.safe_load(cfg.read_text())
    assert doc["source"]["experiment"] == "tiny-ab" and doc["source"]["url"] == store_url
    out = tmp_path / "ab-out"
    main(["ab", "analyze", str(cfg), "--out", str(out), "--no-report"])  # raises SystemExit on any error
    res = json.loads((out / "result.json").read_text())
    assert res["srm"]["counts"] == {v: len(s) for v, s in units.items()}
    m = next(x for x in res["metrics"] if x["metric"] == "thumbs")
    arms = {a["variant"]: a for a in m["arms"]}
    for v in ("control", "treatment"):  # one thumb per unit, so the per-unit mean is the thumb itself
        assert arms[v]["n"] == len(thumbs[v])
        assert arms[v]["mean"] == pytest.approx(sum(thumbs[v]) / len(thumbs[v]))
    (comp,) = m["comparisons"]
    assert comp["control"] == "control" and comp["treatment"] == "treatment"
    assert comp["frequentist"]["p_value"] < 0.05  # ~6/7 vs ~1/4 thumbs up over ~32 units each
    assert comp["bayesian"]["chance_to_win"] > 0.95 and comp["sequential"] is not None
