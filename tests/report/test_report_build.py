"""The growth report: every section from a real store, numbers that match an independent computation,
valid embedded PNGs, big label sets as top confusions, an empty store that says so, and --serve."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from growthcurve.report.build import SECTION_TITLES, GrowthReport, ReportInputs, build_report
from growthcurve.report.plots import PNG_SIGNATURE
from growthcurve.report.sections import (
    EMPTY_GOALS,
    EMPTY_LATEST,
    EMPTY_QUALITY,
    EMPTY_SERVING,
    EMPTY_TEAM,
)
from tests.report.conftest import GrowthStore

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _section(html: str, key: str) -> str:
    m = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    assert m, f"no section {key}"
    return m.group(1)


def test_full_report_has_every_section_and_valid_images(full: tuple[GrowthReport, str]) -> None:
    from PIL import Image

    rep, html = full
    assert rep.empty_sections() == []
    empties = dict(
        zip(SECTION_TITLES, [EMPTY_QUALITY, EMPTY_LATEST, EMPTY_SERVING, EMPTY_GOALS, EMPTY_TEAM], strict=True)
    )
    for key, title in SECTION_TITLES.items():
        assert title in _section(html, key) and empties[key] not in _section(html, key)
    images = DATA_URI.findall(html)
    # growth curve, run confusion PNG, serving panels, A/B lift, burn-up, ranking, training effect
    assert len(images) == 7 == len(rep.images)
    for b64 in images:
        png = base64.b64decode(b64, validate=True)
        assert png.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(png)) as im:
            im.verify()
    # self-contained: no script, no external fetch
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_growth_curve_reads_the_registry(growth_store: GrowthStore, full: tuple[GrowthReport, str]) -> None:
    rep, html = full
    rows = {r.id: r for r in rep.quality.rows}
    assert set(growth_store.run_ids) | {growth_store.tune_id, growth_store.failed_id} <= set(rows)
    assert rows[growth_store.failed_id].parent == growth_store.tune_id
    model = rows[growth_store.run_ids[0]].model  # both runs train on the same data: two versions of one model
    assert model and rows[growth_store.run_ids[1]].model == model
    series = rep.quality.series[model]
    assert [p.id for p in series] == growth_store.run_ids  # finished model runs only, oldest first
    assert [p.ref for p in series] == [f"{model}@v1", f"{model}@v2"]
    for p, run in zip(series, growth_store.runs, strict=True):
        assert p.metric == pytest.approx(json.loads((run / "metrics.json").read_text())["test"]["accuracy"])
    assert growth_store.tune_id in _section(html, "quality") and "study-1" in html


def test_a_retrain_is_one_point_with_its_retention_accuracy(tmp_path: Path) -> None:
    """`retrain` records itself and the finetune inside it (same folder): the curve shows one retrain point."""
    from growthcurve.store.registry import finish_run, start_run

    url = f"sqlite:///{tmp_path / 's.db'}"
    task = "text-classification"
    base = start_run("finetune", name="base", task=task, artefact=tmp_path / "base", url=url)
    finish_run(base, "finished", metrics={"test": {"accuracy": 0.70}}, url=url)
    rt = start_run("retrain", name="rt", task=task, artefact=tmp_path / "rt", parent=base, url=url)
    inner = start_run("finetune", name="rt", task=task, artefact=tmp_path / "rt", parent=rt, url=url)
    finish_run(inner, "finished", metrics={"test": {"accuracy": 0.74}}, url=url)
    finish_run(rt, "finished", metrics={"retention": {"old": {"accuracy": 0.70}, "new": {"accuracy": 0.74}}}, url=url)
    rep = build_report(ReportInputs(db=url))
    pts = rep.quality.series[f"{task} (no version)"]  # rows recorded without a model lineage
    assert [(p.id, p.kind, p.metric) for p in pts] == [(base, "finetune", 0.70), (rt, "retrain", 0.74)]
    assert {r.id for r in rep.quality.rows} == {base, rt, inner}  # the table still lists every row


def test_latest_run_confusions_count_every_error(growth_store: GrowthStore, full: tuple[GrowthReport, str]) -> None:
    rep, _ = full
    lt = rep.latest
    newest = growth_store.runs[-1]
    assert lt.run is not None and Path(lt.run.artefact or "") == newest.resolve()
    metrics = json.loads((newest / "metrics.json").read_text())["test"]
    n = 48  # test rows of the fixture
    wrong = round((1 - metrics["accuracy"]) * n)
    assert sum(c for _, _, c, _ in lt.top_confusions) == wrong  # two labels: every error is a listed cell
    assert lt.accuracy == pytest.approx(metrics["accuracy"])
    assert {r["label"] for r in lt.per_class} == {"pos", "neg"}
    assert rep.images["latest_run_png"] == (newest / "confusion_matrix_test.png").read_bytes()


def test_serving_numbers_match_the_rows(growth_store: GrowthStore, full: tuple[GrowthReport, str]) -> None:
    rep, html = full
    by = {v.model_version: v for v in rep.serving.versions}
    assert set(by) == {"v-a", "v-b"}
    for version, v in by.items():
        preds = [p for p in growth_store.predictions if p["model_version"] == version]
        fb = [f for f in growth_store.feedback if f["model_version"] == version]
        lat = np.array([p["latency_ms"] for p in preds])
        assert v.requests == len(preds)
        assert v.latency_p50 == pytest.approx(float(np.median(lat)))
        assert v.latency_p95 == pytest.approx(float(np.quantile(lat, 0.95)))
        thumbs = [f["value"] for f in fb if f["kind"] == "thumbs"]
        assert v.thumbs_n == len(thumbs) and v.thumbs_up_rate == pytest.approx(sum(thumbs) / len(thumbs))
        corr = [f for f in fb if f["kind"] == "correct"]
        differs = [
            f for f in corr if f["label"] != next(p["label"] for p in preds if p["request_id"] == f["request_id"])
        ]
        assert v.labelled_n == len(corr) and v.corrected_n == len(differs) > 0
        assert v.corrected_rate == pytest.approx(len(differs) / len(preds))
        ratings = [f["value"] for f in fb if f["kind"] == "rating"]
        assert v.csat == pytest.approx(100 * sum(r >= 4 for r in ratings) / len(ratings))
    (ex,) = rep.serving.experiments
    assert ex.experiment == "exp1" and ex.error is None and ex.decision["decision"] == "continue"
    thumbs = next(m for m in ex.result.metrics if m.metric == "thumbs")
    (comp,) = thumbs.comparisons
    mean = {v: by[k].thumbs_up_rate for v, k in (("control", "v-a"), ("treatment", "v-b"))}
    lift = mean["treatment"] / mean["control"] - 1  # one thumb per unit: the per-unit mean is the rate
    assert comp.frequentist.rel_effect == pytest.approx(lift)
    assert f"{100 * lift:+.2f}%" in _section(html, "serving")


def test_goals_and_team_sections(full: tuple[GrowthReport, str]) -> None:
    rep, html = full
    (obj,) = rep.goals.status
    (kr,) = obj.key_results
    assert kr.current == 0.85 and kr.progress == pytest.approx(0.5)
    assert "quality" in _section(html, "goals") and "burn-up" in _section(html, "goals")
    names = set(rep.team.ranking["candidate"])
    assert {"ada", "bao", "carla", "dev"} <= names
    assert {r.skill for r in rep.team.training} >= {"pytorch"}
    assert "ada" in _section(html, "team")


def test_big_label_set_shows_heatmap_and_top_confusions(tmp_path: Path) -> None:
    """77 intents: no unreadable grid, a heat map without tick labels and the largest confusions."""
    from growthcurve.evaluation.classification import write_reports
    from growthcurve.store.registry import finish_run, start_run

    url = f"sqlite:///{tmp_path / 's.db'}"
    run = tmp_path / "big"
    run.mkdir()
    labels = [f"intent_{i:02d}" for i in range(77)]
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(77), 6)
    pred = y.copy()
    pred[::3] = (y[::3] + 1) % 77  # a third of each class goes to the next one
    pred[:6] = 5  # and all of class 0 to class 5: the biggest cell
    probs = rng.random((len(y), 77)) * 0.1
    probs[np.arange(len(y)), pred] = 1.0
    write_reports(run, "test", y, probs, labels, False)
    np.savez_compressed(run / "probabilities_test.npz", probs=probs.astype(np.float32), y=y)
    rid = start_run("finetune", name="big", task="text-classification", artefact=run, url=url)
    finish_run(rid, "finished", metrics={"test": {"accuracy": float((pred == y).mean())}}, url=url)
    rep = build_report(ReportInputs(db=url))
    lt = rep.latest
    assert "latest_run_png" not in rep.images and "confusion_heatmap" in rep.images
    assert lt.top_confusions[0] == ("intent_00", "intent_05", 6, 1.0)
    assert all(n == 2 for _, _, n, _ in lt.top_confusions[1:])
    assert len(lt.top_confusions) == 15


def test_ner_run_shows_its_entity_report(tmp_path: Path) -> None:
    """A token-classification run: the seqeval per-type report and its F1 chart, entity F1 on the curve."""
    from growthcurve.evaluation.ner import write_ner_reports
    from growthcurve.report.build import render_html
    from growthcurve.store.registry import finish_run, start_run

    url = f"sqlite:///{tmp_path / 's.db'}"
    run = tmp_path / "ner"
    run.mkdir()
    gold = [["B-PER", "O", "B-LOC"], ["O", "B-PER", "I-PER"], ["B-LOC", "O"]]
    pred = [["B-PER", "O", "O"], ["O", "B-PER", "I-PER"], ["B-LOC", "O"]]
    write_ner_reports(run, "test", gold, pred, "IOB2")
    f1 = json.loads((run / "ner_report_test.json").read_text())["f1"]
    rid = start_run("finetune", name="ner", task="token-classification", artefact=run, url=url)
    finish_run(rid, "finished", metrics={"test": {"entity_f1": f1}}, url=url)
    rep = build_report(ReportInputs(db=url))
    assert rep.quality.series["token-classification (no version)"][0].metric == pytest.approx(f1)
    lt = rep.latest
    assert lt.kind == "ner" and {r["label"] for r in lt.per_class} == {"PER", "LOC"}
    assert next(r for r in lt.per_class if r["label"] == "PER")["f1"] == pytest.approx(1.0)
    assert rep.images["latest_run_png"] == (run / "ner_f1_test.png").read_bytes()
    assert "entity F1 per type" in _section(render_html(rep), "latest")


def test_empty_store_says_so_in_every_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from growthcurve.cli import main

    out = tmp_path / "report.html"
    db = tmp_path / "nothing.db"
    # a workspace store that does not exist yet is an empty one (a --store naming a missing file is an error)
    monkeypatch.setenv("GROWTHCURVE_STORE", f"sqlite:///{db}")
    main(["report", "--out", str(out)])  # exit 0: SystemExit would fail the test
    html = out.read_text(encoding="utf-8")
    for key, msg in [
        ("quality", EMPTY_QUALITY),
        ("latest", EMPTY_LATEST),
        ("serving", EMPTY_SERVING),
        ("goals", EMPTY_GOALS),
        ("team", EMPTY_TEAM),
    ]:
        sec = _section(html, key)
        assert 'class="empty"' in sec and msg in sec
        assert "<img" not in sec
    assert not db.exists()  # reading an empty store creates no database file
    err = re.sub(r"\s+", " ", capsys.readouterr().err)
    assert err.count("no data:") == 5
    # a progress bar over the steps (the report ran tens of seconds silent on a large store)
    for step in (
        "report: model quality",
        "report: served versions and A/B",
        "report: charts",
        "6/7",
    ):  # seven steps since the review queues joined
        assert step in err
    for title in SECTION_TITLES.values():
        assert title in err


def test_the_page_never_shows_the_store_password() -> None:
    from growthcurve.report.sections import safe_url

    assert safe_url("postgresql+psycopg://gc:s3cret@db:5432/growth") == "postgresql+psycopg://gc:***@db:5432/growth"
    assert safe_url("sqlite:///growthcurve.db") == "sqlite:///growthcurve.db"


def test_serve_rebuilds_on_every_request(growth_store: GrowthStore, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from growthcurve.report.serve import report_app
    from growthcurve.store.registry import finish_run, start_run

    url = f"sqlite:///{tmp_path / 's.db'}"
    with TestClient(report_app(ReportInputs(db=url))) as c:
        first = c.get("/")
        assert first.status_code == 200 and EMPTY_QUALITY.split(":")[0] in first.text
        rid = start_run("tune", name="late-study", url=url)
        finish_run(rid, "finished", metrics={}, url=url)
        second = c.get("/")
        assert rid in second.text and "late-study" in second.text
        assert c.get("/health").json() == {"status": "ok"}
