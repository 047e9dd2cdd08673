"""Chinese vocabulary extension: coverage numbers, new tokens and embedding rows, runs that learn only with
the extension, and run folders that reload with the extended tokenizer (text and character-level NER)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from growthcurve.config import load_finetune_config
from growthcurve.models.vocab import char_coverage, extend_vocab, extend_vocab_for
from tests.conftest import city_ner_rows, keyword_rows, tiny_bert_config

KNOWN_ZH = ["我", "的", "吗", "今", "天"]  # the only Chinese characters in the tiny vocabulary
CLASSES = {  # clearly synthetic: the class is given by a keyword whose characters the vocabulary lacks
    "weather": ["暴雨", "台风", "霜冻", "冰雹"],
    "food": ["饺子", "馄饨", "粽子", "汤圆"],
    "transport": ["地铁", "轮渡", "缆车", "码头"],
    "health": ["咳嗽", "发烧", "牙疼", "失眠"],
}
PREFIX = ["今天", "我的", "请问", "关于", ""]
SUFFIX = ["吗", "怎么样", "的情况", ""]


def zh_rows(n: int, seed: int) -> list[tuple[str, str]]:
    return keyword_rows(n, seed, CLASSES, PREFIX, SUFFIX)


@pytest.fixture(scope="module")
def tiny_bert_en(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with an English-letter vocabulary and five Chinese characters."""
    from transformers import BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny-bert-zh")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *KNOWN_ZH, *"abcdefghijklmnopqrstuvwxyz,.?"]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(d)
    cfg = tiny_bert_config(len(vocab))
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(d)
    return d


def _tok(path: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_coverage_is_counted_per_distinct_and_per_occurrence(tiny_bert_en: Path) -> None:
    tok = _tok(tiny_bert_en)
    texts = ["我的饺子", "今天 暴雨 ok", "饺子!"]
    cov = char_coverage(tok, texts)
    # distinct non-space chars: 我 的 饺 子 今 天 暴 雨 o k ! -> '!' is not in the vocab either
    assert cov.n_distinct == 11
    assert sorted(cov.missing) == sorted(["饺", "子", "暴", "雨", "!"])
    assert cov.distinct == pytest.approx(6 / 11)
    assert cov.occurrences == pytest.approx(1 - 7 / 13)  # 饺子 twice, 暴雨 once, ! once -> 7 of 13
    assert cov.missing[:2] == ["子", "饺"]  # most frequent first, ties by code point


def test_extension_reaches_full_coverage_and_initialises_rows(tiny_bert_en: Path) -> None:
    from transformers import BertModel

    tok = _tok(tiny_bert_en)
    texts = [t for t, _ in zip_rows(60)]
    n_before = len(tok)
    ext = extend_vocab(True, tok, texts, seed=3)
    assert ext.extended and ext.after is not None and ext.after.distinct == 1.0
    assert len(tok) == n_before + len(ext.added) and len(ext.added) == len(ext.before.missing)
    assert all(tok.unk_token_id not in tok(t)["input_ids"] for t in texts)
    model = BertModel.from_pretrained(str(tiny_bert_en))
    old = model.get_input_embeddings().weight.detach().clone()
    ext.resize(model)
    new = model.get_input_embeddings().weight.detach()
    assert new.shape == (len(tok), old.shape[1]) and model.config.vocab_size == len(tok)
    assert torch.equal(new[: old.shape[0]], old)  # pretrained rows untouched
    added = new[old.shape[0] :]
    # mean of the old rows plus noise with the old per-dimension spread: centred, and not all alike
    assert (added.mean(0) - old.mean(0)).abs().mean() < 0.5 * old.std(0).mean()
    assert added.std(0).mean() > 0.5 * old.std(0).mean()


def zip_rows(n: int) -> list[tuple[str, str]]:
    return zh_rows(n, 0)


def test_auto_mode_threshold(tiny_bert_en: Path) -> None:
    zh = [t for t, _ in zh_rows(40, 1)]
    assert extend_vocab(None, _tok(tiny_bert_en), zh).extended  # coverage far below 90%
    assert not extend_vocab(False, _tok(tiny_bert_en), zh).extended
    en = ["hello world, is this ok?"]
    ext = extend_vocab(None, _tok(tiny_bert_en), en)
    assert not ext.extended and ext.before.distinct == 1.0 and "100.0%" in ext.message()


def test_peft_methods_extend_like_full(tiny_bert_en: Path) -> None:
    # PEFT trains the new rows with its adapter (tests/models/test_peft_vocab.py), so the modes mean the same
    for method in ("lora", "prefix"):
        for mode, extended in (("true", True), ("null", True), ("false", False)):
            cfg = load_finetune_config(None, [f"method={method}", f"model.extend_vocab={mode}"])
            assert extend_vocab_for(cfg, _tok(tiny_bert_en), ["暴雨"], echo=False).extended is extended


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def test_text_run_learns_only_with_extension_and_reloads(tiny_bert_en: Path, tmp_path: Path) -> None:
    from growthcurve.training.inference import Predictor
    from growthcurve.training.runfolder import load_run
    from growthcurve.training.text import finetune_text

    data = {s: _write_csv(tmp_path / f"{s}.csv", zh_rows(n, seed)) for s, n, seed in
            (("train", 240, 0), ("dev", 60, 1), ("test", 80, 2))}  # fmt: skip
    acc = {}
    for mode in ("false", "null"):
        out = tmp_path / f"run-{mode}"
        sets = {"model.name_or_path": tiny_bert_en, "data.train": data["train"], "data.dev": data["dev"],
                "data.test": data["test"], "output_dir": out, "train.epochs": 6, "train.batch_size": 16,
                "train.learning_rate": 3e-3, "train.precision": "fp32", "model.max_length": 32,
                "model.extend_vocab": mode, "train.sparse_embeddings": "on"}  # fmt: skip
        res = finetune_text(load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()]), progress=False)
        acc[mode] = res.test["accuracy"]
    assert acc["null"] >= 0.9  # keywords become tokens of their own; SparseAdam trains the resized table
    assert acc["false"] <= 0.6  # every keyword character is [UNK]: only chance (0.25) and class priors remain
    out = tmp_path / "run-null"
    meta = json.loads((out / "model" / "run.json").read_text(encoding="utf-8"))
    assert meta["vocab"]["coverage_after"] == 1.0 and meta["vocab"]["coverage_before"] < 0.5
    # the saved tokenizer is the extended one: same size and same ids as a fresh extension of the base
    run = load_run(out)
    fresh = _tok(tiny_bert_en)
    extend_vocab(True, fresh, [t for t, _ in zh_rows(240, 0)])
    assert len(run.tokenizer) == len(fresh) == run.model.get_input_embeddings().num_embeddings
    probe = "请问饺子怎么样"
    assert run.tokenizer(probe)["input_ids"] == fresh(probe)["input_ids"]
    assert Predictor(out).predict([probe])[0]["label"] == "food"


def test_char_level_ner_with_extension(tiny_bert_en: Path, tmp_path: Path) -> None:
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import Predictor

    rows = city_ner_rows(200, 0)
    path = tmp_path / "zh_ner.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "ner"
    sets = {"task": "token-classification", "model.name_or_path": tiny_bert_en, "data.train": path,
            "output_dir": out, "train.epochs": 5, "train.batch_size": 16, "train.learning_rate": 3e-3,
            "train.precision": "fp32", "model.max_length": 32}  # fmt: skip
    res = run_finetune(load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()]), progress=False)
    assert res.dev["entity_f1"] >= 0.9
    got = Predictor(out).predict(["他今天去深圳工作"])[0]
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in got["entities"]] == [("LOC", "深圳", 4, 6)]
    assert json.loads((out / "model" / "run.json").read_text(encoding="utf-8"))["char_level"] is True
