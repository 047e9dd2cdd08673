"""Masked-LM adaptation: whole-character word splits, a lower masked-LM loss after training, an adapted folder
that loads as a base model, a run with extension + adaptation that reloads with identical predictions, and the
new-row initialisations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from growthcurve.config import load_finetune_config
from growthcurve.errors import ConfigError, DataError
from growthcurve.models.adapt import adapt_mlm, cjk_words, read_texts, wants_adaptation
from growthcurve.models.vocab import extend_vocab
from tests.conftest import city_ner_rows, keyword_rows, tiny_bert_config, write_csv

KNOWN_ZH = ["我", "的", "吗", "今", "天"]
CLASSES = {  # clearly synthetic: each class has a keyword; prefixes and suffixes are shared
    "weather": ["暴雨", "台风", "霜冻"],
    "food": ["饺子", "馄饨", "粽子"],
}
PREFIX = ["今天", "我的", "请问", "关于"]
SUFFIX = ["吗", "怎么样", "的情况", "好不好"]


def zh_rows(n: int, seed: int) -> list[tuple[str, str]]:
    return keyword_rows(n, seed, CLASSES, PREFIX, SUFFIX)


@pytest.fixture(scope="module")
def tiny_mlm_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT (encoder with pooler, no MLM head, like MiniLM) with five Chinese characters."""
    from transformers import BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny-bert-adapt")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *KNOWN_ZH, *"abcdefghijklmnopqrstuvwxyz,.?"]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(d)
    torch.manual_seed(0)
    BertModel(tiny_bert_config(len(vocab))).save_pretrained(d)
    return d


def _tok(path: Path | str) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_cjk_words_split_every_ideograph_and_keep_other_words_whole() -> None:
    assert cjk_words("今天很好 hello world!") == ["今", "天", "很", "好", "hello", "world!"]
    assert cjk_words("价格：99元，ok") == ["价", "格", "：", "99", "元", "，", "ok"]
    assert cjk_words("  ") == []


def test_adaptation_lowers_the_masked_lm_loss_and_saves_a_loadable_base(tiny_mlm_base: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    texts = [t for t, _ in zh_rows(200, 0)]
    tok = _tok(tiny_mlm_base)
    ext = extend_vocab(True, tok, texts, seed=0)
    assert ext.extended
    encoder, res = adapt_mlm(
        str(tiny_mlm_base), tok, texts, tmp_path / "adapted", steps=60, batch_size=16, learning_rate=3e-3,
        max_length=32, resize=ext.resize, progress=False,
    )  # fmt: skip
    assert res.steps == 60 and res.stopped_by == "steps" and res.texts == 200
    # the synthetic templates are very predictable: training must cut the loss on the same fixed masks
    assert res.loss_after < 0.8 * res.loss_before
    folder = Path(res.path or "")
    assert json.loads((folder / "adaptation.json").read_text())["steps"] == 60
    loaded = AutoModel.from_pretrained(str(folder))
    tok2 = _tok(folder)
    assert len(tok2) == len(tok) == loaded.config.vocab_size
    batch = tok2(texts[:8], padding=True, return_tensors="pt")
    encoder.eval()
    loaded.eval()
    with torch.no_grad():
        a, b = encoder(**batch), loaded(**batch)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert torch.equal(a.pooler_output, b.pooler_output)  # the base's pooler came along


def test_minutes_budget_stops_early_and_no_budget_is_an_error(tiny_mlm_base: Path) -> None:
    texts = [t for t, _ in zh_rows(40, 1)]
    _, res = adapt_mlm(str(tiny_mlm_base), _tok(tiny_mlm_base), texts, steps=None, minutes=1e-6, progress=False)
    assert res.stopped_by == "minutes" and res.steps == 0
    with pytest.raises(DataError, match="needs a budget"):
        adapt_mlm(str(tiny_mlm_base), _tok(tiny_mlm_base), texts, steps=None, minutes=None)
    with pytest.raises(DataError, match="no non-empty texts"):
        adapt_mlm(str(tiny_mlm_base), _tok(tiny_mlm_base), [" ", ""], steps=1)


def test_a_diverging_adaptation_stops_before_saving(tiny_mlm_base: Path, tmp_path: Path) -> None:
    from growthcurve.errors import DivergedError

    texts = [t for t, _ in zh_rows(64, 2)]
    with pytest.raises(DivergedError, match=r"masked-LM adaptation diverged: the loss is (nan|inf)"):
        adapt_mlm(
            str(tiny_mlm_base), _tok(tiny_mlm_base), texts, tmp_path / "adapted", steps=20, batch_size=16,
            learning_rate=1e30, progress=False,
        )  # fmt: skip
    assert not (tmp_path / "adapted").exists() and not list(tmp_path.glob(".adapted*"))  # nothing half-written


def test_auto_mode_and_peft(tmp_path: Path) -> None:
    auto = load_finetune_config(None, [])
    assert auto.model.adapt == "auto"
    assert wants_adaptation(auto, 500) and not wants_adaptation(auto, 499)
    assert wants_adaptation(load_finetune_config(None, ["model.adapt=mlm"]), 0)
    assert not wants_adaptation(load_finetune_config(None, ["model.adapt=none"]), 4000)
    assert not wants_adaptation(load_finetune_config(None, ["method=lora"]), 4000)
    with pytest.raises(ConfigError, match="needs method=full"):
        wants_adaptation(load_finetune_config(None, ["method=lora", "model.adapt=mlm"]), 0)


def test_read_texts_formats(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("第一条\n\n第二条\n", encoding="utf-8")
    assert read_texts(tmp_path / "a.txt") == ["第一条", "第二条"]
    write_csv(tmp_path / "b.csv", [("好吃", "1"), ("难吃", "0")], header=("review", "label"))
    assert read_texts(tmp_path / "b.csv", "review") == ["好吃", "难吃"]
    with pytest.raises(DataError, match="no column 'text'"):
        read_texts(tmp_path / "b.csv")
    with pytest.raises(DataError, match="does not exist"):
        read_texts(tmp_path / "missing.txt")


def test_new_row_initialisations(tiny_mlm_base: Path) -> None:
    from transformers import BertModel

    texts = ["暴雨台风", "饺子"]
    rows = {}
    for init in ("mean_noise", "pieces"):
        tok = _tok(tiny_mlm_base)
        ext = extend_vocab(True, tok, texts, seed=0, init=init)
        # WordPiece makes each missing ideograph [UNK] alone: no pieces to average
        assert all(ids == [] for ids in ext.pieces.values()) and len(ext.pieces) == 6
        model = BertModel.from_pretrained(str(tiny_mlm_base))
        old = model.get_input_embeddings().weight.detach().clone()
        ext.resize(model)
        rows[init] = model.get_input_embeddings().weight.detach()[old.shape[0] :]
        mean = old.mean(0)
    assert torch.allclose(rows["pieces"], mean.expand_as(rows["pieces"]), atol=1e-6)  # [UNK] -> the mean
    assert rows["mean_noise"].std(0).mean() > 0.3 * old.std(0).mean()  # distinct rows
    with pytest.raises(ValueError, match="unknown new-row"):
        extend_vocab(True, _tok(tiny_mlm_base), texts, init="zeros")


def test_run_with_extension_and_adaptation_reloads_identically(tiny_mlm_base: Path, tmp_path: Path) -> None:
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import Predictor

    train = write_csv(tmp_path / "train.csv", zh_rows(320, 0))
    test_rows = zh_rows(48, 2)
    test = write_csv(tmp_path / "test.csv", test_rows)
    sets = {
        "model.name_or_path": tiny_mlm_base,
        "data.train": train,
        "data.test": test,
        "data.dev_fraction": 0,
        "output_dir": tmp_path / "run",
        "train.epochs": 5,
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "model.max_length": 32,
        "model.adapt": "mlm",
        "model.adapt_steps": 20,
    }
    res = run_finetune(load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()]), progress=False)
    metrics = json.loads((res.run_dir / "metrics.json").read_text())
    ad = metrics["adaptation"]
    assert ad["steps"] == 20 and ad["mlm_loss_after"] < ad["mlm_loss_before"] and ad["seconds"] > 0
    run_json = json.loads((res.run_dir / "model" / "run.json").read_text())
    assert run_json["adaptation"]["steps"] == 20 and run_json["vocab"]["added_tokens"] > 0
    card = (res.run_dir / "README.md").read_text(encoding="utf-8")  # the run report says what it did and cost
    assert "## Vocabulary and adaptation" in card and "| masked-LM adaptation | 20 steps on" in card
    assert f"| characters added | {run_json['vocab']['added_tokens']:,} " in card
    pred = Predictor(res.run_dir)
    tok = pred.run.tokenizer
    assert all(tok.unk_token_id not in tok(t)["input_ids"] for t, _ in test_rows)  # the extended tokenizer
    assert pred.run.model.get_input_embeddings().weight.shape[0] == len(tok)
    probs = pred.predict_proba([t for t, _ in test_rows])
    acc = float((probs.argmax(1) == [pred.labels.index(y) for _, y in test_rows]).mean())
    assert acc == pytest.approx(res.test["accuracy"], abs=1e-9)  # reloaded model = the model that was scored
    assert acc > 0.75  # keywords are new characters: learnable only through the new rows
    again = Predictor(res.run_dir).predict_proba([t for t, _ in test_rows])
    assert torch.equal(torch.as_tensor(probs), torch.as_tensor(again))


def test_adapt_command_writes_a_base_model_folder(tiny_mlm_base: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    from tests.training.test_cli import run_cli

    data = tmp_path / "texts.txt"
    data.write_text("\n".join(t for t, _ in zh_rows(60, 3)), encoding="utf-8")
    out = tmp_path / "adapted"
    res = run_cli("adapt", str(data), "--model", str(tiny_mlm_base), "--out", str(out), "--steps", "3", "-q")
    assert res.returncode == 0, res.stderr
    assert "masked-LM adaptation" in res.stdout
    tok = _tok(out)
    assert tok.unk_token_id not in tok("暴雨饺子")["input_ids"]  # the extended tokenizer was saved
    assert AutoModel.from_pretrained(str(out)).config.vocab_size == len(tok)
    bad = run_cli("adapt", str(tmp_path / "missing.txt"), "--model", str(tiny_mlm_base), "--out", str(out))
    assert bad.returncode == 2 and "error:" in bad.stderr and "does not exist" in bad.stderr


def test_char_level_ner_with_extension_and_adaptation(tiny_mlm_base: Path, tmp_path: Path) -> None:
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import Predictor

    rows = city_ner_rows(200, 0)
    path = tmp_path / "zh_ner.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "ner"
    sets = {"task": "token-classification", "model.name_or_path": tiny_mlm_base, "data.train": path,
            "output_dir": out, "train.epochs": 5, "train.batch_size": 16, "train.learning_rate": 3e-3,
            "train.precision": "fp32", "model.max_length": 32, "model.adapt": "mlm",
            "model.adapt_steps": 15}  # fmt: skip
    res = run_finetune(load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()]), progress=False)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["adaptation"]["steps"] == 15
    assert metrics["adaptation"]["mlm_loss_after"] < metrics["adaptation"]["mlm_loss_before"]
    assert res.dev["entity_f1"] >= 0.9
    got = Predictor(out).predict(["今天去深圳工作"])[0]  # the reloaded run: extended tokenizer, character offsets
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in got["entities"]] == [("LOC", "深圳", 3, 5)]


def test_adaptation_runs_outside_the_main_process_and_keeps_the_rng(
    tiny_mlm_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing as mp

    # a spawned worker (benchmarks, accelerate launch) is not named MainProcess: the collator's own seeded
    # generator refuses to run there, so adaptation must not depend on it
    monkeypatch.setattr(mp.current_process(), "name", "Process-1")
    texts = [t for t, _ in zh_rows(40, 4)]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    runs = [adapt_mlm(str(tiny_mlm_base), _tok(tiny_mlm_base), texts, steps=3, progress=False)[1] for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)  # the fine-tuning after it draws what it would have
    assert runs[0].loss_before == runs[1].loss_before and runs[0].loss_after == runs[1].loss_after  # seeded
