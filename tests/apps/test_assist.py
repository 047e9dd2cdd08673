"""The customer-service assistant: calibration, threshold choice, handoff, global fallback, the store log
across a restart, the HTTP route and the bad-input rows (TF-IDF intent model + tiny BERT encoder: seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from growthcurve.apps.assist import (
    AssistRun,
    apply_temperature,
    choose_threshold,
    coverage_curve,
    fit_assistant,
    fit_temperature,
    load_assist_config,
)
from growthcurve.apps.assist.calibration import nll
from growthcurve.errors import DataError
from growthcurve.training.modelcard import expected_calibration_error
from tests.bad_input.conftest import Case, cases_param, run_case
from tests.conftest import toy_rows, write_csv

FAQ = "intent,question,answer\npos,I loved the film,Glad you liked it!\nneg,The movie was awful,Sorry to hear that.\n"


def _data(d: Path) -> dict[str, Path]:
    return {
        "train": write_csv(d / "train.csv", toy_rows(200, 0)),
        "dev": write_csv(d / "dev.csv", toy_rows(80, 1)),
        "test": write_csv(d / "test.csv", toy_rows(60, 2)),
    }


def _sets(d: Path, data: dict[str, Path], encoder: Path, faq: Path, out: str = "run") -> list[str]:
    return [
        f"data.train={data['train']}",
        f"data.dev={data['dev']}",
        f"data.test={data['test']}",
        f"faq={faq}",
        f"encoder.name_or_path={encoder}",
        "encoder.max_length=32",
        f"output_dir={d / out}",
    ]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    d = tmp_path_factory.mktemp("assist")
    data = _data(d)
    faq = d / "faq.csv"
    faq.write_text(FAQ, encoding="utf-8")
    return fit_assistant(load_assist_config(None, _sets(d, data, tiny_bert, faq)), progress=False, log=lambda _: None)


# ---- pure functions ---------------------------------------------------------------------------------------


def test_temperature_scaling_lowers_ece_on_overconfident_toy_set() -> None:
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    y = rng.integers(0, k, n)
    # a model that is right 70% of the time but says 0.97 every time: overconfident
    pred = np.where(rng.random(n) < 0.7, y, (y + rng.integers(1, k, n)) % k)
    probs = np.full((n, k), 0.01)
    probs[np.arange(n), pred] = 0.97
    t = fit_temperature(probs, y)
    cal = apply_temperature(probs, t)
    assert t > 1  # softened
    assert expected_calibration_error(cal, y) < 0.5 * expected_calibration_error(probs, y)
    assert nll(probs, y, t) < nll(probs, y, 1.0)
    # the calibrated confidence is the accuracy (one confidence level): 0.7 within sampling noise
    assert abs(cal.max(1).mean() - (pred == y).mean()) < 0.02
    assert (cal.argmax(1) == probs.argmax(1)).all()  # temperature never changes the ranking


def test_choose_threshold_golden() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    ok = np.array([True, True, False, True, False])
    t, cov, acc = coverage_curve(conf, ok)
    assert t.tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert acc.tolist() == pytest.approx([1, 1, 2 / 3, 3 / 4, 3 / 5])
    assert choose_threshold(conf, ok, 0.75) == (0.6, 0.8, 0.75, True)  # lowest t meeting the target
    assert choose_threshold(conf, ok, 1.0) == (0.8, 0.4, 1.0, True)
    bad = np.array([False, True, False, False, False])
    assert choose_threshold(conf, bad, 0.9) == (0.8, 0.4, 0.5, False)  # unreachable: best accuracy


def _wilson_lower(k: int, n: int, z: float) -> float:
    """Wilson (1927) score interval lower end, written out independently of statsmodels."""
    p = k / n
    return (p + z * z / (2 * n) - z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def test_choose_threshold_with_a_lower_bound_keeps_a_margin() -> None:
    rng = np.random.default_rng(3)
    conf = np.sort(rng.uniform(size=400))[::-1]
    ok = rng.uniform(size=400) < np.linspace(1.0, 0.6, 400)  # accuracy falls with confidence
    point = choose_threshold(conf, ok, 0.9)
    t, cov, acc, reached = choose_threshold(conf, ok, 0.9, bound=0.9)
    assert reached and t > point[0] and cov < point[1]  # the margin costs coverage
    z = 1.2815515655446004  # one-sided 90%
    n = int(round(cov * 400))
    assert _wilson_lower(int(round(acc * n)), n, z) >= 0.9
    # the next lower threshold (one more row answered) misses the bounded target
    k_next = int(ok[: n + 1].sum())
    assert _wilson_lower(k_next, n + 1, z) < 0.9
    with pytest.raises(DataError, match="bound"):
        choose_threshold(conf, ok, 0.9, bound=1.0)


# ---- the run ----------------------------------------------------------------------------------------------


def test_fit_beats_chance_and_records_calibration(toy_run: Path) -> None:
    meta = json.loads((toy_run / "assist.json").read_text(encoding="utf-8"))
    m = json.loads((toy_run / "metrics.json").read_text(encoding="utf-8"))
    assert m["test"]["intent_accuracy"] > 0.7  # 2 balanced classes: chance is 0.5
    assert m["test"]["hit@1"] == pytest.approx(m["test"]["intent_accuracy"])  # one FAQ entry per intent
    assert 0 <= meta["threshold"] <= 1 and meta["temperature"] > 0
    assert (toy_run / "coverage_test.png").stat().st_size > 1000


def test_hands_over_below_threshold_and_answers_above(toy_run: Path) -> None:
    run = AssistRun(toy_run)
    run.detector = None  # the confidence threshold alone (out-of-scope handoff: the test below)
    q = ["great movie, really love it"]
    run.threshold = 0.0
    r = run.answer(q)[0]
    assert r["outcome"] == "answer" and r["answer"] == "Glad you liked it!" and r["intent"] == "pos"
    run.threshold = r["confidence"] + 1e-6  # just above: the same question is now handed over
    h = run.answer(q)[0]
    assert h["outcome"] == "handoff" and h["reason"] == "low_confidence" and h["answer"] is None
    assert "below the threshold" in h["message"]


def test_hands_over_a_planted_out_of_scope_question(toy_run: Path) -> None:
    """The TF-IDF intent model is confident on anything; the kNN on the encoder's vectors of the training
    questions (answer.out_of_scope=auto with a TF-IDF intent model) hands the planted question over."""
    meta = json.loads((toy_run / "assist.json").read_text(encoding="utf-8"))
    assert meta["out_of_scope_source"] == "encoder" and meta["out_of_scope_detector"] == "knn"
    run = AssistRun(toy_run)
    run.threshold = 0.0
    far, near = run.answer(["zxq vbnm qwrtp kjhg plmq", "the film was really good"])
    assert far["outcome"] == "handoff" and far["reason"] == "out_of_scope" and far["out_of_scope"] is True
    assert "unlike what the assistant was trained on" in far["message"] and far["confidence"] > 0.5
    assert near["outcome"] == "answer" and near["out_of_scope"] is False


def test_retrieval_falls_back_to_global_when_intent_has_no_faq(tmp_path: Path, tiny_bert: Path) -> None:
    data = _data(tmp_path)
    faq = tmp_path / "faq.csv"
    faq.write_text("intent,question,answer\npos,I loved the film,Glad you liked it!\n", encoding="utf-8")
    cfg = load_assist_config(None, [*_sets(tmp_path, data, tiny_bert, faq), "answer.threshold=0"])
    run = AssistRun(fit_assistant(cfg, progress=False, log=lambda _: None))
    neg = run.answer(["terrible awful movie, hate it"])[0]
    assert neg["intent"] == "neg" and neg["retrieval"] == "global"
    assert neg["candidates"][0]["question"] == "I loved the film"
    pos = run.answer(["great excellent film"])[0]
    assert pos["intent"] == "pos" and pos["retrieval"] == "intent"


def test_chat_turns_and_handoffs_survive_a_restart(toy_run: Path, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from growthcurve.apps.assist.pipeline import session_turns
    from growthcurve.cli import app

    url = f"sqlite:///{tmp_path / 'store.db'}"
    stdin = "the film was really great\n\nignored after the empty line\n"
    res = CliRunner().invoke(app, ["assist", "chat", str(toy_run), "--session", "s1", "--store", url], input=stdin)
    assert res.exit_code == 0, res.output
    # a handoff turn: a second process with the threshold above every confidence
    spec = json.loads((toy_run / "assist.json").read_text(encoding="utf-8"))
    run = AssistRun(toy_run)
    run.threshold = 1.01
    run.detector = None  # a low-confidence handoff (not an out-of-scope one)
    from growthcurve.apps.assist.pipeline import log_turn
    from growthcurve.store import init_db

    engine = init_db(url)
    log_turn(engine, "s1", "chat", run, "awful", run.answer(["awful"])[0])
    engine.dispose()
    fresh = sa.create_engine(url)  # "after a restart": a new engine on the same file
    turns = session_turns(fresh, "s1")
    assert [t["turn"] for t in turns] == [1, 2]
    assert [t["outcome"] for t in turns] == ["answer", "handoff"]
    assert turns[1]["reason"] == "low_confidence"
    assert {t["model_version"] for t in turns} == {spec["model_version"]}


def test_http_answer_feedback_and_bad_requests(toy_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from growthcurve.apps.assist.pipeline import session_turns
    from growthcurve.apps.assist.service import AssistHandler, answer_router
    from growthcurve.serving import ServeSettings, create_app
    from growthcurve.store import get_engine

    url = f"sqlite:///{tmp_path / 'http.db'}"
    app = create_app([AssistHandler(AssistRun(toy_run))], ServeSettings(), url, routers=[answer_router(url)])
    with TestClient(app) as c:
        r = c.post("/answer", json={"question": "love this great film", "session_id": "web-1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["session_id"] == "web-1" and body["turn"] == 1
        assert body["predictions"][0]["intent"] == "pos"
        fb = c.post("/feedback", json={"request_id": body["request_id"], "thumbs": False, "label": "neg"})
        assert fb.status_code == 200, fb.text
        assert c.post("/feedback", json={"request_id": body["request_id"], "label": "nope"}).status_code == 422
        for bad, status in (
            ({"question": "hi", "session_id": 7}, 422),
            ({"question": "   "}, 422),
            ({"question": "x" * 5000}, 413),
            ({"question": None}, 422),
        ):
            resp = c.post("/answer", json=bad)
            assert resp.status_code == status, (bad, resp.text)
            assert "error" in resp.json()
        assert c.post("/answer", json={"question": "awful", "session_id": "web-1"}).json()["turn"] == 2
    assert [t["turn"] for t in session_turns(get_engine(url), "web-1")] == [1, 2]


# ---- bad input through the CLI ----------------------------------------------------------------------------

_TRAIN = "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in toy_rows(40, 0))


def _fit_case(cid: str, faq: str, fragment: str) -> Case:
    return Case(
        cid,
        [
            "assist",
            "fit",
            "--set",
            "faq=faq.csv",
            "--set",
            "data.train=t.csv",
            "--set",
            "data.dev=t.csv",
            "--set",
            "output_dir=out",
        ],
        files={"faq.csv": faq, "t.csv": _TRAIN},
        fragment=fragment,
    )


CASES = [
    _fit_case("faq-empty-answer", "intent,question,answer\npos,hello,\n", "line 2: the answer is empty"),
    _fit_case(
        "faq-duplicate-question",
        "intent,question,answer\npos,Hello there,a\nneg,hello  THERE,b\n",
        "duplicates line 2",
    ),
    _fit_case("faq-no-answer-column", "question\nhi\n", "no column 'answer'"),
    Case("eval-not-a-run", ["assist", "eval", "nowhere", "d.csv"], files={"d.csv": _TRAIN}, fragment="assist.json"),
    Case("chat-not-a-run", ["assist", "chat", "nowhere"], fragment="not a finished assist run"),
]


@cases_param(CASES)
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)


def test_unknown_faq_intent_is_one_line(toy_run: Path, tmp_path: Path) -> None:
    from growthcurve.apps.assist.faq import read_faq
    from growthcurve.errors import DataError

    p = tmp_path / "faq.jsonl"
    p.write_text('{"intent": "refund", "question": "money back?", "answer": "yes"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="intent 'refund' is not one the classifier knows"):
        read_faq(p, AssistRun(toy_run).labels)


def test_a_fit_that_stops_midway_leaves_no_loadable_run(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assist.json is written once, last: a crash after the intent model is trained leaves no spec (it used
    to leave a placeholder with threshold 0 that serve loaded and that never handed over)."""
    import growthcurve.apps.assist.pipeline as pipeline
    from growthcurve.errors import ModelError

    data = _data(tmp_path)
    faq = tmp_path / "faq.csv"
    faq.write_text(FAQ, encoding="utf-8")

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("power cut while scoring dev")

    monkeypatch.setattr(pipeline, "evaluate_assistant", boom)
    with pytest.raises(RuntimeError, match="power cut"):
        fit_assistant(load_assist_config(None, _sets(tmp_path, data, tiny_bert, faq)), progress=False, log=print)
    assert (tmp_path / "run" / "intent" / "model").is_dir() and not (tmp_path / "run" / "assist.json").exists()
    with pytest.raises(ModelError, match="not a finished assist run"):
        AssistRun(tmp_path / "run")
