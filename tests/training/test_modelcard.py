"""Model cards: written from a real tiny run's folder, readable by huggingface_hub, and still written when
optional files are missing."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from huggingface_hub import ModelCard

from growthcurve.cli import main
from growthcurve.config import load_finetune_config
from growthcurve.training.dispatch import run_finetune
from growthcurve.training.modelcard import expected_calibration_error, write_model_card


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _toy_csv(path, n: int, seed: int):
    """A separable two-class toy task (this file's own copy, so it needs no import from tests/)."""
    rng = np.random.default_rng(seed)
    words = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful", "poor"]}
    rows = ["text,label"]
    for _ in range(n):
        label = str(rng.choice(["pos", "neg"]))
        rows.append(f"{' '.join(rng.choice(words[label], 3))},{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_bert, tmp_path_factory):
    d = tmp_path_factory.mktemp("card")
    data = {k: _toy_csv(d / f"{k}.csv", n, s) for k, n, s in (("train", 256, 0), ("dev", 64, 1), ("test", 64, 2))}
    sets = {
        "model.name_or_path": tiny_bert,
        "output_dir": d / "run",
        "train.epochs": 1,
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "model.max_length": 32,
        **{f"data.{k}": v for k, v in data.items()},
    }
    cfg = load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()])
    return run_finetune(cfg, progress=False), data


def test_card_of_a_real_run_renders_with_huggingface_hub(tiny_run, capsys):
    result, data = tiny_run
    code, out, err = _run(["card", str(result.run_dir)], capsys)
    assert code == 0, err
    card = ModelCard.load(result.run_dir / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    evals = {(e.dataset_split, e.metric_name): e.metric_value for e in card.data.eval_results}
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert evals[("test", "accuracy")] == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    assert evals[("dev", "macro f1")] == pytest.approx(metrics["dev"]["macro_f1"], abs=1e-6)
    text = card.text
    assert hashlib.sha256(data["train"].read_bytes()).hexdigest()[:16] in text
    n_pos = data["train"].read_text().count(",pos\n")
    assert f"pos {n_pos}" in text or f"pos {n_pos}," in text  # label counts from the train file
    report = json.loads((result.run_dir / "classification_report_test.json").read_text())
    worst = min(("neg", "pos"), key=lambda k: report[k]["f1-score"])
    assert f"- **{worst}**: F1 {report[worst]['f1-score']:.3f}" in text
    # recipes keep the best model's test probabilities, so the card measures calibration on them
    with np.load(result.run_dir / "probabilities_test.npz") as z:
        ece = expected_calibration_error(z["probs"], z["y"])
    assert f"Calibration: expected calibration error {ece:.4f} on test" in text
    assert "peak memory" in text and "## Intended use" in text
    assert metrics["train"]["cpu_model"] in text


def test_card_with_missing_optional_files_and_kept_probabilities(tiny_run, tmp_path):
    result, _ = tiny_run
    run = tmp_path / "copy"
    (run / "model").mkdir(parents=True)
    for name in ("run.json", "labels.json"):
        shutil.copy(result.run_dir / "model" / name, run / "model" / name)
    card = ModelCard.load(write_model_card(run))  # no config, metrics or reports
    assert "metrics not recorded" in card.text and "no classification report" in card.text
    assert card.data.eval_results is None
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1], size=200)
    y = (rng.random(200) < probs[:, 1]).astype(int)  # calibrated by construction
    np.savez(run / "probabilities_test.npz", probs=probs, y=y)
    ece = expected_calibration_error(probs, y)
    assert f"expected calibration error {ece:.4f} on test" in ModelCard.load(write_model_card(run)).text


def test_expected_calibration_error_matches_a_hand_computed_case():
    # bin of confidence 0.9 (2 answers, 1 right): |0.5-0.9|; bin of 0.6 (2 answers, both right): |1-0.6|
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probs, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_card_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    code, _, err = _run(["card", str(tmp_path)], capsys)
    assert code == 2 and "is not a run folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(["card", str(tmp_path / "nope")], capsys)
    assert code == 2 and "does not exist" in err


def test_card_of_a_run_on_the_bundled_intents_fingerprints_them(tiny_run, tmp_path):
    from growthcurve.data.text import bundled_intents_dir

    result, _ = tiny_run
    run = tmp_path / "bundled"
    (run / "model").mkdir(parents=True)
    shutil.copy(result.run_dir / "model" / "run.json", run / "model" / "run.json")
    (run / "config.yaml").write_text("task: text-classification\ndata:\n  train: null\n  label_column: label\n")
    text = ModelCard.load(write_model_card(run)).text
    train = bundled_intents_dir() / "train.csv"
    assert "bundled customer-service intents" in text
    assert hashlib.sha256(train.read_bytes()).hexdigest()[:16] in text
