"""Explanations: Integrated Gradients on a tiny trained model (sum = logit difference within captum's delta,
word offsets, faithfulness by AOPC), TF-IDF per-n-gram contributions (exact), and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from growthcurve.errors import ModelError
from tests.conftest import toy_overrides, toy_rows, write_csv


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("explain-data")
    return {
        "train": write_csv(d / "train.csv", toy_rows(256, 0)),
        "dev": write_csv(d / "dev.csv", toy_rows(64, 1)),
        "test": write_csv(d / "test.csv", toy_rows(64, 2)),
    }


@pytest.fixture(scope="module")
def bert_run(tiny_bert: Path, toy_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    out = tmp_path_factory.mktemp("explain") / "bert"
    return Path(run_finetune(load_finetune_config(None, toy_overrides(tiny_bert, toy_files, out)), False).run_dir)


@pytest.fixture(scope="module")
def tfidf_run(toy_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    out = tmp_path_factory.mktemp("explain") / "tfidf"
    sets = [f"data.train={toy_files['train']}", f"data.dev={toy_files['dev']}", f"output_dir={out}",
            "model.type=tfidf"]  # fmt: skip
    return Path(run_finetune(load_finetune_config(None, sets), False).run_dir)


def test_ig_attributions_sum_to_the_logit_difference(bert_run: Path) -> None:
    from growthcurve.training.explain import integrated_gradients
    from growthcurve.training.runfolder import load_run

    run = load_run(bert_run)
    texts = ["the movie was really AWFUL", "so wonderful this film", "acting and plot were fantastic"]
    exps = integrated_gradients(run, texts)
    tok = run.tokenizer
    for text, e in zip(texts, exps, strict=True):
        enc = tok(text, return_tensors="pt")
        ids = enc["input_ids"]
        special = torch.tensor([[i in tok.all_special_ids for i in ids[0].tolist()]])
        baseline = torch.where(special, ids, torch.full_like(ids, tok.pad_token_id))
        with torch.no_grad():
            target = run.labels.index(e["label"])
            fx = run.model(input_ids=ids, attention_mask=enc["attention_mask"]).logits[0, target]
            fb = run.model(input_ids=baseline, attention_mask=enc["attention_mask"]).logits[0, target]
        diff = float(fx - fb)
        # completeness: the attributions sum to F(x) - F(baseline) up to captum's convergence delta
        assert abs(e["total"] - diff) <= abs(e["delta"]) + 1e-4
        assert abs(e["delta"]) < 0.2 * abs(diff) + 1e-3  # and 32 steps were enough for that
        for w in e["tokens"]:  # every word with its character span in the text
            assert text[w["start"] : w["end"]] == w["text"]
        assert [w["text"] for w in e["tokens"]] == text.split()
    # the polar word carries the predicted label
    assert max(exps[0]["tokens"], key=lambda w: w["score"])["text"] == "AWFUL"
    assert exps[0]["label"] == "neg" and exps[1]["label"] == "pos"


def test_faithfulness_top_words_matter_more_than_random_ones(bert_run: Path) -> None:
    """AOPC: deleting the top-attributed word lowers the predicted probability more than deleting random words."""
    from growthcurve.training.explain import aopc
    from growthcurve.training.inference import Predictor

    pred = Predictor(bert_run)
    texts = [t for t, _ in toy_rows(40, 11)]
    answers = pred.answer(texts, explain=True)
    exps = [a["explanation"] for a in answers]
    top, rand = aopc(pred.predict_proba, texts, exps, pred.labels, k_max=2, n_random=5, seed=0)
    assert np.mean(top > rand) >= 0.9
    assert top.mean() > rand.mean() + 0.1


def test_tfidf_contributions_are_exact(tfidf_run: Path) -> None:
    from growthcurve.training.inference import Predictor

    pred = Predictor(tfidf_run)
    texts = ["the film was awful", "so wonderful and good"]
    rows = pred.predict(texts, explain=True)
    z = pred.run.model.decision_function(texts)
    for r, zr in zip(rows, z, strict=True):
        e = r["explanation"]
        assert e["method"] == "linear_tfidf" and e["label"] == r["label"]
        c = pred.labels.index(e["label"])
        other = 1 - c
        assert e["total"] == pytest.approx(float(zr[c] - zr[other]), abs=1e-4)  # log-odds of label vs the other
        assert {g["kind"] for g in e["ngrams"]} <= {"word", "char"}
    assert rows[0]["label"] == "neg" and "awful" in [g["ngram"] for g in rows[0]["explanation"]["ngrams"]][:3]


def test_refusals_name_the_reason() -> None:
    from growthcurve.training.explain import check_explainable

    with pytest.raises(ModelError, match="image-classification run"):
        check_explainable({"task": "image-classification"})
    with pytest.raises(ModelError, match="token-classification run"):
        check_explainable({"task": "token-classification"})
    with pytest.raises(ModelError, match="dynamic-int8"):
        check_explainable({"task": "text-classification", "quantize_dynamic_int8": True})
    with pytest.raises(ModelError, match="multi-label TF-IDF"):
        check_explainable({"task": "text-classification", "model_type": "tfidf", "multi_label": True})
    with pytest.raises(ModelError, match="text pairs"):
        check_explainable({"task": "text-classification"}, ["a"])


def test_run_report_explains_the_worst_confusions(bert_run: Path, tmp_path: Path) -> None:
    """The model card shows the worst confusions, each with its most confident mistake and its top words."""
    import shutil

    from growthcurve.training.explain import worst_confusions, write_confusion_explanations
    from growthcurve.training.modelcard import write_model_card
    from growthcurve.training.runfolder import load_run

    run_dir = Path(shutil.copytree(bert_run, tmp_path / "run"))
    run = load_run(run_dir)
    texts = ["the film was awful", "so bad and sad", "really good plot", "the acting was terrible"]
    y = np.array([1, 1, 1, 0])  # pos, pos, pos, neg (labels: neg, pos)
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    assert worst_confusions(y, probs) == [(1, 0, 2, 0), (0, 1, 1, 3)]  # pos->neg twice (row 0 surest), neg->pos
    rows = write_confusion_explanations(run, "test", texts, y, probs)
    assert [(r["gold"], r["predicted"], r["count"]) for r in rows] == [("pos", "neg", 2), ("neg", "pos", 1)]
    card = write_model_card(run_dir).read_text(encoding="utf-8")
    assert "Why the worst confusions happen (test)" in card
    assert '**pos** predicted as **neg** (2x); e.g. "the film was awful"' in card and "`awful`" in card
