"""The sentiment monitor: the surge test's statistics, exactly-once resume, webhooks, bad input, the trained
path end to end (tiny BERT through `monitor fit`) and the HTTP routes on the serving layer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from scipy.stats import hypergeom

from growthcurve.apps.monitor.detect import DetectorSettings, SurgeDetector, adjust, surge_pvalue
from growthcurve.apps.monitor.pipeline import StreamMonitor, list_alerts, list_windows, load_state, write_outputs
from growthcurve.apps.monitor.stream import parse_timestamp
from growthcurve.apps.monitor.synthetic import SENTIMENT, TOPICS, VOCAB, write_stream
from growthcurve.apps.monitor.webhook import post_alert
from growthcurve.store import init_db
from tests.bad_input.conftest import Case, cases_param, run_case

NEG = set(SENTIMENT["negative"])


class Oracle:
    """Reads sentiment and topic off the generator's words, so these tests isolate the monitor's logic;
    ``fail_on_call`` raises inside a batch (a crash before its commit)."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.fail_on_call = fail_on_call

    def classify(self, texts: list[str]) -> tuple[list[bool], list[str | None]]:
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("killed mid-batch")
        words = [set(t.split()) for t in texts]
        topics = [next(k for k, ws in TOPICS.items() if set(ws) & w) for w in words]
        return [bool(NEG & w) for w in words], topics


def _engine(tmp_path: Path, name: str = "m.db") -> sa.Engine:
    return init_db(f"sqlite:///{tmp_path / name}")


def _stream(tmp_path: Path, **kw: Any) -> Path:
    args = {"windows": 60, "per_window": 200, "surge_topic": "crypto", "surge_start": 40, "surge_share": 0.5}
    args.update(kw)
    return write_stream(tmp_path / "stream.jsonl", **args)


# --- statistics --------------------------------------------------------------------------------------
def test_surge_pvalue_is_the_hypergeometric_tail() -> None:
    # Fisher's one-sided p = P(X >= neg) for X ~ Hypergeom(total, negatives, window size): computed apart
    for neg, n, bneg, bn in [(12, 40, 50, 400), (3, 30, 60, 300), (0, 25, 10, 200), (25, 25, 0, 100)]:
        expected = hypergeom.sf(neg - 1, n + bn, neg + bneg, n)
        assert surge_pvalue(neg, n, bneg, bn) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        surge_pvalue(5, 3, 1, 10)


def test_holm_and_bh_match_hand_computation() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    # Holm: sorted 0.01*4, max(0.03*3, .04), max(0.04*2, .09), max(0.2, .09) → back in input order
    assert adjust(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])
    # BH: sorted p_(i) * m / i = .04, .06, .0533, .2; cumulative min from the top → .04, .0533, .0533, .2
    assert adjust(p, "fdr_bh") == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert adjust([], "holm") == []
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(0, 0.2, size=rng.integers(1, 9)).tolist()
        for method in ("holm", "fdr_bh", "bonferroni"):
            assert adjust(q, method) == pytest.approx(multipletests(q, method=method)[1].tolist())


def test_detector_gates_on_volume_and_keeps_alerted_windows_out_of_the_baseline() -> None:
    s = DetectorSettings(window_seconds=10, baseline_windows=3, alpha=0.05, min_volume=10, min_baseline=30)
    det = SurgeDetector(s)
    rows: list[dict[str, Any]] = []
    plan = [(20, 2), (20, 2), (20, 2), (20, 15), (20, 2), (5, 5)]  # (n, negatives) per window
    for w, (n, k) in enumerate(plan):
        for i in range(n):
            rows += det.add(w * 10 + i * 0.1, "t", i < k)
    rows += det.close()
    by_w = {r["window"]: r for r in rows}
    assert by_w[0]["p_value"] is None and by_w[1]["p_value"] is None  # baseline of 0 / 20 texts < 30
    assert by_w[2]["p_value"] is not None and not by_w[2]["alert"]
    assert by_w[3]["alert"] and by_w[3]["baseline_n"] == 60
    # window 4's baseline is windows 1..3 without the alerted window 3: 40 texts, not 60
    assert by_w[4]["baseline_n"] == 40 and not by_w[4]["alert"]
    assert by_w[5]["p_value"] is None  # 5 texts < min_volume, even though all are negative
    assert det.add(0.0, "t", True) == [] and det.late == 1  # older than the open window: late, not counted


def _run(plan: list[tuple[int, int]], max_scale: int, alpha: float = 0.01) -> dict[int, dict[str, Any]]:
    s = DetectorSettings(
        window_seconds=10, baseline_windows=6, alpha=alpha, min_volume=10, min_baseline=30, max_scale=max_scale
    )
    det = SurgeDetector(s)
    rows: list[dict[str, Any]] = []
    for w, (n, k) in enumerate(plan):
        for i in range(n):
            rows += det.add(w * 10 + i * 0.01, "t", i < k)
    rows += det.close()
    return {r["window"]: r for r in rows}


def test_two_window_scale_catches_a_surge_one_window_misses() -> None:
    plan = [(40, 4)] * 6 + [(40, 10), (40, 10)]  # 10% baseline, then two windows at 25%
    one, two = _run(plan, 1), _run(plan, 2)
    assert not one[6]["alert"] and not one[7]["alert"]  # too weak for one window of 40 texts
    assert two[7]["alert"] and two[7]["scale"] == 2
    # golden: windows 6+7 (20 of 80) against the baseline before the block (windows 1..5: 20 of 200),
    # Bonferroni over the 2 scales tested
    p2 = surge_pvalue(20, 80, 20, 200)
    assert two[7]["p_value"] == pytest.approx(min(1.0, 2 * min(p2, surge_pvalue(10, 40, 30, 240))))
    # an alerted window ends the block: the window after a surge is tested alone
    after = _run([(40, 4)] * 6 + [(40, 30), (40, 4)], 2)
    assert after[6]["alert"] and after[7]["scale"] == 1


def test_multi_scale_keeps_the_false_alert_rate_at_alpha() -> None:
    rng = np.random.default_rng(0)
    plan = [(60, int(rng.binomial(60, 0.15))) for _ in range(3000)]
    rows = _run(plan, 2, alpha=0.01)
    tested = [r for r in rows.values() if r["p_value"] is not None]
    rate = sum(r["alert"] for r in tested) / len(tested)
    assert rate <= 0.01  # family-wise over the two scales of a window


def test_timestamps() -> None:
    assert parse_timestamp("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_timestamp("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert parse_timestamp("2026-01-01 00:00:00") == 1767225600.0  # naive = UTC
    assert parse_timestamp(1767225600) == 1767225600.0
    for bad in ("yesterday", True, None, float("nan"), [1]):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


# --- the stream ---------------------------------------------------------------------------------------
def test_exactly_the_injected_alert_and_none_on_the_clean_stream(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    summary = StreamMonitor(Oracle(), _stream(tmp_path), eng, "surge", log=lambda m: None).run()
    assert summary.processed == 60 * 200 and summary.windows_closed == 60
    alerts = list_alerts(eng, "surge")
    assert [(a["topic"], a["window_start"].isoformat()) for a in alerts] == [("crypto", "2026-01-02T16:00:00")]
    assert alerts[0]["baseline_n"] == 24 * 50 and alerts[0]["negative_share"] > 2 * alerts[0]["baseline_share"]

    clean = write_stream(tmp_path / "clean.jsonl", windows=60, per_window=200, seed=1)
    assert StreamMonitor(Oracle(), clean, eng, "clean", log=lambda m: None).run().alerts == []
    assert list_alerts(eng, "clean") == []

    csv_path, png_path = write_outputs(eng, "surge", tmp_path / "out")
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("window_start,topic,n,negative,negative_share") and len(lines) == 1 + 60 * 4
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_after_a_crash_processes_no_line_twice_and_skips_none(tmp_path: Path) -> None:
    stream = _stream(tmp_path, windows=30, per_window=40, surge_start=26, surge_share=0.9)
    settings = DetectorSettings(min_volume=5, min_baseline=20)
    ref_eng = _engine(tmp_path, "ref.db")
    StreamMonitor(Oracle(), stream, ref_eng, "m", settings, batch_size=37, log=lambda m: None).run()
    eng = _engine(tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        StreamMonitor(Oracle(fail_on_call=9), stream, eng, "m", settings, batch_size=37, log=lambda m: None).run()
    assert load_state(eng, "m")["processed"] == 8 * 37  # the 9th batch never committed
    StreamMonitor(Oracle(), stream, eng, "m", settings, batch_size=37, log=lambda m: None).run()

    def series(e: sa.Engine) -> list[tuple[Any, ...]]:
        return [(r["window_start"], r["topic"], r["n"], r["negative"], r["alert"]) for r in list_windows(e, "m")]

    assert series(eng) == series(ref_eng)
    assert sum(r[2] for r in series(eng)) == 30 * 40 == load_state(eng, "m")["processed"]
    assert [a["window_start"] for a in list_alerts(eng, "m")] == [a["window_start"] for a in list_alerts(ref_eng, "m")]


_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from tests.apps.test_monitor import Oracle
from growthcurve.apps.monitor.detect import DetectorSettings
from growthcurve.apps.monitor.pipeline import StreamMonitor
from growthcurve.store import init_db

class Slow(Oracle):
    def classify(self, texts):
        time.sleep(0.05)
        return super().classify(texts)

StreamMonitor(Slow(), {stream!r}, init_db({url!r}), "m", DetectorSettings(min_volume=5, min_baseline=20),
              batch_size=13, log=lambda m: None).run()
"""


def test_resume_after_kill_9(tmp_path: Path) -> None:
    stream = _stream(tmp_path, windows=20, per_window=40, surge_start=17)
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    eng = init_db(url)
    root = str(Path(__file__).resolve().parents[2])
    code = _CHILD.format(root=root, stream=str(stream), url=url)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=root)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = load_state(eng, "m")
            if st is not None and st["processed"] >= 13 * 5:
                break
            assert child.poll() is None, "the child ended before it was killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    done = load_state(eng, "m")["processed"]
    assert 0 < done < 20 * 40 and done % 13 == 0
    settings = DetectorSettings(min_volume=5, min_baseline=20)
    StreamMonitor(Oracle(), stream, eng, "m", settings, batch_size=13, log=lambda m: None).run()
    ref = _engine(tmp_path, "ref.db")
    StreamMonitor(Oracle(), stream, ref, "m", settings, batch_size=13, log=lambda m: None).run()
    rows = [(r["window_start"], r["topic"], r["n"], r["negative"]) for r in list_windows(eng, "m")]
    assert rows == [(r["window_start"], r["topic"], r["n"], r["negative"]) for r in list_windows(ref, "m")]
    assert sum(r[2] for r in rows) == 20 * 40


def test_malformed_lines_are_skipped_with_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    good = '{"timestamp": "2026-01-01T00:00:00Z", "text": "oil rally today"}'
    p.write_text(
        "\n".join(
            [
                good,
                "{not json",
                '{"text": "no time"}',
                '{"timestamp": "soon", "text": "bitcoin crash"}',
                '{"timestamp": "2026-01-01T00:10:00Z", "text": ""}',
                "[1, 2]",
                "",
                good.replace("00:00:00", "00:20:00"),
            ]
        )
        + "\n"
    )
    logs: list[str] = []
    summary = StreamMonitor(Oracle(), p, _engine(tmp_path), log=logs.append).run()
    assert summary.processed == 2 and summary.bad_lines == 5
    assert any(f"{p}:2: not JSON" in m for m in logs) and any(f"{p}:4: timestamp 'soon'" in m for m in logs)
    assert any(f"{p}:6: not a JSON object" in m for m in logs)


def test_folder_source_picks_up_new_files_and_lines(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_stream(folder / "a.jsonl", windows=5, per_window=8)
    eng = _engine(tmp_path)
    assert StreamMonitor(Oracle(), folder, eng, "f", log=lambda m: None).run().processed == 40
    write_stream(folder / "b.jsonl", windows=5, per_window=8)
    with (folder / "a.jsonl").open("a") as fh:
        fh.write('{"timestamp": "2026-03-01T00:00:00Z", "text": "oil slump"}\n')
    again = StreamMonitor(Oracle(), folder, eng, "f", log=lambda m: None).run()
    assert again.processed == 41  # the new file and the appended line, nothing read before
    assert again.late == 40  # b.jsonl repeats January, which this monitor closed already: counted, skipped


def test_a_half_written_line_waits_for_its_newline_when_following(tmp_path: Path) -> None:
    from growthcurve.apps.monitor.stream import read_lines

    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"timestamp": 1, "text": "a b"}\n{"timestamp": 2, "te')
    with p.open("rb") as fh:
        assert [r.line for r in read_lines(fh, "s", 0, 0, final=False)] == [1]


# --- webhook -------------------------------------------------------------------------------------------
def test_webhook_is_retried_then_delivered() -> None:
    answers = iter([500, 503, 200])
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(next(answers))

    with httpx.Client(transport=httpx.MockTransport(handler)) as c:
        ok, status = post_alert(c, "http://hook", {"topic": "oil"}, retries=3, sleep=lambda s: None)
    assert ok and status == "200" and len(seen) == 3 and seen[0] == {"topic": "oil"}


def test_a_failing_webhook_is_logged_and_never_stops_the_stream(tmp_path: Path) -> None:
    attempts = []

    def timeout(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    logs: list[str] = []
    eng = _engine(tmp_path)
    mon = StreamMonitor(
        Oracle(),
        _stream(tmp_path),
        eng,
        webhook="http://hook/alerts",
        webhook_retries=2,
        webhook_backoff_s=0.0,
        webhook_transport=httpx.MockTransport(timeout),
        log=logs.append,
    )
    summary = mon.run()
    assert summary.processed == 60 * 200 and summary.webhook_failures == 1 and len(attempts) == 3
    assert any("webhook http://hook/alerts failed: timeout after 3 attempts" in m for m in logs)
    (alert,) = list_alerts(eng)
    assert alert["webhook_status"].startswith("failed: timeout")

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as c:
        assert post_alert(c, "http://x", {}, sleep=lambda s: None) == (False, "failed: HTTP 404 (not retried)")


# --- CLI bad input ---------------------------------------------------------------------------------------
CASES = [
    Case("monitor-run-no-folder", ["monitor", "run", "nope", "s.jsonl"], {"s.jsonl": "{}\n"}, fragment="monitor fit"),
    Case("monitor-run-no-stream", ["monitor", "run", "m", "missing.jsonl"], fragment="does not exist"),
    Case("monitor-run-bad-window", ["monitor", "run", "m", "-", "--window", "soon"], fragment="--window"),
    Case("monitor-run-bad-alpha", ["monitor", "run", "m", "-", "--alpha", "2"], fragment="--alpha"),
    Case("monitor-run-bad-webhook", ["monitor", "run", "m", "-", "--webhook", "ftp://x"], fragment="--webhook"),
    Case(
        "monitor-fit-no-column",
        ["monitor", "fit", "--data", "t.csv", "--out", "o"],
        {"t.csv": "text,label\na,b\n"},
        fragment="--sentiment-column",
    ),
    Case(
        "monitor-fit-no-negative",
        ["monitor", "fit", "--data", "t.csv", "--sentiment-column", "label", "--out", "o"],
        {"t.csv": "text,label\na,up\nb,down\n"},
        fragment="--negative-label",
    ),
]


@cases_param(CASES)
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)


# --- the trained path ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def monitor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`monitor fit` on the generated headlines with a tiny BERT of their vocabulary (seconds)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from growthcurve.apps.monitor.model import fit_monitor

    base = tmp_path_factory.mktemp("tiny-fin")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *VOCAB, *"abcdefghijklmnopqrstuvwxyz"]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(base)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(base)
    out = tmp_path_factory.mktemp("mon")
    sets = {
        "model.name_or_path": base,
        "train.epochs": 6,
        "train.class_weights": "balanced",  # the minority (negative) class is otherwise learned last
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "model.max_length": 16,
        "model.extend_vocab": False,
        "model.adapt": "none",
    }
    meta = fit_monitor(out, overrides=[f"{k}={v}" for k, v in sets.items()], progress=False, log=lambda m: None)
    assert meta["negative_label"] == "negative" and meta["topic_run"] == "topic"
    assert meta["sentiment_dev"]["macro_f1"] > 0.9 and meta["topic_dev"]["accuracy"] > 0.9  # chance: 1/3, 1/4
    return out


def test_trained_monitor_raises_the_injected_alert(monitor_dir: Path, tmp_path: Path) -> None:
    from growthcurve.apps.monitor.model import RunClassifier

    eng = _engine(tmp_path)
    stream = _stream(tmp_path, windows=40, per_window=80, surge_start=30, surge_share=0.7)
    clf = RunClassifier(monitor_dir)
    settings = DetectorSettings(min_volume=10, min_baseline=50)
    summary = StreamMonitor(clf, stream, eng, "t", settings, log=lambda m: None).run()
    assert summary.processed == 40 * 80
    assert [(a["topic"], a["window_start"].hour) for a in list_alerts(eng, "t")] == [("crypto", 6)]


def test_http_predict_and_alerts(monitor_dir: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from growthcurve.apps.monitor.model import RunClassifier
    from growthcurve.apps.monitor.service import MonitorHandler, alerts_router
    from growthcurve.serving import ServeSettings, create_app

    url = f"sqlite:///{tmp_path / 'srv.db'}"
    eng = init_db(url)
    StreamMonitor(Oracle(), _stream(tmp_path), eng, "s", log=lambda m: None).run()
    app = create_app([MonitorHandler(RunClassifier(monitor_dir), "mon")], ServeSettings(), url, [alerts_router(eng)])
    with TestClient(app) as client:
        r = client.post("/predict", json={"text": ["bitcoin crash investors today", "oil rally market"]})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert [(p["topic"], p["negative"]) for p in preds] == [("crypto", True), ("energy", False)]
        assert client.post("/predict", json={"text": "  "}).status_code == 422
        a = client.get("/alerts", params={"monitor": "s"})
        assert a.status_code == 200 and [x["topic"] for x in a.json()["alerts"]] == ["crypto"]
        assert client.get("/alerts", params={"limit": 0}).status_code == 422
        assert np.isfinite(preds[0]["score"])


def test_cli_run_writes_outputs_and_lists_alerts(
    monitor_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from growthcurve.cli import main

    stream = _stream(tmp_path, windows=40, per_window=80, surge_start=30, surge_share=0.7)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    argv = ["monitor", "run", str(monitor_dir), str(stream), "--store", url, "--min-volume", "10"]
    main([*argv, "--min-baseline", "50", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "ALERT default topic=crypto" in out and "3200 texts" in out and "1 alerts" in out
    assert (tmp_path / "out" / "timeseries.csv").is_file() and (tmp_path / "out" / "trend.png").is_file()
    main(["monitor", "alerts", "--store", url, "--json"])
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert json.loads(line)["topic"] == "crypto"
    # a second run over the same file finds nothing new: no line is counted twice
    main([*argv, "--min-baseline", "50"])
    assert "0 texts" in capsys.readouterr().out


def test_stdin_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    data = write_stream(tmp_path / "s.jsonl", windows=3, per_window=10).read_bytes() + b"garbage\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    logs: list[str] = []
    summary = StreamMonitor(Oracle(), "-", _engine(tmp_path), batch_size=7, log=logs.append).run()
    assert summary.processed == 30 and summary.bad_lines == 1 and any("<stdin>:31: not JSON" in m for m in logs)


def test_a_folder_that_disappears_is_one_error_after_the_committed_work(tmp_path: Path) -> None:
    import shutil

    from growthcurve.errors import DataError

    folder = tmp_path / "in"
    folder.mkdir()
    write_stream(folder / "a.jsonl", windows=2, per_window=10)

    class Vanishing(Oracle):
        def classify(self, texts: list[str]) -> tuple[list[bool], list[str | None]]:
            shutil.rmtree(folder)  # the folder goes while its first batch is being classified
            return super().classify(texts)

    eng = _engine(tmp_path)
    mon = StreamMonitor(Vanishing(), folder, eng, "v", follow=True, poll_s=0.01, log=lambda m: None)
    with pytest.raises(DataError, match="disappeared.*continues where it stopped"):
        mon.run()
    assert load_state(eng, "v")["processed"] == 20


def test_an_alert_stored_but_never_sent_is_sent_on_restart(tmp_path: Path) -> None:
    from growthcurve.apps.monitor.tables import monitor_alerts

    eng = _engine(tmp_path)
    stream = _stream(tmp_path)
    StreamMonitor(Oracle(), stream, eng, "p", log=lambda m: None).run()
    with eng.begin() as conn:  # as if killed between the commit and the POST
        conn.execute(monitor_alerts.update().values(webhook_status="pending"))
    got: list[dict[str, Any]] = []

    def ok(request: httpx.Request) -> httpx.Response:
        got.append(json.loads(request.content))
        return httpx.Response(200)

    mon = StreamMonitor(
        Oracle(), stream, eng, "p", webhook="http://hook", webhook_transport=httpx.MockTransport(ok), log=lambda m: None
    )
    assert mon.run().processed == 0
    assert [g["topic"] for g in got] == ["crypto"] and list_alerts(eng, "p")[0]["webhook_status"] == "200"


def test_migration_0004_matches_the_tables_and_downgrades(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    import growthcurve.store
    from growthcurve.apps.monitor.tables import metadata

    url = f"sqlite:///{tmp_path / 'mig.db'}"
    eng = init_db(url)
    insp = sa.inspect(eng)
    for table in metadata.sorted_tables:  # the migration creates exactly the columns the code declares
        assert {c["name"] for c in insp.get_columns(table.name)} == {c.name for c in table.columns}
    cfg = Config()
    cfg.set_main_option("script_location", str(growthcurve.store._ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert not {"monitor_alerts", "monitor_windows", "monitor_state"} & set(sa.inspect(eng).get_table_names())
