"""Fixtures for PEFT: a tiny BERT built from a config and briefly pre-trained, so a frozen encoder has features.

Parameter-efficient methods adapt a pretrained encoder; a randomly initialised one carries almost no usable
signal through frozen layers, so the fixture first trains the tiny model on the toy task (other rows) and
saves only its encoder, as a hub encoder would be.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import make_tiny_bert, toy_rows


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide BERT encoder (with pooler) pre-trained for 60 steps on toy sentiment rows."""
    d = tmp_path_factory.mktemp("tiny-encoder")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tok, model = make_tiny_bert(d)
    rows = toy_rows(960, 99)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for i in range(0, len(rows), 16):
        chunk = rows[i : i + 16]
        enc = tok([t for t, _ in chunk], padding=True, return_tensors="pt")
        labels = torch.tensor([int(y == "pos") for _, y in chunk])
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    torch.set_num_threads(threads)
    model.bert.save_pretrained(d)  # the encoder only, like MiniLM: every run gets a fresh head
    return d


def peft_overrides(encoder: Path, data: dict[str, Path], out: Path, method: str, **extra: object) -> list[str]:
    """--set overrides for a fast PEFT run of the tiny encoder on the toy data (no dev split: last epoch kept)."""
    sets: dict[str, object] = {
        "method": method,
        "model.name_or_path": encoder,
        "data.train": data["train"],
        "data.test": data["test"],
        "data.dev_fraction": 0,
        "output_dir": out,
        "train.epochs": 3,
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "train.checkpoint_every_steps": 1000,
        "model.max_length": 32,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]
