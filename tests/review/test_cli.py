"""The review commands end to end through the CLI: build, token, status, estimate next to the offline
accuracy, agreement, export to Label Studio / Argilla / jsonl and import back; tables fit 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from growthcurve.review import queue as rq
from growthcurve.store import get_engine
from tests.review.conftest import LABELS, Traffic


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from growthcurve.cli import main

    capsys.readouterr()
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr()
    out, err = capsys.readouterr()
    assert "error" not in err, err
    return out


def test_review_commands(traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    s = ["--store", traffic.url]
    out = cli(["review", "build", "w1", *s, "--labels", ",".join(LABELS), "--double-share", "0.5"], capsys)
    assert "queue w1: 60 item(s) from 86 request(s)" in out
    out = cli(["review", "add", "w1", str(_texts(tmp_path)), *s], capsys)
    assert "1 new item(s) in queue w1" in out  # the other text is already queued (near-duplicate)
    token = cli(["review", "token", "ann", *s, "--queue", "w1"], capsys).strip()
    assert len(token) >= 30
    engine = get_engine(traffic.url)
    snap = rq.snapshot(engine, "w1")
    for iid, _ in snap.streams["random"][:20]:
        it = snap.items[iid]
        rq.record_answer(engine, "w1", iid, "ann", "label", traffic.truth[it.text], stream="random")
        if it.double:
            wrong = LABELS[(LABELS.index(traffic.truth[it.text]) + 1) % 4]
            rq.record_answer(engine, "w1", iid, "bob", "label", wrong if iid % 2 else traffic.truth[it.text])
    engine.dispose()
    for argv in (["status", "w1"], ["agreement", "w1"], ["estimate", "w1", "--version", "v1"]):
        out = cli(["review", *argv, *s], capsys)
        assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "random stream (Wilson)" in out and "all streams (weighted)" in out
    est = json.loads(cli(["review", "estimate", "w1", *s, "--version", "v1", "--json"], capsys))
    assert est["random"]["n"] > 0 and 0 <= est["random"]["low"] <= est["random"]["estimate"] <= est["random"]["high"]
    ag = json.loads(cli(["review", "agreement", "w1", *s, "--json"], capsys))
    assert ag["pairs"] >= 1
    # export in every format, then import the jsonl into a fresh queue
    files = {}
    for fmt, name in (("jsonl", "x.jsonl"), ("label-studio", "x.json"), ("argilla", "x.argilla.jsonl")):
        files[fmt] = tmp_path / name
        cli(["review", "export", "w1", *s, "--format", fmt, "--out", str(files[fmt])], capsys)
    tasks = json.loads(files["label-studio"].read_text())
    labelled = [t for t in tasks if t["annotations"]]
    assert labelled and labelled[0]["annotations"][0]["result"][0]["value"]["choices"][0] in LABELS
    rec = [json.loads(x) for x in files["argilla"].read_text().splitlines()]
    assert any(r["responses"] for r in rec) and all("text" in r["fields"] for r in rec)
    cli(["review", "build", "w2", *s, "--labels", ",".join(LABELS), "--since", "2030-01-01", "--no-traffic",
         "--file", str(_texts(tmp_path))], capsys)  # fmt: skip
    for fmt in ("jsonl", "label-studio", "argilla"):
        out = cli(["review", "import", "w2", str(files[fmt]), *s, "--reviewer", f"ext-{fmt}"], capsys)
        assert "answer(s) imported into queue w2" in out
    engine = get_engine(traffic.url)
    snap = rq.snapshot(engine, "w2")
    engine.dispose()
    by_reviewer: dict[str, int] = {}
    for it in snap.items.values():
        for a in it.answers:
            by_reviewer[a.reviewer] = by_reviewer.get(a.reviewer, 0) + 1
    # the jsonl export carries decided labels only (reviewer "ext-jsonl"); LS and Argilla carry every answer
    assert by_reviewer.get("ext-jsonl", 0) >= 1 and by_reviewer.get("ann", 0) >= 20


def _texts(tmp_path: Path) -> Path:
    p = tmp_path / "upload.csv"
    p.write_text("text\nquestion 1 about card lost\nsomething new entirely\n", encoding="utf-8")
    return p
