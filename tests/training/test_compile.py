"""train.compile=regions: the compiled encoder layers give the eager losses step by step, the recipe records the
compile in metrics.json, and a compile that fails falls back to eager with one warning line."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from growthcurve.config import load_finetune_config
from growthcurve.training.compile import compile_regions, repeated_layers
from growthcurve.training.text import finetune_text
from tests.conftest import make_tiny_bert, toy_overrides, toy_rows


def _batches(tok: Any, n_batches: int = 5, size: int = 8) -> list[dict[str, torch.Tensor]]:
    """Padded toy batches of different lengths (every batch has padding, so the attention mask is used)."""
    rows = toy_rows(n_batches * size, 3)
    out = []
    for i in range(n_batches):
        texts = [t for t, _ in rows[i * size : (i + 1) * size]]
        enc = tok(texts, padding=True, return_tensors="pt")
        enc["labels"] = torch.tensor([y == "pos" for _, y in rows[i * size : (i + 1) * size]], dtype=torch.long)
        out.append(dict(enc))
    return out


def _train(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], compiled: Any = None) -> list[float]:
    """The loop's step in fp32 (forward, cross-entropy, backward, clip, fused AdamW), the first one through
    ``RegionCompile.first_step`` when compiled, as the loop runs it; the per-step losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, fused=True)
    model.train()
    losses = []
    for i, batch in enumerate(batches):
        inputs = {k: v for k, v in batch.items() if k != "labels"}

        def step(inputs: dict[str, torch.Tensor] = inputs, labels: torch.Tensor = batch["labels"]) -> torch.Tensor:
            loss = F.cross_entropy(model(**inputs).logits.float(), labels)
            loss.backward()
            return loss

        loss = compiled.first_step(step, lambda: opt.zero_grad(set_to_none=True)) if compiled and i == 0 else step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    return losses


@pytest.fixture(autouse=True)
def _restore_dynamo_config() -> Iterator[None]:
    """A successful first step turns on dynamo's suppress_errors for the process; undo it after each test, so
    the fallback test sees its backend's error whatever ran before (dynamo's own patcher: monkeypatch would
    delete the config entry on undo)."""
    with torch._dynamo.config.patch(suppress_errors=False):
        yield


def test_repeated_layers_are_the_encoder_stack(tmp_path: Path) -> None:
    _, model = make_tiny_bert(tmp_path)
    assert repeated_layers(model) == list(model.bert.encoder.layer)
    assert compile_regions(model, "off", print) is None  # off: the model is not touched
    assert all(layer._compiled_call_impl is None for layer in model.bert.encoder.layer)


def test_a_model_without_repeated_layers_trains_eagerly(capsys: pytest.CaptureFixture[str]) -> None:
    warnings: list[str] = []
    out = compile_regions(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()), "regions", warnings.append)
    assert out is not None and not out.active and out.report()["mode"] == "off"
    assert len(warnings) == 1 and "no repeated layers" in warnings[0] and "training eagerly" in warnings[0]


def test_a_failing_compile_falls_back_to_eager_with_one_warning(tmp_path: Path) -> None:
    tok, model = make_tiny_bert(tmp_path)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        setattr(model.config, key, 0.0)
    model = type(model)(model.config)  # dropout off: eager and fallback must agree exactly
    reference = copy.deepcopy(model)
    batches = _batches(tok, n_batches=2)

    def broken_backend(gm: Any, example_inputs: Any) -> Any:
        raise RuntimeError("no kernel for this operator")

    warnings: list[str] = []
    compiled = compile_regions(model, "regions", warnings.append, backend=broken_backend)
    assert compiled is not None and compiled.active
    batch = dict(batches[0])
    labels = batch.pop("labels")

    def step() -> torch.Tensor:
        loss = F.cross_entropy(model(**batch).logits, labels)
        loss.backward()
        return loss

    loss = compiled.first_step(step, lambda: model.zero_grad(set_to_none=True))
    assert len(warnings) == 1 and "train.compile=regions failed" in warnings[0] and "training eagerly" in warnings[0]
    assert "no kernel for this operator" in warnings[0]
    report = compiled.report()
    assert report["mode"] == "off" and report["fallback"] and report["first_step_s"] is None
    ref_batch = dict(batches[0])
    ref_loss = F.cross_entropy(reference(**{k: v for k, v in ref_batch.items() if k != "labels"}).logits, labels)
    assert float(loss.detach()) == float(ref_loss.detach())  # the rerun is the eager step
    grads = {n: p.grad for n, p in model.named_parameters()}
    ref_loss.backward()
    for name, p in reference.named_parameters():  # no partial gradient of the failed attempt was kept
        assert torch.equal(grads[name], p.grad), name


@pytest.mark.slow
def test_compiled_layers_give_the_eager_losses_step_by_step(tmp_path: Path) -> None:
    tok, model = make_tiny_bert(tmp_path)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        setattr(model.config, key, 0.0)  # inductor draws dropout masks from its own RNG: compare without it
    torch.manual_seed(0)
    eager = type(model)(model.config)
    compiled_model = copy.deepcopy(eager)
    batches = _batches(tok) * 2  # two passes: the second loss of a batch shows whether the steps trained
    warnings: list[str] = []
    compiled = compile_regions(compiled_model, "regions", warnings.append)
    assert compiled is not None and compiled.active and not warnings

    want = _train(eager, batches)
    got = _train(compiled_model, batches, compiled)
    assert compiled.first_step_s is not None and compiled.first_step_s > 0 and compiled.fallback is None
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert want[5] < want[0]  # batch 0 after five updates: the steps trained (not a comparison of constants)


@pytest.mark.slow
def test_recipe_records_the_compile_and_matches_eager(
    tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path
) -> None:
    # every layer alike (no first-token fast path), so the compiled graph of the test above serves this one too;
    # dropout on, drawn from the eager RNG in the compiled kernels too (inductor's fallback_random), so both
    # runs see the same masks
    extra = {"train.epochs": 2, "model.first_token_only": False, "train.batching": "random"}
    runs = {}
    for mode in ("off", "regions"):
        cfg = load_finetune_config(
            None, toy_overrides(tiny_bert, toy_data, tmp_path / mode, **extra, **{"train.compile": mode})
        )
        with torch._inductor.config.patch(fallback_random=True):
            runs[mode] = finetune_text(cfg, progress=False)
    eager, compiled = runs["off"], runs["regions"]
    assert [h["train_loss"] for h in compiled.history] == pytest.approx(
        [h["train_loss"] for h in eager.history], rel=1e-3
    )
    assert compiled.dev["loss"] == pytest.approx(eager.dev["loss"], rel=1e-3)
    info = json.loads((tmp_path / "regions" / "metrics.json").read_text())["train"]["compile"]
    assert info["mode"] == "regions" and info["compiled_layers"] == 2 and info["dynamic"] is True
    assert info["first_step_s"] > 0 and info["fallback"] is None and info["cache_dir"]
    off = json.loads((tmp_path / "off" / "metrics.json").read_text())["train"]["compile"]
    assert off == {"mode": "off"}


@pytest.mark.parametrize("kind", ["textcnn", "tfidf"])
def test_baselines_say_they_train_eagerly(
    tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    # the setting is never silently ignored: one warning line, and metrics.json says no layer was compiled
    from growthcurve.training.dispatch import run_finetune

    sets = toy_overrides(
        tiny_bert, toy_data, tmp_path / kind, **{"model.type": kind, "train.epochs": 1, "train.compile": "regions"}
    )
    run_finetune(load_finetune_config(None, sets), progress=False)
    err = capsys.readouterr()
    warning = "no repeated layers to compile" if kind == "textcnn" else "has no torch layers to compile"
    assert "warning: train.compile=regions: " in err.out + err.err and warning in err.out + err.err
    metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
    if kind == "textcnn":
        info = metrics["train"]["compile"]
        assert info["mode"] == "off" and info["requested"] == "regions" and "TextCNN" in info["fallback"]
    else:
        assert any("train.compile" in w for w in metrics["warnings"])


def test_the_default_inductor_cache_is_split_per_cpu_isa(monkeypatch: pytest.MonkeyPatch) -> None:
    # kernels built for one vector ISA gave NaN or a heap abort under another (docs/finetune.md): one folder each
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from growthcurve.training.compile import isa_cache_dir

    default = os.path.abspath(default_cache_dir())
    for isa in ("AVX2", "AVX512"):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda isa=isa: isa)
        for start in (None, default):  # unset, or inductor's own default already written into the variable
            if start is None:
                monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
            else:
                monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", start)
            assert isa_cache_dir() == os.path.join(default, f"cpu-{isa.lower()}")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/tmp/gc-my-cache")  # the user's own folder: left alone
    assert isa_cache_dir() == "/tmp/gc-my-cache"
