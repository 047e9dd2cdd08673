"""Fixtures of the serving tests: two tiny trained text runs (an A/B pair), a tiny NER run, app factories.

The tiny models are built from a config (no download) and trained on a toy task in a few seconds; the
helpers are small copies rather than imports from other test folders, which are being reorganised.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import throwaway_pg_database

POS = ["great", "excellent", "love", "wonderful", "fantastic", "good", "happy", "amazing"]
NEG = ["terrible", "awful", "hate", "horrible", "bad", "poor", "sad", "worst"]
FILLER = ["the", "movie", "was", "really", "so", "this", "film", "very", "quite", "plot", "acting", "and"]
NAMES = ["alice", "bob", "carol"]
CITIES = ["paris", "berlin", "rome"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run several times faster on one thread than on two contended ones (module scope: other
    folders' tests get their threads back)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _toy_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, rng.randint(2, 6)) + [rng.choice(POS if label == "pos" else NEG)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("text", "label"))
        w.writerows(rows)
    return path


def _tiny_base(d: Path, extra_words: list[str]) -> Path:
    """A 2-layer, 64-wide BERT encoder and a WordPiece vocabulary of the toy words, saved like a hub model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(extra_words)), *"abcdefghijklmnopqrstuvwxyz"]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(d)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(d)
    return d


def _train(sets: dict[str, object]) -> Path:
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    res = run_finetune(load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()]), progress=False)
    return Path(res.run_dir)


@pytest.fixture(scope="session")
def text_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two trained tiny sentiment runs (different seeds, so different model versions)."""
    root = tmp_path_factory.mktemp("serving-runs")
    base = _tiny_base(root / "base", POS + NEG + FILLER)
    train = _write_csv(root / "train.csv", _toy_rows(256, 0))
    dev = _write_csv(root / "dev.csv", _toy_rows(64, 1))
    runs = []
    for name, seed in (("run-a", 0), ("run-b", 1)):
        sets = {
            "model.name_or_path": base,
            "data.train": train,
            "data.dev": dev,
            "output_dir": root / name,
            "train.epochs": 3,
            "train.batch_size": 16,
            "train.learning_rate": 3e-3,
            "train.precision": "fp32",
            "train.seed": seed,
            "model.max_length": 32,
        }
        runs.append(_train(sets))
    return runs[0], runs[1]


def _ner_rows(n: int, seed: int) -> list[dict[str, list[str]]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        toks = rng.sample(FILLER, rng.randint(2, 4))
        tags = ["O"] * len(toks)
        at = rng.randint(0, len(toks))
        toks[at:at] = [rng.choice(NAMES)]
        tags[at:at] = ["B-PER"]
        toks.append(rng.choice(CITIES))
        tags.append("B-LOC")
        rows.append({"tokens": toks, "tags": tags})
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def token_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny NER run: a name (PER) somewhere and a city (LOC) at the end of each sentence."""
    root = tmp_path_factory.mktemp("serving-ner")
    base = _tiny_base(root / "base", FILLER + NAMES + CITIES)
    sets = {
        "task": "token-classification",
        "model.name_or_path": base,
        "data.train": _write_jsonl(root / "train.jsonl", _ner_rows(240, 0)),
        "data.dev": _write_jsonl(root / "dev.jsonl", _ner_rows(48, 1)),
        "output_dir": root / "ner",
        "train.epochs": 4,
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "model.max_length": 32,
    }
    return _train(sets)


@pytest.fixture(scope="session")
def text_handlers(text_runs: tuple[Path, Path]) -> tuple[Any, Any]:
    """The two text runs loaded once (loading is the slow part of an app)."""
    from growthcurve.serving import load_handler

    return load_handler(text_runs[0]), load_handler(text_runs[1])


@pytest.fixture()
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for the serving tests; skips without one."""
    yield from throwaway_pg_database("gc_serve")
