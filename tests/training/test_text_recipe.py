"""The training loop: a tiny model learns, runs resume bit-identically, reloads with the same predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from growthcurve.config import load_finetune_config
from growthcurve.training.loop import Interrupted
from growthcurve.training.text import finetune_text
from tests.conftest import toy_overrides


def test_tiny_model_learns_toy_task(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    cfg = load_finetune_config(None, toy_overrides(tiny_bert, toy_data, tmp_path / "run"))
    res = finetune_text(cfg, progress=False)
    assert res.test is not None and res.test["accuracy"] >= 0.85  # chance is 0.5
    run = tmp_path / "run"
    for name in (
        "metrics.json",
        "classification_report_test.txt",
        "classification_report_dev.json",
        "confusion_matrix_test.png",
        "training_curves.png",
        "config.yaml",
        "model/labels.json",
        "model/model.safetensors",
        "model/tokenizer.json",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 3 and metrics["test"]["accuracy"] == res.test["accuracy"]


def test_resume_after_interruption_is_identical(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    # dropout on, so the saved RNG state matters; interruption mid-epoch, between checkpoints
    extra = {"train.epochs": 2, "train.checkpoint_every_steps": 1000}
    full = load_finetune_config(None, toy_overrides(tiny_bert, toy_data, tmp_path / "full", **extra))
    ref = finetune_text(full, progress=False)

    cut = load_finetune_config(None, toy_overrides(tiny_bert, toy_data, tmp_path / "cut", **extra))
    with pytest.raises(Interrupted):
        finetune_text(cut, progress=False, stop_after_steps=11)  # 15 steps per epoch: stops inside epoch 1
    assert (tmp_path / "cut" / "checkpoints" / "last.pt").is_file()
    resumed = finetune_text(cut, progress=False)

    assert resumed.test == ref.test
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in ref.history]
    from safetensors.torch import load_file

    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_config(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    from growthcurve.errors import ConfigError

    cfg = load_finetune_config(None, toy_overrides(tiny_bert, toy_data, tmp_path / "r", **{"train.epochs": 1}))
    with pytest.raises(Interrupted):
        finetune_text(cfg, progress=False, stop_after_steps=2)
    other = load_finetune_config(None, toy_overrides(tiny_bert, toy_data, tmp_path / "r", **{"train.epochs": 2}))
    with pytest.raises(ConfigError, match="different config"):
        finetune_text(other, progress=False)


def test_reload_gives_the_training_predictions(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    from growthcurve.training.inference import Predictor, evaluate_run

    cfg = load_finetune_config(None, toy_overrides(tiny_bert, toy_data, tmp_path / "run", **{"train.epochs": 4}))
    res = finetune_text(cfg, progress=False)
    ev = evaluate_run(tmp_path / "run", toy_data["test"], progress=False)
    assert ev["metrics"]["accuracy"] == pytest.approx(res.test["accuracy"])
    pred = Predictor(tmp_path / "run").predict(["the movie was awful", "so wonderful"], top_k=2)
    assert [p["label"] for p in pred] == ["neg", "pos"]
    assert len(pred[0]["top_k"]) == 2 and abs(sum(t["probability"] for t in pred[0]["top_k"]) - 1) < 1e-4


def test_bf16_sparse_embeddings_and_accumulation_learn(
    tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path
) -> None:
    extra = {
        "train.precision": "bf16",
        "train.sparse_embeddings": "on",
        "train.grad_accum_steps": 2,
        "train.epochs": 4,
        "train.batch_size": 8,
        "train.class_weights": "balanced",
    }
    cfg = load_finetune_config(None, toy_overrides(tiny_bert, toy_data, tmp_path / "run", **extra))
    res = finetune_text(cfg, progress=False)
    assert res.precision == "bf16"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train"]["sparse_embeddings"] is True
    assert res.test["accuracy"] >= 0.85


def test_multi_label_with_delimiter(tiny_bert: Path, tmp_path: Path) -> None:
    import random

    from tests.conftest import NEG, POS, write_csv

    rng = random.Random(0)
    rows = []
    for _ in range(300):
        labels = [lab for lab, p in (("pos", 0.5), ("neg", 0.5)) if rng.random() < p] or ["none"]
        words = (
            ["the", "film"]
            + ([rng.choice(POS)] if "pos" in labels else [])
            + ([rng.choice(NEG)] if "neg" in labels else [])
        )
        rng.shuffle(words)
        rows.append((" ".join(words), "|".join(labels)))
    train = write_csv(tmp_path / "ml.csv", rows)
    sets = [
        f"model.name_or_path={tiny_bert}",
        f"data.train={train}",
        "data.multi_label=true",
        "data.label_delimiter=|",
        f"output_dir={tmp_path / 'run'}",
        "train.epochs=6",
        "train.batch_size=16",
        "train.learning_rate=3e-3",
        "train.precision=fp32",
        "data.dev_fraction=0.2",
        "model.max_length=16",
    ]
    res = finetune_text(load_finetune_config(None, sets), progress=False)
    assert res.labels == ["neg", "none", "pos"]
    assert res.dev["micro_f1"] >= 0.85
