"""The bundled customer-service intents example: shape, coverage, leakage and reproducibility."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

import growthcurve

INTENTS_DIR = Path(growthcurve.__file__).resolve().parent / "examples" / "intents"
SPLITS = ("train", "dev", "test")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _load_generator() -> ModuleType:
    """Import make_intents.py from its file (the examples folder is data, not a package)."""
    spec = importlib.util.spec_from_file_location("make_intents", INTENTS_DIR / "make_intents.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(INTENTS_DIR / f"{name}.csv", encoding="utf-8") for name in SPLITS}


def test_files_load_with_expected_columns(splits: dict[str, pd.DataFrame]) -> None:
    for name, df in splits.items():
        assert list(df.columns) == ["text", "label", "language"], name
        assert set(df["language"]) == {"en", "zh"}, name
        assert (df["language"].eq("zh") == df["text"].map(lambda t: bool(CJK.search(t)))).all(), name
        assert df["text"].notna().all() and df["label"].notna().all(), name
        assert (df["text"].str.strip().str.len() > 0).all(), name


def test_size_and_label_coverage(splits: dict[str, pd.DataFrame]) -> None:
    labels = set(splits["train"]["label"])
    assert len(labels) >= 10
    assert sum(len(df) for df in splits.values()) >= 600
    for name, df in splits.items():
        assert set(df["label"]) == labels, f"{name} misses {labels - set(df['label'])}"


def test_every_label_has_english_and_chinese(splits: dict[str, pd.DataFrame]) -> None:
    full = pd.concat(splits.values(), ignore_index=True)
    full["zh"] = full["text"].map(lambda t: bool(CJK.search(t)))
    per_label = full.groupby("label")["zh"].agg(["any", "all"])
    assert per_label["any"].all(), "some label has no Chinese utterance"
    assert not per_label["all"].any(), "some label has no English utterance"
    share_zh = full["zh"].mean()
    assert 0.2 <= share_zh <= 0.4, f"Chinese share {share_zh:.2f} is far from the intended 30%"


def test_no_text_shared_between_splits(splits: dict[str, pd.DataFrame]) -> None:
    train = set(splits["train"]["text"])
    assert not train & set(splits["test"]["text"])
    assert not train & set(splits["dev"]["text"])
    assert not set(splits["dev"]["text"]) & set(splits["test"]["text"])
    for name, df in splits.items():
        assert not df["text"].duplicated().any(), name


def test_faq_covers_every_intent_in_both_languages(splits: dict[str, pd.DataFrame]) -> None:
    faq = pd.read_csv(INTENTS_DIR / "faq.csv", encoding="utf-8")
    assert list(faq.columns) == ["intent", "question", "answer"]
    assert set(faq["intent"]) == set(splits["train"]["label"])
    faq["zh"] = faq["question"].map(lambda t: bool(CJK.search(t)))
    assert faq.groupby("intent")["zh"].nunique().eq(2).all()


def test_generator_reproduces_files_byte_for_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = _load_generator()
    assert generator.main(["--out-dir", str(tmp_path)]) == 0
    assert "| **total** |" in capsys.readouterr().out
    for name in SPLITS:
        assert (tmp_path / f"{name}.csv").read_bytes() == (INTENTS_DIR / f"{name}.csv").read_bytes(), name


def test_generator_seed_changes_output(tmp_path: Path) -> None:
    generator = _load_generator()
    generator.main(["--out-dir", str(tmp_path), "--seed", "7"])
    assert (tmp_path / "train.csv").read_bytes() != (INTENTS_DIR / "train.csv").read_bytes()
