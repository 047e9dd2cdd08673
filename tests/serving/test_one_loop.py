"""The growth loop on one store, as a user runs it: two tiny versions of one model served as an experiment by a
real `growthcurve serve` process, simulated users, then `ab analyze EXPERIMENT`, `decide` and `report` read the
same store and agree on every lift, CI and p, naming both versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from growthcurve.cli import main
from tests.conftest import free_port, wait_ready


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as ex:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    assert ex.value.code == 0, out.err
    return out.out + out.err


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    ci = tuple(r["ci"]) if r.get("ci") else None
    return (r["metric"], r["variant"], r["n"], r.get("effect"), ci, r.get("p"), r.get("p_adjusted"))


@pytest.mark.slow
def test_serve_analyze_decide_report_agree_on_one_store(
    text_runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'growthcurve.db'}"
    monkeypatch.setenv("GROWTHCURVE_STORE", url)  # the workspace store: no command below names another
    monkeypatch.chdir(tmp_path)
    port = free_port()
    a, b = (str(r) for r in text_runs)
    cmd = [sys.executable, "-m", "growthcurve.cli", "serve", a, b, "--experiment", "loop", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        served = httpx.get(f"{base}/models").json()
        names = [m["variant"] for m in served["models"]]
        model = names[0].split("@")[0]
        assert names == [f"{model}@v1", f"{model}@v2"]  # the arms are the versions, in the order served
        with httpx.Client(base_url=base, timeout=10) as c:
            for i in range(160):  # bounded simulated users: v2's answers get more thumbs up
                p = c.post("/predict", json={"text": "so good" if i % 2 else "so bad", "unit_id": f"u{i}"}).json()
                if i % 6 == 5:
                    continue  # exposed, silent
                up = (i % 5 != 0) if p["variant"].endswith("@v2") else (i % 3 == 0)
                wrong = "neg" if p["predictions"][0]["label"] == "pos" else "pos"
                fb = {"thumbs": True} if up else {"thumbs": False, "label": wrong}  # a fix only when wrong
                assert c.post("/feedback", json={"request_id": p["request_id"], **fb}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    banner = proc.stderr.read().decode() if proc.stderr else ""
    assert f"{model}@v1" in banner and "ab analyze loop" in banner

    # 1. ab analyze EXPERIMENT (no YAML, no store option: the workspace store)
    out_dir = tmp_path / "ab-loop"
    said = _cli(["ab", "analyze", "loop", "--out", str(out_dir), "--no-report"], capsys)
    assert "analysis: the analysis stored with the experiment" in " ".join(said.split())
    analyzed = json.loads((out_dir / "result.json").read_text())["rows"]

    # 2. decide, naming the version (a role would do too)
    said = _cli(["decide", "loop", "--ship", f"{model}@v2", "--why", "more thumbs up"], capsys)
    from growthcurve.store import list_decisions, open_existing

    engine = open_existing(url)
    (decision,) = list_decisions(engine, "loop")
    engine.dispose()
    assert decision["variant"] == f"{model}@v2"
    decided = decision["evidence"]["ab_result"]["rows"]

    # 3. the report
    from growthcurve.report.build import ReportInputs, build_report, render_html

    rep = build_report(ReportInputs())
    (ex,) = [e for e in rep.serving.experiments if e.experiment == "loop"]
    reported = [json.loads(json.dumps(r.__dict__)) for r in ex.rows]

    # the same rows, to the last digit, in all three
    assert sorted(map(_key, analyzed)) == sorted(map(_key, decided)) == sorted(map(_key, reported))
    thumbs = next(r for r in analyzed if r["metric"] == "thumbs" and r["variant"] == f"{model}@v2")
    assert thumbs["control"] == f"{model}@v1" and thumbs["effect"] > 0 and thumbs["p"] < 0.05
    acc = [r for r in analyzed if r["metric"] == "accuracy"]
    assert {r["variant"] for r in acc} == {f"{model}@v1", f"{model}@v2"} and all(0 < r["mean"] < 1 for r in acc)
    html = render_html(rep)
    assert f"{model}@v2 vs {model}@v1 (control)" in html
    assert [p.ref for p in rep.quality.series[model]] == [f"{model}@v1", f"{model}@v2"]
    assert {m.kind for m in rep.quality.marks[model]} == {"experiment", "ship"}
