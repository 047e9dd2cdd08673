"""Text baselines without pretrained weights: rnn (BiLSTM/GRU), textcnn and tfidf.

A toy task with a learnable rule (each class has its own keywords among random filler words) checks that
each baseline learns, that the run folder reloads to identical predictions, and that `evaluate` and
`predict` work on the run folder through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from growthcurve.cli import main
from growthcurve.config import load_finetune_config
from growthcurve.training.dispatch import run_finetune
from growthcurve.training.inference import Predictor
from growthcurve.training.recipe import with_scratch_defaults
from growthcurve.training.runfolder import load_run, save_model_dir

KEYWORDS = {
    "sport": ["football", "match", "goal", "team", "coach"],
    "food": ["pizza", "recipe", "cheese", "bread", "dinner"],
    "money": ["bank", "loan", "invoice", "salary", "refund"],
}
FILLER = [
    "the",
    "a",
    "my",
    "your",
    "this",
    "that",
    "is",
    "was",
    "today",
    "really",
    "very",
    "please",
    "about",
    "with",
    "and",
    "then",
    "maybe",
]


def _toy_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    labels = sorted(KEYWORDS)
    for i in range(n):
        label = labels[i % len(labels)]
        words = list(rng.choice(FILLER, size=rng.integers(4, 9)))
        for _ in range(rng.integers(1, 3)):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(KEYWORDS[label])))
        rows.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("toy")
    _toy_rows(600, 0).to_csv(d / "train.csv", index=False)
    _toy_rows(60, 1).to_csv(d / "test.csv", index=False)
    return d


@pytest.fixture(scope="module")
def runs(toy: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = {}
    for kind in ("tfidf", "textcnn", "rnn"):
        run_dir = tmp_path_factory.mktemp(f"run-{kind}")
        cfg = load_finetune_config(
            None,
            [
                f"model.type={kind}",
                f"data.train={toy / 'train.csv'}",
                f"data.test={toy / 'test.csv'}",
                "model.hidden_size=32",
                "train.batch_size=16",
                f"output_dir={run_dir}",
            ],
        )
        out[kind] = run_finetune(cfg, progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tfidf", "textcnn", "rnn"])
def test_baseline_learns_toy_task_and_writes_run_folder(runs: dict, kind: str) -> None:
    res = runs[kind]
    assert res.test["accuracy"] >= 0.9  # chance is 1/3; the keywords decide the class
    run_dir = Path(res.run_dir)
    meta = json.loads((run_dir / "model" / "run.json").read_text())
    assert meta["model_type"] == kind
    assert json.loads((run_dir / "model" / "labels.json").read_text()) == sorted(KEYWORDS)
    for name in ("metrics.json", "classification_report_test.txt", "classification_report_test.json"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "confusion_matrix_test.png").stat().st_size > 1000
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == pytest.approx(res.test["accuracy"])
    if kind == "tfidf":
        assert (run_dir / "model" / "tfidf.skops").is_file()  # the safe format, not a pickle
    else:
        assert (run_dir / "training_curves.png").is_file()
        assert (run_dir / "model" / "tokenizer.json").is_file()
        assert (run_dir / "model" / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tfidf", "textcnn", "rnn"])
def test_predictor_matches_recorded_test_accuracy(runs: dict, toy: Path, kind: str) -> None:
    test = pd.read_csv(toy / "test.csv")
    pred = Predictor(runs[kind].run_dir)
    got = [r["label"] for r in pred.predict(test["text"].tolist())]
    acc = float(np.mean(np.array(got) == test["label"].to_numpy()))
    assert acc == pytest.approx(runs[kind].test["accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tfidf", "rnn"])
def test_cli_evaluate_and_predict_on_baseline_run(runs: dict, toy: Path, tmp_path: Path, kind: str) -> None:
    run_dir = str(runs[kind].run_dir)
    out_dir = tmp_path / "eval"
    main(["evaluate", run_dir, str(toy / "test.csv"), "--out", str(out_dir), "-q"])  # raises SystemExit on error
    saved = json.loads((out_dir / "metrics.json").read_text())
    assert saved["metrics"]["accuracy"] == pytest.approx(runs[kind].test["accuracy"])
    assert (out_dir / "classification_report_eval.txt").is_file()
    texts = tmp_path / "in.txt"
    texts.write_text("the football match was great\nmy salary and the bank loan\n", encoding="utf-8")
    preds = tmp_path / "preds.jsonl"
    main(["predict", run_dir, str(texts), "--out", str(preds), "-k", "2"])
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["sport", "money"]
    assert all(len(r["top_k"]) == 2 for r in rows)


def test_neural_baselines_reload_to_identical_outputs(tmp_path: Path) -> None:
    from growthcurve.models.baselines import WordTokenizer, build_text_baseline
    from growthcurve.training.batching import collate, encode_texts

    texts = _toy_rows(40, 3)["text"].tolist()
    tok = WordTokenizer(min_frequency=1).fit(texts)
    enc = encode_texts(tok, texts, None, np.zeros(len(texts), dtype=np.int64), 64, progress=False)
    batch = collate(enc, np.arange(len(texts)), tok.pad_token_id, with_labels=False)
    for kind, cell in (("rnn", "lstm"), ("rnn", "gru"), ("textcnn", "lstm")):
        torch.manual_seed(0)
        model = build_text_baseline(kind, len(tok), 3, 16, cell).eval()
        run_dir = tmp_path / f"{kind}-{cell}"
        meta = {"task": "text-classification", "model_type": kind, "multi_label": False, "max_length": 64}
        save_model_dir(run_dir, model, tok, ["a", "b", "c"], meta)
        loaded = load_run(run_dir)
        with torch.no_grad():
            assert torch.equal(model(**batch).logits, loaded.model(**batch).logits)
        again = loaded.tokenizer(texts, max_length=64)["input_ids"]
        assert again == [list(x) for x in enc.input_ids]


def test_tfidf_reload_identical_and_multilabel(tmp_path: Path) -> None:
    from growthcurve.models.baselines import NullTokenizer, TfidfClassifier

    df = _toy_rows(60, 4)
    labels = sorted(KEYWORDS)
    y = df["label"].map(labels.index).to_numpy()
    clf = TfidfClassifier().fit(df["text"].tolist(), y)
    save_model_dir(tmp_path / "single", clf, NullTokenizer(), labels, {"model_type": "tfidf"})
    loaded = load_run(tmp_path / "single").model
    np.testing.assert_array_equal(clf.predict_proba(df["text"]), loaded.predict_proba(df["text"]))
    # multi-label: one-vs-rest, with a label that is never present (constant predictor)
    multi = np.zeros((len(y), 4), dtype=np.float32)
    multi[np.arange(len(y)), y] = 1
    ml = TfidfClassifier(multi_label=True).fit(df["text"].tolist(), multi)
    save_model_dir(tmp_path / "multi", ml, NullTokenizer(), [*labels, "never"], {"model_type": "tfidf"})
    back = load_run(tmp_path / "multi").model
    p = back.predict_proba(df["text"])
    np.testing.assert_array_equal(ml.predict_proba(df["text"]), p)
    assert p.shape == (len(y), 4) and p[:, 3].max() < 0.5


def test_birnn_encoder_ignores_padding() -> None:
    """Per-token states of a row do not change when it is padded next to a longer row (packed sequences)."""
    from growthcurve.models.baselines import BiRNNEncoder

    torch.manual_seed(0)
    enc = BiRNNEncoder(vocab_size=20, embed_dim=8, hidden_size=6, cell="lstm").eval()
    short = torch.tensor([[5, 6, 7]])
    batch = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 9]])
    mask = (batch != 0).long()
    with torch.no_grad():
        alone = enc(short, torch.ones_like(short))
        padded = enc(batch, mask)
    assert enc.output_size == 12 and padded.shape == (2, 5, 12)
    torch.testing.assert_close(padded[0, :3], alone[0], rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(padded[0, 3:]) == 0


def test_textcnn_handles_rows_shorter_than_its_kernels() -> None:
    from growthcurve.models.baselines import TextCNN

    torch.manual_seed(0)
    model = TextCNN(vocab_size=20, num_labels=3, embed_dim=8, num_filters=4).eval()
    ids = torch.tensor([[4], [5]])
    with torch.no_grad():
        logits = model(ids, torch.ones_like(ids)).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_scratch_defaults_only_fill_unset_keys() -> None:
    cfg = with_scratch_defaults(load_finetune_config(None, ["model.type=rnn"]))
    assert cfg.train.learning_rate == 2e-3 and cfg.train.epochs == 10
    cfg = with_scratch_defaults(load_finetune_config(None, ["model.type=rnn", "train.learning_rate=0.01"]))
    assert cfg.train.learning_rate == 0.01 and cfg.train.epochs == 10
