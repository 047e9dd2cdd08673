"""Fixtures shared by every test package: a tiny BERT built from a config (no download), toy data, and one
torch thread for the tiny models."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models train several times faster on one thread than on two contended, spinning ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _tmp_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own SQLite store (the run registry records each finetune), so none writes
    ``growthcurve.db`` into the repository or sees another test's runs."""
    d = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("GROWTHCURVE_DB_URL", f"sqlite:///{d / 'growthcurve.db'}")
    monkeypatch.delenv("GROWTHCURVE_STORE", raising=False)  # it would win over GROWTHCURVE_DB_URL
    monkeypatch.delenv("GROWTHCURVE_PARENT_RUN", raising=False)
    monkeypatch.delenv("GROWTHCURVE_TUNE_TRIAL", raising=False)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: Any, base: str, seconds: float = 120.0) -> None:
    """Wait until the server process ``proc`` answers ``base``/ready with 200; fail with its stderr if it exits."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "the server exited")
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not get ready"
        time.sleep(0.2)


POS = ["great", "excellent", "love", "wonderful", "fantastic", "good", "happy", "amazing"]
NEG = ["terrible", "awful", "hate", "horrible", "bad", "poor", "sad", "worst"]
FILLER = ["the", "movie", "was", "really", "so", "this", "film", "very", "quite", "plot", "acting", "and"]


def toy_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """A learnable sentiment task: the label is given by one polar word among fillers."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, rng.randint(2, 6)) + [rng.choice(POS if label == "pos" else NEG)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def keyword_rows(
    n: int, seed: int, classes: dict[str, list[str]], prefix: list[str], suffix: list[str]
) -> list[tuple[str, str]]:
    """A clearly synthetic task: each row is a shared prefix, one keyword of its class, a shared suffix."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice(sorted(classes))
        out.append((rng.choice(prefix) + rng.choice(classes[label]) + rng.choice(suffix), label))
    return out


def city_ner_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """A synthetic character-level Chinese NER set: one city (B-LOC, I-LOC) between shared prefixes/suffixes."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        city = rng.choice(["北京", "上海", "广州", "深圳"])
        pre, suf = rng.choice(["我在", "今天去", "他住在", ""]), rng.choice(["工作", "吗", "的天气", ""])
        rows.append({"text": pre + city + suf, "tags": ["O"] * len(pre) + ["B-LOC", "I-LOC"] + ["O"] * len(suf)})
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def tiny_bert_config(vocab_size: int) -> Any:
    """The 2-layer, 64-wide BERT config every tiny test model uses."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )


def make_tiny_bert(d: Path) -> tuple[Any, Any]:
    """Write a WordPiece tokenizer of the toy words to ``d``; return it and a random 2-layer, 64-wide BERT
    classifier (seed 0) on that vocabulary."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *sorted(set(POS + NEG + FILLER)),
        *"abcdefghijklmnopqrstuvwxyz",
    ]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(d)
    cfg = tiny_bert_config(len(vocab))
    torch.manual_seed(0)
    return tok, BertForSequenceClassification(cfg)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide BERT with a WordPiece vocabulary of the toy words, saved like a hub model."""
    d = tmp_path_factory.mktemp("tiny-bert")
    _, model = make_tiny_bert(d)
    model.bert.save_pretrained(d)  # an encoder without a head, like MiniLM
    return d


@pytest.fixture()
def toy_data(tmp_path: Path) -> dict[str, Path]:
    """Train/dev/test CSVs of the toy task."""
    return {
        "train": write_csv(tmp_path / "train.csv", toy_rows(256, 0)),
        "dev": write_csv(tmp_path / "dev.csv", toy_rows(64, 1)),
        "test": write_csv(tmp_path / "test.csv", toy_rows(64, 2)),
    }


def toy_overrides(tiny_bert: Path, data: dict[str, Path], out: Path, **extra: object) -> list[str]:
    """--set overrides for a fast run of the tiny model on the toy data."""
    sets = {
        "model.name_or_path": tiny_bert,
        "data.train": data["train"],
        "data.dev": data["dev"],
        "data.test": data["test"],
        "output_dir": out,
        "train.epochs": 3,
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "train.checkpoint_every_steps": 5,
        "model.max_length": 32,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


def throwaway_pg_database(prefix: str) -> Iterator[str]:
    """Yield the URL of a new PostgreSQL database on GROWTHCURVE_TEST_PG_URL and drop it afterwards; skip with
    the reason when no server is set or reachable (session fixtures of the store, serving and validation tests)."""
    import os
    import uuid

    import sqlalchemy as sa

    admin = os.environ.get("GROWTHCURVE_TEST_PG_URL")
    if not admin:
        pytest.skip("no PostgreSQL: set GROWTHCURVE_TEST_PG_URL (source .ci/postgres.sh starts one)")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL at GROWTHCURVE_TEST_PG_URL is not reachable: {str(exc.orig).strip()[:120]}")
    try:
        yield sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
