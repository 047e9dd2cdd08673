"""Bad input for PEFT runs with an extended vocabulary: a base model swapped for one with another vocabulary
gets one actionable line (exit 2), not a size-mismatch traceback or a blame on the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case
from tests.conftest import tiny_bert_config, write_csv

ZH = [("今天暴雨吗", "weather"), ("请问饺子怎么样", "food"), ("台风的情况", "weather"), ("汤圆", "food")] * 8


def _swapped_base(root: Path) -> None:
    """A LoRA run trained with extension on a tiny base, whose base folder then holds another vocabulary."""
    import torch
    from transformers import BertModel, BertTokenizerFast

    from growthcurve.config import load_finetune_config
    from growthcurve.training.text import finetune_text
    from tests.conftest import make_tiny_bert

    torch.set_num_threads(1)
    base = root / "base"
    base.mkdir()
    _, model = make_tiny_bert(base)
    model.bert.save_pretrained(base)
    sets = {"method": "lora", "model.name_or_path": base, "data.train": write_csv(root / "train.csv", ZH),
            "data.dev_fraction": 0, "output_dir": root / "run", "train.epochs": 1, "train.precision": "fp32",
            "model.max_length": 16}  # fmt: skip
    finetune_text(load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()]), progress=False)
    assert json.loads((root / "run" / "model" / "method.json").read_text())["vocab"]["size"] > 0
    other = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    for f in base.iterdir():
        f.unlink()
    BertTokenizerFast(vocab={w: i for i, w in enumerate(other)}).save_pretrained(base)
    BertModel(tiny_bert_config(len(other))).save_pretrained(base)
    (root / "texts.txt").write_text("今天暴雨吗\n", encoding="utf-8")
    (root / "test.csv").write_text("text,label\n今天暴雨吗,weather\n汤圆,food\n", encoding="utf-8")


FRAGMENT = ["embedding rows", "was the base model changed"]
CASES = [
    Case("predict-peft-vocab-base-swapped", ["predict", "run", "texts.txt"], setup=_swapped_base, fragment=FRAGMENT),
    Case("evaluate-peft-vocab-base-swapped", ["evaluate", "run", "test.csv"], setup=_swapped_base, fragment=FRAGMENT),
]


@cases_param(CASES)
def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
