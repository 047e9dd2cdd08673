"""Token classification: readers and tag validation, sub-word alignment, strict entity scoring, a tiny tagger
that learns a toy entity pattern, reload + entity spans with character offsets, and the BiLSTM tagger."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from growthcurve.config import DataConfig, load_finetune_config
from growthcurve.data.tokens import (
    detect_scheme,
    first_invalid_transition,
    load_token_splits,
    read_conll,
    read_token_file,
)
from growthcurve.errors import ConfigError, DataError
from growthcurve.evaluation.ner import allowed_transitions, constrained_decode, entities, ner_scores
from tests.conftest import tiny_bert_config

FIRST = ["alexander", "katherine", "maximilian", "josephine"]  # split into several pieces by the tiny vocab
LAST = ["smithson", "johanssen", "wellington"]
CITY = ["paris", "berlin", "amsterdam", "copenhagen"]
FILLER = ["we", "met", "with", "in", "today", "the", "team", "and", "saw", "later", "office", "then"]
PIECES = ["alex", "##ander", "kath", "##erine", "maxim", "##ilian", "jose", "##phine", "smith", "##son",
          "johan", "##ssen", "welling", "##ton", "amster", "##dam", "copen", "##hagen"]  # fmt: skip


def toy_sentences(n: int, seed: int) -> list[dict[str, list[str]]]:
    """Filler words with a PER (first [last]) and/or a LOC entity at random places."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        toks = rng.sample(FILLER, rng.randint(2, 5))
        tags = ["O"] * len(toks)
        ents = []
        if rng.random() < 0.8:
            per = [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.6 else [])
            ents.append((per, ["B-PER"] + ["I-PER"] * (len(per) - 1)))
        if rng.random() < 0.6:
            ents.append(([rng.choice(CITY)], ["B-LOC"]))
        for words, t in ents:
            at = rng.randint(0, len(toks))
            at = next((i for i in range(at, len(toks) + 1) if i == len(toks) or tags[i] == "O"), len(toks))
            if at > 0 and tags[at - 1] != "O":
                at = len(toks)
            toks[at:at] = words
            tags[at:at] = t
        rows.append({"tokens": toks, "tags": tags})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_bert_ner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide BERT whose WordPiece vocabulary splits the toy names into several pieces."""
    import torch
    from transformers import BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny-bert-ner")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(FILLER + CITY[:2] + PIECES)),
             *"abcdefghijklmnopqrstuvwxyz.,", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]  # fmt: skip
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(d)
    cfg = tiny_bert_config(len(vocab))
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def ner_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ner-data")
    return {
        "train": write_jsonl(d / "train.jsonl", toy_sentences(240, 0)),
        "dev": write_jsonl(d / "dev.jsonl", toy_sentences(48, 1)),
        "test": write_jsonl(d / "test.jsonl", toy_sentences(64, 2)),
    }


def ner_overrides(model: Path | str, data: dict[str, Path], out: Path, **extra: object) -> list[str]:
    sets: dict[str, object] = {
        "task": "token-classification",
        "model.name_or_path": model,
        "data.train": data["train"],
        "data.dev": data["dev"],
        "data.test": data["test"],
        "output_dir": out,
        "train.epochs": 4,
        "train.batch_size": 16,
        "train.learning_rate": 3e-3,
        "train.precision": "fp32",
        "model.max_length": 32,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


# ----------------------------------------------------------------------------------------------
# readers and validation


def test_conll_reader_sentences_and_lines(tmp_path: Path) -> None:
    p = tmp_path / "a.conll"
    p.write_text("-DOCSTART- O\n\nJohn B-PER\nlives O\nin O\nParis\tB-LOC\n\n\nHe O\nleft O\n", encoding="utf-8")
    ex, empty = read_conll(p)
    assert ex.tokens == [["John", "lives", "in", "Paris"], ["He", "left"]]
    assert ex.tags == [["B-PER", "O", "O", "B-LOC"], ["O", "O"]]
    assert ex.lines == [3, 9] and empty == 0


def test_conll_missing_tag_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "b.conll"
    p.write_text("John B-PER\nlives\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"b\.conll:2: expected 'token<TAB>tag'"):
        read_token_file(p, DataConfig())


def test_jsonl_count_mismatch_and_empty_sentences(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    rows = [{"tokens": ["a", "b"], "tags": ["O", "O"]}, {"tokens": [], "tags": []}, {"tokens": ["x"], "tags": []}]
    write_jsonl(p, rows)
    with pytest.raises(DataError, match=r"c\.jsonl:3: 1 tokens but 0 tags"):
        read_token_file(p, DataConfig())
    write_jsonl(p, rows[:2] + [{"tokens": [], "tags": []}])
    ex, warnings = read_token_file(p, DataConfig())
    assert len(ex) == 1 and warnings == [f"'{p}': skipped 2 empty sentence(s)"]


def test_jsonl_reader_errors(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:2: malformed JSON"):
        read_token_file(p, DataConfig())
    p.write_text('{"words": ["a"], "tags": ["O"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:1: no 'tokens' .* fields are: words, tags"):
        read_token_file(p, DataConfig())
    p.write_text('{"tokens": "a b", "tags": ["O", "O"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match="must be a JSON list"):
        read_token_file(p, DataConfig())
    with pytest.raises(DataError, match="does not exist"):
        read_token_file(tmp_path / "nope.jsonl", DataConfig())
    with pytest.raises(ConfigError, match="needs data.train"):
        load_token_splits(DataConfig())


def test_char_level_jsonl(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "zh.jsonl", [{"text": "我在北京", "tags": ["O", "O", "B-LOC", "I-LOC"]}])
    ex, _ = read_token_file(p, DataConfig())
    assert ex.char_level and ex.tokens == [["我", "在", "北", "京"]] and ex.texts == ["我在北京"]
    write_jsonl(p, [{"text": "我在北京", "tags": ["O", "O", "B-LOC"]}])
    with pytest.raises(DataError, match=r"zh\.jsonl:1: 4 characters in text but 3 tags"):
        read_token_file(p, DataConfig())


def test_invalid_transition_reported_with_line(tmp_path: Path) -> None:
    rows = [{"tokens": ["a", "b"], "tags": ["B-PER", "I-PER"]}, {"tokens": ["c", "d"], "tags": ["O", "I-LOC"]}]
    p = write_jsonl(tmp_path / "e.jsonl", rows + rows[1:])
    with pytest.raises(DataError, match=r"e\.jsonl:2: invalid IOB2 sequence at token 2: 'I-LOC' without a "
                       r"preceding B-LOC \(2 sentences have invalid tags\)"):  # fmt: skip
        load_token_splits(DataConfig(train=str(p), dev_fraction=0))
    assert first_invalid_transition(["B-PER", "I-LOC"], "IOB2") == (1, "'I-LOC' without a preceding B-LOC")
    assert first_invalid_transition(["B-PER", "I-PER", "O", "B-LOC"], "IOB2") is None
    assert first_invalid_transition(["B-PER", "E-PER", "S-LOC", "O"], "IOBES") is None
    assert first_invalid_transition(["B-PER", "O"], "IOBES") is not None  # B- not closed by E-
    assert first_invalid_transition(["B-PER"], "IOBES") == (1, "entity 'PER' is not closed with E-PER at the "
                                                               "end of the sentence")  # fmt: skip


def test_scheme_detection(tmp_path: Path) -> None:
    def ex(tags: list[str]) -> object:
        p = write_jsonl(tmp_path / "s.jsonl", [{"tokens": ["w"] * len(tags), "tags": tags}])
        return read_token_file(p, DataConfig())[0]

    assert detect_scheme(ex(["B-PER", "I-PER", "O"])) == "IOB2"
    assert detect_scheme(ex(["B-PER", "E-PER", "S-LOC"])) == "IOBES"
    with pytest.raises(DataError, match="unknown tag scheme"):
        detect_scheme(ex(["PER", "O"]))
    with pytest.raises(DataError, match="BILOU"):
        detect_scheme(ex(["B-PER", "L-PER", "U-LOC"]))
    p = write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["a", "b"], "tags": ["S-PER", "O"]}])
    with pytest.raises(DataError, match="'S-PER' is not an IOB2 tag"):
        load_token_splits(DataConfig(train=str(p), tag_scheme="IOB2", dev_fraction=0))


def test_unseen_dev_tag_is_a_data_error(tmp_path: Path) -> None:
    tr = write_jsonl(tmp_path / "tr.jsonl", [{"tokens": ["a", "b"], "tags": ["B-PER", "O"]}] * 4)
    dv = write_jsonl(tmp_path / "dv.jsonl", [{"tokens": ["a", "b"], "tags": ["B-ORG", "O"]}])
    with pytest.raises(DataError, match=r"dv\.jsonl:1: tag 'B-ORG' never occurs in the training data"):
        load_token_splits(DataConfig(train=str(tr), dev=str(dv)))


# ----------------------------------------------------------------------------------------------
# scoring and decoding


def test_strict_scores_match_hand_count() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O", "I-PER"]]  # I-PER alone is no entity in strict mode
    s = ner_scores(gold, pred, "IOB2")
    # predicted entities: PER(0-2) correct, LOC correct -> 2 predicted, 2 correct; gold has 4
    assert s.precision == pytest.approx(1.0) and s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(2 / 3) and s.accuracy == pytest.approx(5 / 7)
    assert s.per_type["PER"]["recall"] == pytest.approx(0.5) and s.per_type["LOC"]["support"] == 2
    assert entities(["B-PER", "I-PER", "O", "S-LOC"], "IOBES") == [("LOC", 3, 4)]  # B-I without E: invalid


@pytest.mark.parametrize("scheme", ["IOB2", "IOBES"])
def test_constrained_decode_is_the_best_valid_path(scheme: str) -> None:
    tags = ["O"] + [f"{p}-{t}" for t in ("A", "B") for p in (("B", "I") if scheme == "IOB2" else "BIES")]
    masks = allowed_transitions(tags, scheme)
    rng = np.random.default_rng(0)
    for n in (1, 3, 4):
        lp = np.log(rng.dirichlet(np.ones(len(tags)), size=n))
        best = max(
            (p for p in itertools.product(range(len(tags)), repeat=n)
             if first_invalid_transition([tags[i] for i in p], scheme) is None),
            key=lambda p: sum(lp[i, k] for i, k in enumerate(p)),
        )  # fmt: skip
        assert constrained_decode(lp, masks) == list(best)


# ----------------------------------------------------------------------------------------------
# alignment


def test_alignment_first_subtoken_gets_the_label() -> None:
    from growthcurve.models.hf import load_tokenizer, resolve_model_path
    from growthcurve.training.batching import IGNORE, encode_words

    tok = load_tokenizer(resolve_model_path("minilm"))
    words = [["Empire", "Statebuilding", "@paulwalk", "  ", "unaffable", "x"]]
    tags = [[1, 2, 3, 0, 4, 5]]
    enc = encode_words(tok, words, tags, max_length=64, progress=False)
    # independent count: each word tokenised on its own, [CLS] first
    pieces = [tok.tokenize(w) for w in words[0]]
    assert [len(p) for p in pieces] == [1, 2, 3, 0, 3, 1]
    expected_first, pos = [], 1
    for p in pieces:
        expected_first.append(pos if p else -1)
        pos += len(p)
    assert enc.first_index[0].tolist() == expected_first
    lab = enc.labels[0]
    assert len(lab) == pos + 1  # + [SEP]
    want = np.full(len(lab), IGNORE)
    for w, f in enumerate(expected_first):
        if f >= 0:
            want[f] = tags[0][w]
    assert lab.tolist() == want.tolist()
    # truncation: words cut by max_length have no position and are counted
    enc2 = encode_words(tok, words, tags, max_length=5, progress=False)
    assert enc2.first_index[0].tolist() == [1, 2, -1, -1, -1, -1] and enc2.truncated == 1


# ----------------------------------------------------------------------------------------------
# training, reload, predict


def test_tiny_tagger_learns_and_predicts_spans(tiny_bert_ner: Path, ner_data: dict[str, Path], tmp_path: Path) -> None:
    from growthcurve.cli import main
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import Predictor, evaluate_run

    out = tmp_path / "run"
    cfg = load_finetune_config(None, ner_overrides(tiny_bert_ner, ner_data, out))
    res = run_finetune(cfg, progress=False)
    assert res.test is not None and res.test["entity_f1"] >= 0.8  # an all-O or random tagger scores ~0
    for name in ("classification_report_test.txt", "ner_report_test.json", "ner_f1_test.png",
                 "predictions_test.jsonl", "training_curves.png", "model/tokenizer.json"):  # fmt: skip
        assert (out / name).is_file(), name
    saved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["early_stopping_metric"] == "entity_f1"  # the token-classification default
    # the report file holds the same numbers as the returned metrics
    rep = json.loads((out / "ner_report_test.json").read_text())
    assert rep["f1"] == pytest.approx(res.test["entity_f1"]) and rep["scheme"] == "IOB2"

    ev = evaluate_run(out, ner_data["test"], tmp_path / "ev", progress=False)
    assert ev["metrics"]["entity_f1"] == pytest.approx(res.test["entity_f1"])

    pred = Predictor(out)
    text = "we met  alexander smithson in copenhagen today"
    row = pred.predict([text])[0]
    got = [(e["type"], e["text"], e["start"], e["end"]) for e in row["entities"]]
    assert ("PER", "alexander smithson", 8, 26) in got and ("LOC", "copenhagen", 30, 40) in got
    for e in row["entities"]:
        assert text[e["start"] : e["end"]] == e["text"] and 0 < e["score"] <= 1
    split_row = pred.predict([["the", "team", "saw", "katherine"]])[0]
    assert split_row["tags"] == ["O", "O", "O", "B-PER"] and split_row["entities"][0]["start"] == 13

    src = tmp_path / "in.txt"
    src.write_text(text + "\n", encoding="utf-8")
    main(["predict", str(out), str(src), "--out", str(tmp_path / "p.jsonl")])  # raises SystemExit on error
    line = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert line["entities"] == row["entities"]


def test_bilstm_tagger_trains_and_reloads(ner_data: dict[str, Path], tmp_path: Path) -> None:
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import Predictor

    out = tmp_path / "rnn"
    sets = ner_overrides("unused", ner_data, out, **{"model.type": "rnn", "model.hidden_size": 32})
    sets = [s for s in sets if not s.startswith(("train.epochs", "train.learning_rate"))]
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    assert res.test is not None and res.test["entity_f1"] >= 0.6
    assert res.history[-1]["epoch"] == 10  # the from-scratch recipe default
    rows = Predictor(out).predict(["we met josephine in berlin"])
    assert {e["type"] for e in rows[0]["entities"]} <= {"PER", "LOC"}


def test_lora_tagger_learns_saves_little_and_reloads_exactly(
    tiny_bert_ner: Path, ner_data: dict[str, Path], tmp_path: Path
) -> None:
    """PEFT works for token classification too: LoRA trains a tagger, the run folder holds only the
    task-specific part, and evaluating the saved run (and its merged form) reproduces the training scores."""
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import evaluate_run
    from growthcurve.training.merge import merge_run

    out = tmp_path / "lora"
    extra = {"method": "lora", "train.epochs": 6, "train.learning_rate": 1e-2}
    sets = ner_overrides(tiny_bert_ner, ner_data, out, **extra)
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    assert res.test is not None and res.test["entity_f1"] >= 0.5  # an all-O tagger scores 0
    assert res.trainable_params < 0.5 * res.total_params
    assert (out / "model" / "adapter_model.safetensors").is_file()
    assert not (out / "model" / "model.safetensors").exists()  # the base weights are not copied
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["train"]["task_specific_bytes"] < 4 * res.total_params
    ev = evaluate_run(out, ner_data["test"], tmp_path / "ev", progress=False)
    assert ev["metrics"]["entity_f1"] == pytest.approx(res.test["entity_f1"])
    merged = merge_run(out).out_dir  # a plain BertForTokenClassification folder, same tags
    ev_merged = evaluate_run(merged, ner_data["test"], tmp_path / "ev-merged", progress=False)
    assert ev_merged["metrics"]["entity_f1"] == pytest.approx(res.test["entity_f1"])


def test_bilstm_tagger_refuses_a_peft_method(ner_data: dict[str, Path], tmp_path: Path) -> None:
    from growthcurve.training.dispatch import run_finetune

    sets = ner_overrides("unused", ner_data, tmp_path / "x", method="lora", **{"model.type": "rnn"})
    with pytest.raises(ConfigError, match="needs model.type=transformer"):
        run_finetune(load_finetune_config(None, sets), progress=False)
