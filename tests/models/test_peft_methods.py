"""Parameter-efficient methods: each learns the toy task, saves only its part, reloads and merges exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from growthcurve.config import load_finetune_config
from growthcurve.errors import ConfigError, ModelError
from growthcurve.models.build import build_model
from growthcurve.models.fastpath import first_token_last_layer
from growthcurve.models.peft_methods import MERGEABLE, PEFT_METHODS, apply_method, load_method_model
from growthcurve.training.runfolder import load_run
from growthcurve.training.text import finetune_text
from tests.conftest import toy_rows, write_csv
from tests.models.conftest import peft_overrides

TEXTS = ["the movie was awful", "so wonderful", "this film was really good and happy", "plot bad", "acting"]


@pytest.fixture(scope="module")
def runs(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One finished run per method (trained once, shared by the tests of this module)."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("peft-runs")
    data = {"train": write_csv(d / "train.csv", toy_rows(192, 0)), "test": write_csv(d / "test.csv", toy_rows(64, 2))}
    out: dict[str, Any] = {"data": data}
    for method in PEFT_METHODS:
        cfg = load_finetune_config(None, peft_overrides(tiny_encoder, data, d / method, method))
        out[method] = (cfg, finetune_text(cfg, progress=False), d / method)
    return out


def _batch(run_dir: Path) -> dict[str, torch.Tensor]:
    tok = load_run(run_dir).tokenizer
    return dict(tok(TEXTS, padding=True, return_tensors="pt"))


def _trained_in_memory(cfg: Any, tiny_encoder: Path, run_dir: Path, labels: list[str]) -> torch.nn.Module:
    """The model as the training process held it at the end: rebuilt and given the loop's full checkpoint."""
    model = build_model(cfg, str(tiny_encoder), labels, False)
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_method_learns_with_few_trainable_parameters(runs: dict[str, Any], method: str) -> None:
    _, res, run_dir = runs[method]
    assert res.test["accuracy"] >= 0.8, res.test  # chance is 0.5
    assert 0 < res.trainable_params < res.total_params
    metrics = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert metrics["trainable_params"] == res.trainable_params and metrics["total_params"] == res.total_params
    assert metrics["peak_rss_mb"] > 0
    files = sorted((run_dir / "model").glob("*.safetensors"))
    assert metrics["task_specific_bytes"] == sum(f.stat().st_size for f in files) > 0
    if method != "freeze":  # adapters, prefixes and low-rank updates are a small fraction of the model
        assert res.trainable_params < 0.35 * res.total_params
        assert not (run_dir / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_reload_gives_identical_logits_and_the_trained_head(
    runs: dict[str, Any], tiny_encoder: Path, method: str
) -> None:
    cfg, res, run_dir = runs[method]
    trained = _trained_in_memory(cfg, tiny_encoder, run_dir, res.labels)
    loaded = load_run(run_dir).model
    batch = _batch(run_dir)
    with torch.no_grad():
        a, b = trained(**batch).logits, loaded(**batch).logits
    if method == "adalora":  # pruned rank triplets are dropped on save: a shorter sum of exact zeros
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    else:
        assert torch.equal(a, b)
    head_keys = [
        k for k in trained.state_dict() if "classifier" in k and (method not in MERGEABLE or "modules_to_save" in k)
    ]
    assert head_keys
    t_sd, l_sd = trained.state_dict(), loaded.state_dict()
    for k in head_keys:
        assert torch.equal(t_sd[k], l_sd[k]), k
    # and the saved predictions are the ones the training process reported
    from growthcurve.training.inference import evaluate_run

    ev = evaluate_run(run_dir, runs["data"]["test"], progress=False)
    assert ev["metrics"]["accuracy"] == res.test["accuracy"]


def test_frozen_parts_stay_frozen(runs: dict[str, Any], tiny_encoder: Path) -> None:
    from safetensors.torch import load_file

    base = load_file(tiny_encoder / "model.safetensors")
    for method in PEFT_METHODS:
        state = torch.load(runs[method][2] / "checkpoints" / "last.pt", weights_only=False)["model"]
        emb = next(v for k, v in state.items() if k.endswith("embeddings.word_embeddings.weight"))
        assert torch.equal(emb, base["embeddings.word_embeddings.weight"]), method
    # freeze keeps the lower layers as pretrained and trains the top one(s)
    state = torch.load(runs["freeze"][2] / "checkpoints" / "last.pt", weights_only=False)["model"]
    name = "encoder.layer.{}.attention.self.query.weight"
    # default freeze_top_layers=2 on a 2-layer encoder: both layers trained, embeddings frozen
    assert not torch.equal(state["model.bert." + name.format(0)], base[name.format(0)])


@pytest.mark.parametrize("method", [*MERGEABLE, "freeze"])
def test_merge_gives_a_plain_model_with_the_same_logits(runs: dict[str, Any], method: str, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from growthcurve.training.merge import merge_run

    run_dir = runs[method][2]
    res = merge_run(run_dir, tmp_path / "merged")
    assert res.method == method and res.out_dir == tmp_path / "merged"
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in k for k in plain.state_dict())
    assert first_token_last_layer(plain)  # the last-layer path every growthcurve loader uses
    batch = _batch(run_dir)
    with torch.no_grad():
        unmerged = load_run(run_dir).model(**batch).logits
        merged = plain(**batch).logits
        via_run = load_run(tmp_path / "merged").model(**batch).logits
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)
    assert torch.equal(merged, via_run)
    assert json.loads((tmp_path / "merged" / "run.json").read_text())["method"] == "full"


def test_merge_refuses_prefix_adapter_and_full_runs(runs: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    from growthcurve.cli import main
    from growthcurve.training.merge import merge_run

    with pytest.raises(ModelError, match="prefix tuning adds learned key/value positions"):
        merge_run(runs["prefix"][2])
    with pytest.raises(ModelError, match="non-linear"):
        merge_run(runs["adapter"][2])
    full = tmp_path / "full" / "model"
    full.mkdir(parents=True)
    (full / "run.json").write_text(json.dumps({"method": "full"}))
    (full / "labels.json").write_text("[]")
    with pytest.raises(ModelError, match="already a plain model"):
        merge_run(tmp_path / "full")
    with pytest.raises(SystemExit) as exc:
        main(["merge", str(runs["adapter"][2])])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "cannot merge" in err and "Traceback" not in err


def test_cli_merge_writes_the_folder(runs: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    from growthcurve.cli import main

    main(["merge", str(runs["lora"][2]), "--out", str(tmp_path / "m")])
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()
    assert "merged the lora run" in capsys.readouterr().out


def test_bad_options_are_one_actionable_line(tiny_encoder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="method"):
        load_finetune_config(None, ["method=bitfit"])
    cfg = load_finetune_config(None, ["method=lora", "peft.target_modules=[q_proj, value]"])
    with pytest.raises(ConfigError, match=r"q_proj not in this model; its linear modules are: .*query"):
        build_model(cfg, str(tiny_encoder), ["a", "b"], False)
    cfg = load_finetune_config(None, ["method=freeze", "peft.freeze_top_layers=5"])
    with pytest.raises(ConfigError, match="has 2 layers"):
        build_model(cfg, str(tiny_encoder), ["a", "b"], False)
    cfg = load_finetune_config(None, ["method=adalora", "peft.adalora_init_r=4", "peft.adalora_target_r=8"])
    with pytest.raises(ConfigError, match="adalora_target_r"):
        build_model(cfg, str(tiny_encoder), ["a", "b"], False)


@pytest.mark.parametrize("method", PEFT_METHODS)
def test_gradients_reach_the_method_parameters(tiny_encoder: Path, method: str) -> None:
    from transformers import AutoTokenizer

    cfg = load_finetune_config(None, [f"method={method}", "peft.freeze_top_layers=1"])
    model = build_model(cfg, str(tiny_encoder), ["a", "b"], False)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    marker = {
        "lora": "lora_A",
        "adalora": "lora_E",
        "adapter": ".down.",
        "prefix": "extra.prefix.",
        "freeze": "layer.1.",
    }
    assert any(marker[method] in n for n in trainable), sorted(trainable)
    assert not any("embeddings" in n for n in trainable)
    assert method != "freeze" or not any("layer.0." in n for n in trainable)
    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    batch = dict(tok(TEXTS, padding=True, return_tensors="pt"))
    model.train()
    for _ in range(2):  # two steps: zero-initialised halves (LoRA B, adapter up) pass gradient on at step 2
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.tensor([0, 1, 1, 0, 1]))
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    assert p.requires_grad
                    p -= 0.1 * p.grad
                    p.grad = None
    after = dict(model.named_parameters())
    moved = [n for n in trainable if marker[method] in n and not torch.equal(after[n], trainable[n])]
    assert moved, f"no {marker[method]} parameter was updated"


@pytest.mark.parametrize("method", ["lora", "adapter", "prefix", "freeze"])
def test_token_classification_models_save_and_reload(tiny_encoder: Path, method: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertForTokenClassification

    torch.manual_seed(0)
    base = BertForTokenClassification.from_pretrained(tiny_encoder, num_labels=3)
    cfg = load_finetune_config(None, [f"method={method}", "task=token-classification"])
    model = apply_method(base, cfg, str(tiny_encoder))
    with torch.no_grad():  # stand-in for training: move every trainable tensor away from its init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = load_method_model(tmp_path, {"method": method, "base_model": str(tiny_encoder)}).eval()
    assert type(loaded.hf_model).__name__ == "BertForTokenClassification"
    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    batch = dict(tok(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)


def test_weights_missing_from_the_base_checkpoint_are_trained_and_saved(tiny_encoder: Path, tmp_path: Path) -> None:
    """An encoder saved without a pooler gets a random one: it must be trained and travel with the run."""
    from transformers import AutoTokenizer, BertModel

    base_dir = tmp_path / "no-pooler"
    BertModel.from_pretrained(tiny_encoder, add_pooling_layer=False).save_pretrained(base_dir)
    AutoTokenizer.from_pretrained(tiny_encoder).save_pretrained(base_dir)
    cfg = load_finetune_config(None, ["method=adapter", f"model.name_or_path={base_dir}"])
    model = build_model(cfg, str(base_dir), ["a", "b"], False)
    assert model.info["fresh"] == ["bert.pooler.dense"]
    assert all(p.requires_grad for n, p in model.named_parameters() if ".pooler." in n)
    model.eval().save_pretrained(tmp_path / "run")
    torch.manual_seed(123)  # a different random pooler on reload unless the saved one is used
    loaded = load_method_model(tmp_path / "run", {"method": "adapter", "base_model": str(base_dir)}).eval()
    batch = dict(AutoTokenizer.from_pretrained(base_dir)(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    lora = build_model(load_finetune_config(None, ["method=lora"]), str(base_dir), ["a", "b"], False)
    assert any("pooler" in n and "modules_to_save" in n and p.requires_grad for n, p in lora.named_parameters())


def test_cli_finetune_reports_the_adapter_size(
    tiny_encoder: Path, toy_data: dict[str, Path], tmp_path: Path, capsys: Any
) -> None:
    from growthcurve.cli import main

    sets = peft_overrides(tiny_encoder, toy_data, tmp_path / "run", "lora", **{"train.epochs": 1})
    main(["finetune", "-q", *[x for s in sets for x in ("--set", s)]])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["train"]
    assert 0 < metrics["task_specific_bytes"] < 0.5 * (tiny_encoder / "model.safetensors").stat().st_size
    assert "task-specific weights on disk" in capsys.readouterr().out


def test_resume_after_interruption(tiny_encoder: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    from growthcurve.training.loop import Interrupted

    def cfg(method: str, out: str) -> Any:
        return load_finetune_config(None, peft_overrides(tiny_encoder, toy_data, tmp_path / out, method))

    ref = finetune_text(cfg("adapter", "ref"), progress=False)
    with pytest.raises(Interrupted):
        finetune_text(cfg("adapter", "cut"), progress=False, stop_after_steps=20)
    resumed = finetune_text(cfg("adapter", "cut"), progress=False)
    assert resumed.test == ref.test
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in ref.history]
    # AdaLoRA keeps its importance averages outside the state dict: resuming in the final phase still works
    with pytest.raises(Interrupted):
        finetune_text(cfg("adalora", "ada"), progress=False, stop_after_steps=45)  # 48 steps, final phase from 39
    assert finetune_text(cfg("adalora", "ada"), progress=False).test["accuracy"] >= 0.8


def test_each_method_gets_its_learning_rate_unless_one_is_given() -> None:
    from growthcurve.models.peft_methods import METHOD_LEARNING_RATES, with_method_defaults

    full = load_finetune_config(None, [])
    assert with_method_defaults(full).train.learning_rate == full.train.learning_rate  # full keeps 2e-4
    for method, lr in METHOD_LEARNING_RATES.items():
        assert with_method_defaults(load_finetune_config(None, [f"method={method}"])).train.learning_rate == lr
    given = load_finetune_config(None, ["method=lora", "train.learning_rate=7e-4"])
    assert with_method_defaults(given).train.learning_rate == 7e-4


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_modules_to_save_are_trained_in_full_and_reloaded(tiny_encoder: Path, method: str, tmp_path: Path) -> None:
    """``peft.modules_to_save=[pooler]`` trains the whole pooler (no LoRA inside it) and the run carries it."""
    from transformers import AutoTokenizer

    cfg = load_finetune_config(None, [f"method={method}", "peft.modules_to_save=[pooler]"])
    model = build_model(cfg, str(tiny_encoder), ["a", "b"], False)
    pooler = {n: p for n, p in model.named_parameters() if ".pooler." in n and p.requires_grad}
    assert pooler and not any("lora_" in n for n in pooler)
    with torch.no_grad():
        for p in pooler.values():
            p.add_(0.1)  # stand-in for training
    model.eval().save_pretrained(tmp_path / "run")
    loaded = load_method_model(tmp_path / "run", {"method": method, "base_model": str(tiny_encoder)}).eval()
    batch = dict(AutoTokenizer.from_pretrained(tiny_encoder)(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    bad = load_finetune_config(None, [f"method={method}", "peft.modules_to_save=[poolr]"])
    with pytest.raises(ConfigError, match="'poolr' is not a module of this model; .*pooler"):
        build_model(bad, str(tiny_encoder), ["a", "b"], False)


def sentence_transformers_copy(encoder: Path, tmp_path: Path, cls_pooling: bool) -> Path:
    """``encoder`` laid out as a sentence-transformers folder (``modules.json`` + ``1_Pooling``)."""
    import shutil

    st = tmp_path / "st-encoder"
    shutil.copytree(encoder, st)
    (st / "modules.json").write_text("[]")
    (st / "1_Pooling").mkdir()
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": cls_pooling}))
    return st


@pytest.mark.parametrize(("cls_pooling", "trained"), [(False, True), (True, False)])
def test_pooler_of_a_mean_pooling_sentence_transformer_is_trained_by_default(
    tiny_encoder: Path, tmp_path: Path, cls_pooling: bool, trained: bool
) -> None:
    st = sentence_transformers_copy(tiny_encoder, tmp_path, cls_pooling)
    model = build_model(load_finetune_config(None, ["method=lora"]), str(st), ["a", "b"], False)
    pooler = [p.requires_grad for n, p in model.named_parameters() if ".pooler." in n and "lora_" not in n]
    assert any(pooler) is trained
    plain = build_model(load_finetune_config(None, ["method=lora"]), str(tiny_encoder), ["a", "b"], False)
    assert not any(p.requires_grad for n, p in plain.named_parameters() if ".pooler." in n and "lora_" not in n)
    off = load_finetune_config(None, ["method=lora", "peft.modules_to_save=[]"])
    assert not any(p.requires_grad for n, p in build_model(off, str(st), ["a", "b"], False).named_parameters()
                   if ".pooler." in n and "lora_" not in n)  # fmt: skip


def test_prefix_keeps_the_pooler_frozen_by_default(tiny_encoder: Path, tmp_path: Path) -> None:
    """At prefix tuning's rate a trained pooler diverged on BANKING77, so the sentence-transformers default skips it."""
    st = sentence_transformers_copy(tiny_encoder, tmp_path, cls_pooling=False)
    model = build_model(load_finetune_config(None, ["method=prefix"]), str(st), ["a", "b"], False)
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".pooler." in n)
