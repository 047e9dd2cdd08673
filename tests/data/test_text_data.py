"""Readers, validation, label maps, splits, batching and config overrides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from growthcurve.config import DataConfig, load_finetune_config
from growthcurve.data.readers import read_table
from growthcurve.data.text import load_text_splits, stratified_split
from growthcurve.errors import ConfigError, DataError
from growthcurve.training.batching import Encoded, collate, plan_batches


def test_readers_agree_across_formats(tmp_path: Path) -> None:
    df = pd.DataFrame({"text": ["a, quoted", "b"], "label": ["x", "y"]})
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    df.to_parquet(tmp_path / "d.parquet")
    for ext in ("csv", "tsv", "jsonl", "parquet"):
        got = read_table(tmp_path / f"d.{ext}")
        assert got["text"].tolist() == ["a, quoted", "b"], ext


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.csv", 'text,label\n"ok",x\n"too",many,fields\n', r"bad.csv:3: expected 2 fields"),
        ("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", label}\n', r"bad.jsonl:2: malformed JSON"),
        ("empty.csv", "", "is empty"),
        ("header.csv", "text,label\n", "no rows"),
        ("list.jsonl", "[1, 2]\n", "expected a JSON object"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_table(tmp_path / name)


def test_missing_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "d.csv").write_text("utterance,intent\nhi,greet\nbye,leave\n")
    with pytest.raises(DataError, match=r"no column 'text'.*columns are: utterance, intent"):
        load_text_splits(DataConfig(train=str(tmp_path / "d.csv")))


def _write(path: Path, rows: list[tuple[object, object]]) -> Path:
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def test_empty_texts_are_counted_and_skipped(tmp_path: Path) -> None:
    rows = [("good", "pos"), ("", "pos"), (None, "neg"), ("bad", "neg"), ("fine", "pos"), ("awful", "neg")] * 3
    splits = load_text_splits(DataConfig(train=str(_write(tmp_path / "t.csv", rows)), dev_fraction=0.2))
    assert any("skipped 6 of 18 rows" in w for w in splits.warnings)
    assert len(splits.train) + len(splits.dev) == 12
    with pytest.raises(DataError, match="all 2 rows have an empty text"):
        load_text_splits(DataConfig(train=str(_write(tmp_path / "e.csv", [("", "a"), (None, "b")]))))


def test_unseen_labels_and_single_class(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", [("a", "x"), ("b", "y")] * 5)
    test = _write(tmp_path / "test.csv", [("a", "x"), ("c", "z"), ("d", "w")])
    with pytest.raises(DataError, match=r"2 label\(s\) never seen in training data: 'w', 'z'"):
        load_text_splits(DataConfig(train=str(train), dev=str(train), test=str(test)))
    one = _write(tmp_path / "one.csv", [("a", "x")] * 5)
    with pytest.raises(DataError, match="only one class"):
        load_text_splits(DataConfig(train=str(one)))


def test_stratified_split_keeps_every_class_and_rare_ones_in_train() -> None:
    from growthcurve.data.text import TextExamples

    y = np.array([0] * 50 + [1] * 30 + [2] * 19 + [3])
    data = TextExamples([str(i) for i in range(len(y))], None, y)
    train, dev = stratified_split(data, 0.2, seed=0)
    assert len(dev) == 20 and set(dev.labels) == {0, 1, 2}
    assert np.bincount(dev.labels).tolist() == [10, 6, 4]
    assert 3 in train.labels  # a single-example class cannot be split
    assert sorted(train.texts + dev.texts, key=int) == data.texts


def test_label_map_and_multi_label_lists(tmp_path: Path) -> None:
    recs = [{"text": f"t{i}", "labels": ["b", "a"] if i % 2 else ["c"]} for i in range(10)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    cfg = DataConfig(train=str(tmp_path / "m.jsonl"), label_column="labels", multi_label=True, dev_fraction=0.2)
    splits = load_text_splits(cfg)
    assert splits.labels == ["a", "b", "c"]
    all_y = np.concatenate([splits.train.labels, splits.dev.labels])
    assert all_y.shape == (10, 3) and all_y.sum() == 15


def test_bucketed_batches_cover_each_row_once_and_pad_less() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=1000)
    for strategy in ("bucket", "random"):
        plan = plan_batches(lengths, 32, seed=1, epoch=0, strategy=strategy)
        assert sorted(np.concatenate(plan).tolist()) == list(range(1000))
    again = plan_batches(lengths, 32, seed=1, epoch=0)
    assert all((a == b).all() for a, b in zip(plan_batches(lengths, 32, 1, 0), again, strict=True))
    assert not all((a == b).all() for a, b in zip(plan_batches(lengths, 32, 1, 1), again, strict=True))

    def padded(plan: list[np.ndarray]) -> int:
        return sum(len(rows) * lengths[rows].max() for rows in plan)

    assert padded(plan_batches(lengths, 32, 1, 0, "bucket")) < 0.7 * padded(plan_batches(lengths, 32, 1, 0, "random"))


def test_collate_pads_to_longest_in_batch() -> None:
    data = Encoded([np.array([101, 7, 102]), np.array([101, 5, 6, 7, 102])], None, np.array([0, 1]))
    batch = collate(data, np.array([0, 1]), pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 7, 102, 0, 0], [101, 5, 6, 7, 102]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [0, 1]


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 5\ndata:\n  text_column: body\n")
    cfg = load_finetune_config(tmp_path / "c.yaml", ["train.epochs=2", "train.learning_rate=3e-4"])
    assert cfg.train.epochs == 2 and cfg.train.learning_rate == 3e-4 and cfg.data.text_column == "body"
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lr' \(did you mean 'train.learning_rate'\?\)"):
        load_finetune_config(None, ["train.lr=1"])
    with pytest.raises(ConfigError, match=r"did you mean 'data.text_column'"):
        load_finetune_config(None, ["data.text_colum=x"])
    with pytest.raises(ConfigError, match="train.epochs"):
        load_finetune_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        load_finetune_config(None, ["train.epochs"])
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_finetune_config(tmp_path / "bad.yaml")
