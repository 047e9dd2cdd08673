"""Fixtures for compression: tiny BERT runs trained on learnable toy tasks (text, LoRA, tokens), one thread.

The builders are local (not imported from another test package) so these tests keep working while the
training tests move between folders.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

POS = ["great", "excellent", "love", "wonderful", "fantastic", "good", "happy", "amazing"]
NEG = ["terrible", "awful", "hate", "horrible", "bad", "poor", "sad", "worst"]
FILLER = ["the", "movie", "was", "really", "so", "this", "film", "very", "quite", "plot", "acting", "and"]
CITY = ["paris", "berlin", "rome", "madrid"]
NAME = ["alice", "bob", "carol", "dave"]


def toy_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Sentiment: the label is given by one polar word among fillers."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, rng.randint(2, 6)) + [rng.choice(POS if label == "pos" else NEG)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def toy_sentences(n: int, seed: int) -> list[dict[str, list[str]]]:
    """Tokens with a PER (a name) and/or a LOC (a city) among fillers."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        toks = rng.sample(FILLER, rng.randint(2, 5))
        tags = ["O"] * len(toks)
        for words, tag in ((NAME, "PER"), (CITY, "LOC")):
            if rng.random() < 0.7:
                at = rng.randint(0, len(toks))
                toks.insert(at, rng.choice(words))
                tags.insert(at, f"B-{tag}")
        rows.append({"tokens": toks, "tags": tags})
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("text", "label"))
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run several times faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide BERT encoder on the toy vocabulary, briefly pre-trained so LoRA has features."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny-encoder")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(POS + NEG + FILLER + CITY + NAME))]
    vocab += list("abcdefghijklmnopqrstuvwxyz")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(d)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rows = toy_rows(640, 99)
    for i in range(0, len(rows), 16):
        chunk = rows[i : i + 16]
        enc = tok([t for t, _ in chunk], padding=True, return_tensors="pt")
        loss = model(**enc, labels=torch.tensor([int(y == "pos") for _, y in chunk])).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    torch.set_num_threads(threads)
    model.bert.save_pretrained(d)  # the encoder only, like MiniLM: each run gets a fresh head
    return d


def _train(overrides: list[str]) -> Path:
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = run_finetune(load_finetune_config(None, overrides), progress=False)
    finally:
        torch.set_num_threads(threads)
    return Path(res.run_dir)


@pytest.fixture(scope="session")
def toy_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toy-data")
    return {
        "train": write_csv(d / "train.csv", toy_rows(256, 0)),
        "dev": write_csv(d / "dev.csv", toy_rows(64, 1)),
        "test": write_csv(d / "test.csv", toy_rows(200, 2)),
    }


def _text_sets(encoder: Path, data: dict[str, Path], out: Path, **extra: object) -> list[str]:
    sets: dict[str, object] = {
        "model.name_or_path": encoder,
        "data.train": data["train"],
        "data.dev": data["dev"],
        "data.test": data["test"],
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


@pytest.fixture(scope="session")
def text_run(tiny_encoder: Path, toy_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full fine-tuning run of the tiny encoder that learned the toy sentiment task (test file in config)."""
    return _train(_text_sets(tiny_encoder, toy_files, tmp_path_factory.mktemp("runs") / "text"))


@pytest.fixture(scope="session")
def lora_run(tiny_encoder: Path, toy_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA run of the tiny encoder on the toy task (saves adapter + head only)."""
    out = tmp_path_factory.mktemp("runs") / "lora"
    return _train(_text_sets(tiny_encoder, toy_files, out, method="lora", **{"train.learning_rate": 1e-2}))


@pytest.fixture(scope="session")
def token_run(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A token-classification run of the tiny encoder on toy PER/LOC sentences."""
    d = tmp_path_factory.mktemp("toy-ner")
    sets = {
        "task": "token-classification",
        "model.name_or_path": tiny_encoder,
        "data.train": write_jsonl(d / "train.jsonl", toy_sentences(160, 0)),
        "data.dev": write_jsonl(d / "dev.jsonl", toy_sentences(40, 1)),
        "output_dir": d / "run",
        "train.epochs": 2,
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "train.checkpoint_every_steps": 1000,
        "model.max_length": 32,
    }
    return _train([f"{k}={v}" for k, v in sets.items()])
