"""`growthcurve retrain`: feedback written through the real service becomes training rows; the retrained model
learns a shifted concept (new words the served model never saw) and keeps the old one; unusable feedback is
counted per reason, and no usable row is one `error:` line with those counts."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from growthcurve.config import load_finetune_config
from growthcurve.growth.retrain import CONTRADICTING, NO_LABEL_KIND, THUMBS_DOWN, collect_feedback, served_version
from growthcurve.serving import create_app, load_handler
from growthcurve.training.dispatch import run_finetune
from tests.conftest import FILLER, NEG, POS, tiny_bert_config, toy_rows, write_csv

NEW_POS, NEW_NEG = ["superb", "splendid"], ["dreadful", "dismal"]  # absent from the served run's training data


def _shifted_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """The concept users bring later: the label is carried by a word the served model never trained on."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, rng.randint(2, 5)) + [rng.choice(NEW_POS if label == "pos" else NEW_NEG)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def _base(d: Path) -> Path:
    from transformers import BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(POS + NEG + FILLER + NEW_POS + NEW_NEG))]
    vocab += list("abcdefghijklmnopqrstuvwxyz")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(d)
    torch.manual_seed(0)
    BertModel(tiny_bert_config(len(vocab))).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny served run, and a store holding its predictions and feedback written through the HTTP app."""
    d = tmp_path_factory.mktemp("retrain")
    base = _base(d / "base")
    data = {
        s: write_csv(d / f"{s}.csv", toy_rows(n, seed))
        for s, n, seed in [("train", 320, 0), ("dev", 48, 1), ("test", 96, 2)]
    }
    sets = [f"model.name_or_path={base}", *(f"data.{k}={v}" for k, v in data.items()), f"output_dir={d / 'served'}"]
    sets += [
        "train.epochs=3",
        "model.dropout=0",
        "train.batch_size=16",
        "train.learning_rate=3e-3",
        "train.precision=fp32",
        "model.max_length=32",
    ]
    run = run_finetune(load_finetune_config(None, sets), progress=False).run_dir
    url = f"sqlite:///{d / 'store.db'}"
    traffic = _shifted_rows(120, 5)
    with TestClient(create_app([load_handler(run)], store_url=url)) as c:
        preds = c.post("/predict", json={"text": [t for t, _ in traffic[:60]]}).json()["predictions"]
        preds += c.post("/predict", json={"text": [t for t, _ in traffic[60:]]}).json()["predictions"]
        for (_text, label), p in zip(traffic[:100], preds[:100], strict=True):  # corrected labels (the truth)
            assert c.post("/feedback", json={"request_id": p["request_id"], "label": label}).status_code == 200
        extra = preds[100:]
        c.post("/feedback", json={"request_id": extra[0]["request_id"], "thumbs": False})  # no label given
        c.post("/feedback", json={"request_id": extra[1]["request_id"], "rating": 4})  # no label at all
        c.post("/feedback", json={"request_id": extra[2]["request_id"], "label": "pos"})  # two answers ...
        c.post("/feedback", json={"request_id": extra[2]["request_id"], "label": "neg"})  # ... that disagree
    return {"dir": d, "run": run, "url": url, "traffic": traffic}


def test_feedback_rows_and_skip_reasons(served: dict[str, Any]) -> None:
    rows = collect_feedback(served["url"], served_version(served["run"]), ["neg", "pos"])
    truth = dict(served["traffic"])
    assert rows.requests == 103 and rows.feedback_rows == 104
    assert rows.skipped.get(THUMBS_DOWN) == 1 and rows.skipped.get(NO_LABEL_KIND) == 1
    assert rows.skipped.get(CONTRADICTING) == 1
    dupes = 100 - len({t for t, _ in served["traffic"][:100]})
    assert len(rows.texts) == 100 - dupes - rows.skipped.get("same text with different labels across requests", 0)
    assert all(truth[t] == lab for t, lab in zip(rows.texts, rows.labels, strict=True))
    assert set(rows.sources) == {"corrected"}


def test_retrain_learns_the_shift_and_keeps_the_old_concept(served: dict[str, Any]) -> None:
    from growthcurve.cli import main
    from growthcurve.store.registry import find_by_artefact, get_run, list_runs

    out = served["dir"] / "new"
    sets = ["train.epochs=4"]
    main(["retrain", str(served["run"]), "--feedback", served["url"], "--out", str(out), "--rehearsal", "0.5", "-q"]
         + [a for s in sets for a in ("--set", s)])  # fmt: skip
    rep = json.loads((out / "retrain.json").read_text())
    gain, keep = rep["gain"], rep["retention"]
    assert gain["n"] == round(0.2 * rep["feedback"]["usable"])
    assert gain["old"]["accuracy"] < 0.8  # the served model does not know the new words
    assert gain["new"]["accuracy"] >= 0.9 and gain["delta_points"] > 15
    assert keep["old"]["accuracy"] > 0.85 and keep["new"]["accuracy"] >= keep["old"]["accuracy"] - 0.05
    assert rep["rehearsal"]["rows"] == round(0.5 * rep["rehearsal"]["of"])
    assert sum(v["support"] for v in rep["per_label_test"].values()) == keep["n"] == 96
    # the new run is a complete run folder started from the served weights, registered under the served run
    meta = json.loads((out / "model" / "run.json").read_text())
    assert Path(meta["base_model"]) == Path(served["run"]) / "model"
    assert json.loads((out / "model" / "labels.json").read_text()) == ["neg", "pos"]
    # one store: the retrain is one row in the store it read the feedback from, the next version of the model
    rec = get_run(rep["registry_id"], served["url"])
    assert rec.kind == "retrain" and rec.status == "finished" and rec.artefact == str(out.resolve())
    parent = find_by_artefact(served["run"], served["url"])
    assert parent is not None and rec.parent == parent.id
    assert (parent.model, parent.version, rec.model, rec.version) == (rec.model, 1, parent.model, 2)
    assert rep["served_ref"] == parent.ref and rep["new_ref"] == rec.ref
    assert [r.kind for r in list_runs(served["url"]) if r.artefact == str(out.resolve())] == ["retrain"]
    assert rec.metrics["test"]["accuracy"] == pytest.approx(keep["new"]["accuracy"])  # the new version's numbers
    assert f"growthcurve serve {parent.ref} {rec.ref}" in rep["serve_command"]


def test_no_usable_feedback_is_one_error_line_with_counts(
    served: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from growthcurve.cli import main
    from growthcurve.store import feedback, get_engine

    url = f"sqlite:///{tmp_path / 'thumbs.db'}"
    with TestClient(create_app([load_handler(served["run"])], store_url=url)) as c:
        p = c.post("/predict", json={"text": ["great film", "awful plot"]}).json()["predictions"]
        c.post("/feedback", json={"request_id": p[0]["request_id"], "thumbs": False})
        c.post("/feedback", json={"request_id": p[1]["request_id"], "click": True})
    with get_engine(url).connect() as conn:
        assert conn.execute(feedback.select()).fetchall()  # the service stored them
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        main(["retrain", str(served["run"]), "--feedback", url, "--out", str(out)])
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no usable feedback rows" in err and "2 prediction(s) with 2 feedback row(s), 0 usable" in err
    assert f"{THUMBS_DOWN} (1)" in err and f"{NO_LABEL_KIND} (1)" in err
    assert not out.exists()


def _feedback_store(run: Path, url: str, rows: list[tuple[str, str]]) -> None:
    """Serve ``run`` into ``url`` and send each row's label as a corrected label (the truth, or not)."""
    with TestClient(create_app([load_handler(run)], store_url=url)) as c:
        preds = []
        for i in range(0, len(rows), 50):  # the service takes at most 64 texts a request
            preds += c.post("/predict", json={"text": [t for t, _ in rows[i : i + 50]]}).json()["predictions"]
        for (_t, label), p in zip(rows, preds, strict=True):
            assert c.post("/feedback", json={"request_id": p["request_id"], "label": label}).status_code == 200


def test_feedback_texts_in_the_test_split_are_refused_or_dropped(
    served: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replaying test texts as traffic would score retention on texts the new model trained on: refused, or with
    --drop-test-overlap dropped and counted."""
    import csv

    from growthcurve.cli import main

    with (served["dir"] / "test.csv").open(encoding="utf-8") as fh:
        test_rows = [(r["text"], r["label"]) for r in csv.DictReader(fh)]
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    _feedback_store(served["run"], url, test_rows[:10] + _shifted_rows(30, 11))
    out = tmp_path / "new"
    with pytest.raises(SystemExit) as exc:
        main(["retrain", str(served["run"]), "--store", url, "--out", str(out), "-q"])
    err = " ".join(capsys.readouterr().err.split())
    overlap = len({t for t, _ in test_rows[:10]})
    assert exc.value.code == 2 and f"{overlap} of the" in err and "--drop-test-overlap" in err, err
    assert not out.exists()
    main(["retrain", str(served["run"]), "--store", url, "--out", str(out), "-q", "--drop-test-overlap",
          "--set", "train.epochs=1"])  # fmt: skip
    rep = json.loads((out / "retrain.json").read_text())
    assert rep["feedback"]["dropped_in_test_split"] == overlap
    test_texts = {t for t, _ in test_rows}
    with (out / "retrain_data" / "train.csv").open(encoding="utf-8") as fh:
        trained = [r["text"] for r in csv.DictReader(fh)]
    assert not test_texts & set(trained[: rep["feedback"]["trained_on"]])  # no feedback row from the test split


def test_a_retrain_that_got_worse_says_so_and_suggests_no_serving(
    served: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Corrections that teach the opposite of the truth, without rehearsal: the new version is worse on the
    original test split, the command says so plainly and prints no `serve` suggestion."""
    from growthcurve.cli import main

    flipped = [(t, "neg" if lab == "pos" else "pos") for t, lab in toy_rows(120, 21)]
    url = f"sqlite:///{tmp_path / 'wrong.db'}"
    _feedback_store(served["run"], url, flipped)
    out = tmp_path / "worse"
    capsys.readouterr()
    main(["retrain", str(served["run"]), "--store", url, "--out", str(out), "-q", "--no-rehearsal",
          "--set", "train.epochs=3"])  # fmt: skip
    said = " ".join(capsys.readouterr().out.split())
    rep = json.loads((out / "retrain.json").read_text())
    assert "original test split" in rep["worse_on"] and rep["serve_command"] is None
    assert rep["retention"]["delta_points"] < 0
    assert "worse:" in said and "do not serve it" in said and "variant B" not in said


def test_retrain_takes_reviewed_labels_with_their_weight(served: dict[str, Any]) -> None:
    """A review queue on the same store: decided labels join the rows, each repeated --review-weight times, and a
    reviewer's label wins over a user's correction of the same text."""
    import csv

    from growthcurve.cli import main
    from growthcurve.review import queue as rq
    from growthcurve.store import get_engine

    rq.build_queue(served["url"], "rq1", run=served["run"], config=rq.QueueConfig(double_share=0.0), rescore=True)
    truth = dict(served["traffic"])
    engine = get_engine(served["url"])
    snap = rq.snapshot(engine, "rq1")
    # --rescore: the run's full probabilities replace the served top-1 (both labels, summing to 1)
    top = next(iter(snap.items.values())).top
    assert {lab for lab, _ in top} == {"neg", "pos"} and sum(p for _, p in top) == pytest.approx(1.0, abs=1e-4)
    by_text = {it.text: it.id for it in snap.items.values()}
    unlabelled = [t for t, _ in served["traffic"][103:113]]  # no label feedback on these
    for t in unlabelled:
        rq.record_answer(engine, "rq1", by_text[t], "ann", "label", truth[t])
    overruled = served["traffic"][0][0]  # the user corrected it to the truth; the reviewer says otherwise
    flipped = "neg" if truth[overruled] == "pos" else "pos"
    rq.record_answer(engine, "rq1", by_text[overruled], "ann", "label", flipped)
    engine.dispose()
    out = served["dir"] / "new-reviewed"
    main(["retrain", str(served["run"]), "--feedback", served["url"], "--out", str(out), "--holdout", "0",
          "--no-rehearsal", "--reviewed", "rq1", "--review-weight", "3", "-q", "--set", "train.epochs=1"])  # fmt: skip
    rep = json.loads((out / "retrain.json").read_text())
    fb = rep["feedback"]
    assert fb["reviewed"] == len(set(unlabelled)) + 1 and fb["review_weight"] == 3
    assert fb["skipped"]["feedback on a text a reviewer labelled"] == 1
    assert rep["train_rows"] == (fb["usable"] - fb["reviewed"]) + 3 * fb["reviewed"]
    with (out / "retrain_data" / "train.csv").open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [lab for t, lab in rows if t == overruled] == [flipped] * 3
    assert all(sum(1 for t, _ in rows if t == u) == 3 for u in unlabelled)
