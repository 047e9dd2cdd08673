"""Integration: the shipped MiniLM-L6 fine-tunes on a learnable subset of the bundled intents."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from growthcurve.config import load_finetune_config
from growthcurve.data.text import bundled_intents_dir
from growthcurve.training.text import finetune_text

INTENTS = ["order_status", "cancel_order", "payment_failed", "greeting_thanks"]
CJK = re.compile(r"[\u4e00-\u9fff]")


def _subset(split: str, out: Path) -> Path:
    df = pd.read_csv(bundled_intents_dir() / f"{split}.csv")
    df = df[df["label"].isin(INTENTS) & ~df["text"].map(lambda t: bool(CJK.search(t)))]
    df.to_csv(out / f"{split}.csv", index=False)
    return out / f"{split}.csv"


@pytest.mark.slow
def test_minilm_beats_chance_by_a_wide_margin(tmp_path: Path) -> None:
    sets = [
        f"data.train={_subset('train', tmp_path)}",
        f"data.dev={_subset('dev', tmp_path)}",
        f"data.test={_subset('test', tmp_path)}",
        f"output_dir={tmp_path / 'run'}",
        "train.epochs=3",
        "train.batch_size=16",
        "train.learning_rate=2e-4",
        "model.max_length=64",
    ]
    res = finetune_text(load_finetune_config(None, sets), progress=False)
    assert res.labels == sorted(INTENTS)
    assert res.test is not None
    assert res.test["accuracy"] >= 0.75, res.test  # chance is 0.25
