"""Vocabulary extension with parameter-efficient methods: only the new embedding rows train, they are saved
with the adapter (not the whole table), and runs reload with identical logits on Chinese input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from growthcurve.config import load_finetune_config
from growthcurve.models.build import build_model, build_token_model
from growthcurve.models.peft_methods import METHOD_FILE, PEFT_METHODS, load_method_model
from growthcurve.models.vocab import extend_vocab, extend_vocab_for
from growthcurve.training.runfolder import load_run
from tests.conftest import city_ner_rows, keyword_rows, write_csv

CLASSES = {  # synthetic 2-class Chinese task: the class is given by a keyword the tiny vocabulary lacks
    "weather": ["暴雨", "台风", "霜冻", "冰雹"],
    "food": ["饺子", "馄饨", "粽子", "汤圆"],
}
PREFIX = ["今天", "请问", "关于", ""]
SUFFIX = ["吗", "怎么样", "的情况", ""]
PROBE = ["请问饺子怎么样", "今天暴雨吗", "关于台风的情况", "汤圆"]


def zh_rows(n: int, seed: int) -> list[tuple[str, str]]:
    return keyword_rows(n, seed, CLASSES, PREFIX, SUFFIX)


def _tok(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _effective_rows(model: torch.nn.Module, n: int) -> torch.Tensor:
    """The ``n`` embedding rows the model actually reads (base table with peft's trainable-token delta)."""
    with torch.no_grad():
        return model.get_input_embeddings()(torch.arange(n)).detach().clone()


def _few_steps(model: torch.nn.Module, tok: Any, rows: list[tuple[str, str]], steps: int = 4) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    labels = sorted(CLASSES)
    model.train()
    for i in range(steps):
        chunk = rows[i * 8 : (i + 1) * 8]
        enc = tok([t for t, _ in chunk], padding=True, return_tensors="pt")
        y = torch.tensor([labels.index(lab) for _, lab in chunk])
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_only_new_rows_train_and_reload_exactly(tiny_encoder: Path, tmp_path: Path, method: str) -> None:
    torch.manual_seed(0)
    rows = zh_rows(32, 0)
    tok = _tok(tiny_encoder)
    cfg = load_finetune_config(None, [f"method={method}", f"model.name_or_path={tiny_encoder}"])
    vocab = extend_vocab_for(cfg, tok, [t for t, _ in rows], echo=False)  # auto: coverage of Chinese is 0%
    assert vocab.extended and vocab.new_size == len(tok) > vocab.old_size
    model = build_model(cfg, str(tiny_encoder), sorted(CLASSES), False, vocab)
    before = _effective_rows(model, len(tok))
    assert before.shape[0] == len(tok)
    _few_steps(model, tok, rows)
    after = _effective_rows(model, len(tok))
    old = vocab.old_size
    assert torch.equal(after[:old], before[:old])  # the pretrained rows are untouched
    seen = sorted({i for t, _ in rows[:32] for i in tok(t)["input_ids"] if i >= old})
    assert seen and (after[seen] - before[seen]).abs().amax(1).min() > 1e-4  # every new row in a batch moved

    # saved with the adapter and reloaded on the base model: identical logits on Chinese input
    out = tmp_path / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    info = json.loads((out / METHOD_FILE).read_text(encoding="utf-8"))
    assert info["vocab"] == {"base_size": old, "size": len(tok)}
    meta = {"task": "text-classification", "base_model": str(tiny_encoder), "first_token_only": True}
    loaded = load_method_model(out, meta).eval()
    enc = tok(PROBE, padding=True, return_tensors="pt")
    assert tok.unk_token_id not in enc["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, loaded(**enc).logits)


@pytest.fixture(scope="module")
def lora_runs(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A LoRA text run on the Chinese task with auto extension and one with extension off."""
    from growthcurve.training.text import finetune_text

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("peft-vocab")
    data = {s: write_csv(d / f"{s}.csv", zh_rows(n, seed)) for s, n, seed in (("train", 192, 0), ("test", 64, 2))}
    out: dict[str, Any] = {"data": data}
    for mode in ("null", "false"):
        sets = {"method": "lora", "model.name_or_path": tiny_encoder, "data.train": data["train"],
                "data.test": data["test"], "data.dev_fraction": 0, "output_dir": d / mode, "train.epochs": 4,
                "train.batch_size": 16, "train.precision": "fp32", "model.max_length": 32,
                "model.extend_vocab": mode,
                # the toy's class keywords all sit in one slot between shared prefixes and suffixes, so the
                # distributional init (cooc, the default) starts them alike; this tests the PEFT path
                "model.new_rows_init": "mean_noise"}  # fmt: skip
        cfg = load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()])
        out[mode] = (cfg, finetune_text(cfg, progress=False), d / mode)
    return out


def test_lora_run_learns_with_extension_and_reloads_identically(lora_runs: dict[str, Any]) -> None:
    cfg, res, run_dir = lora_runs["null"]
    _, res_off, _ = lora_runs["false"]
    assert res.test["accuracy"] >= 0.9, res.test  # keywords are tokens of their own, trained with the adapter
    assert res_off.test["accuracy"] <= 0.75, res_off.test  # every keyword character is [UNK]
    meta = json.loads((run_dir / "model" / "run.json").read_text(encoding="utf-8"))
    assert meta["method"] == "lora" and meta["vocab"]["coverage_after"] == 1.0
    assert meta["vocab"]["coverage_before"] < 0.5 and meta["vocab"]["added_tokens"] > 0

    # the loop's own last state, rebuilt in memory, against the run folder reloaded from disk
    tok = _tok(Path(cfg.model.name_or_path))
    vocab = extend_vocab(True, tok, [t for t, _ in zh_rows(192, 0)], seed=cfg.train.seed)
    trained = build_model(cfg, cfg.model.name_or_path, res.labels, False, vocab)
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    trained.load_state_dict(state)
    run = load_run(run_dir)
    assert len(run.tokenizer) == len(tok) == run.model.config.vocab_size
    enc = run.tokenizer(PROBE, padding=True, return_tensors="pt")
    assert run.tokenizer.unk_token_id not in enc["input_ids"]
    with torch.no_grad():
        assert torch.equal(trained.eval()(**enc).logits, run.model(**enc).logits)


def test_lora_adapter_holds_only_the_new_rows(lora_runs: dict[str, Any]) -> None:
    from safetensors import safe_open

    run_dir = lora_runs["null"][2]
    meta = json.loads((run_dir / "model" / "run.json").read_text(encoding="utf-8"))
    added, size = meta["vocab"]["added_tokens"], meta["vocab"]["vocab_size"]
    hidden = load_run(run_dir).model.config.hidden_size
    path = run_dir / "model" / "adapter_model.safetensors"
    with safe_open(str(path), "pt") as fh:
        shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    deltas = [s for k, s in shapes.items() if "trainable_tokens_delta" in k]
    assert deltas == [(added, hidden)]
    assert not any(s[0] == size for s in shapes.values())  # no whole embedding table
    # against the same run without extension, the adapter grows by the new rows' fp32 bytes (plus a header
    # entry), not by the table's
    off = lora_runs["false"][2] / "model" / "adapter_model.safetensors"
    grown = path.stat().st_size - off.stat().st_size
    assert added * hidden * 4 <= grown < added * hidden * 4 + 512 < size * hidden * 4
    assert not (run_dir / "model" / "model.safetensors").exists()


def test_lora_token_classification_with_extension_round_trips(tiny_encoder: Path, tmp_path: Path) -> None:
    from growthcurve.training.dispatch import run_finetune
    from growthcurve.training.inference import Predictor

    rows = city_ner_rows(160, 0)
    path = tmp_path / "zh_ner.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "ner"
    sets = {"task": "token-classification", "method": "lora", "model.name_or_path": tiny_encoder,
            "data.train": path, "output_dir": out, "train.epochs": 4, "train.batch_size": 16,
            "train.precision": "fp32", "model.max_length": 32}  # fmt: skip
    cfg = load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()])
    res = run_finetune(cfg, progress=False)
    assert res.dev["entity_f1"] >= 0.8, res.dev

    tok = _tok(tiny_encoder)
    vocab = extend_vocab(True, tok, [r["text"] for r in rows], seed=cfg.train.seed)
    assert len(load_run(out).tokenizer) == len(tok)
    trained = build_token_model(cfg, str(tiny_encoder), res.labels, vocab)
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    trained.load_state_dict(state)
    loaded = load_run(out).model
    enc = tok([list("他今天去深圳工作"), list("我在北京")], is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(trained.eval()(**enc).logits, loaded(**enc).logits)
    got = Predictor(out).predict(["他今天去深圳工作"])[0]
    assert [(e["type"], e["text"]) for e in got["entities"]] == [("LOC", "深圳")]


def test_merge_folds_the_new_rows_into_a_plain_table(
    lora_runs: dict[str, Any], tiny_encoder: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    from growthcurve.training.merge import merge_run
    from growthcurve.training.text import finetune_text

    sets = {"method": "freeze", "model.name_or_path": tiny_encoder, "data.train": lora_runs["data"]["train"],
            "data.dev_fraction": 0, "output_dir": tmp_path / "freeze", "train.epochs": 1, "train.precision": "fp32",
            "model.max_length": 32}  # fmt: skip
    finetune_text(load_finetune_config(None, [f"{k}={v}" for k, v in sets.items()]), progress=False)
    for run_dir in (lora_runs["null"][2], tmp_path / "freeze"):
        run = load_run(run_dir)
        merged_dir = merge_run(run_dir, tmp_path / f"{run_dir.name}-merged").out_dir
        with safe_open(str(merged_dir / "model.safetensors"), "pt") as fh:
            keys = [k for k in fh.keys() if "word_embeddings" in k]  # noqa: SIM118 (not a dict)
        assert keys == ["bert.embeddings.word_embeddings.weight"]
        merged = load_run(merged_dir)
        enc = run.tokenizer(PROBE, padding=True, return_tensors="pt")
        with torch.no_grad():
            torch.testing.assert_close(run.model(**enc).logits, merged.model(**enc).logits, rtol=0, atol=1e-5)


def test_peft_new_rows_are_the_scaled_group(tiny_encoder: Path) -> None:
    # with vocabulary extension a PEFT run trains only the added rows (peft's trainable tokens): those are scaled
    from growthcurve.training.loop import embedding_rows

    tok = _tok(tiny_encoder)
    cfg = load_finetune_config(None, ["method=lora", f"model.name_or_path={tiny_encoder}"])
    vocab = extend_vocab_for(cfg, tok, ["今天暴雨吗", "请问饺子怎么样"], echo=False)
    model = build_model(cfg, str(tiny_encoder), ["a", "b"], False, vocab)
    rows = embedding_rows(model)
    assert rows and all(p.requires_grad for p in rows)
    assert sum(p.shape[0] for p in rows) == vocab.new_size - vocab.old_size  # one delta row per added character
    plain = build_model(cfg, str(tiny_encoder), ["a", "b"], False, None)
    assert embedding_rows(plain) == []  # LoRA alone: the table is frozen
