"""`accelerate launch` with 2 CPU processes (gloo): training matches one process at equal global batch, an
interrupted 2-process run resumes, the run folder is written once, and `predict` shards and merges in order.

Real launches (torchrun under `accelerate launch --multi_gpu`, which on a CPU-only machine runs gloo), because
that is what users type; each costs a few seconds of interpreter start-up, so the module runs three of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from growthcurve.config import load_finetune_config
from growthcurve.training.dispatch import run_finetune
from tests.conftest import make_tiny_bert, toy_rows, write_csv

pytestmark = pytest.mark.slow

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
LAUNCH += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]

INTERRUPT = """
import sys
from growthcurve.config import load_finetune_config
from growthcurve.training.loop import Interrupted
from growthcurve.training.text import finetune_text

try:
    finetune_text(load_finetune_config(None, sys.argv[2:]), progress=False, stop_after_steps=int(sys.argv[1]))
except Interrupted:
    sys.exit(0)
sys.exit(3)  # it should have been interrupted
"""


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    res = subprocess.run([*LAUNCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def _sets(base: Path, data: dict[str, Path], out: Path, batch_size: int) -> list[str]:
    # batching=bucket (the default) on purpose: the global batches must match without any help from the user
    return [
        f"model.name_or_path={base}",
        *(f"data.{k}={v}" for k, v in data.items()),
        f"output_dir={out}",
        "train.epochs=2",
        "model.dropout=0",
        f"train.batch_size={batch_size}",
        "train.learning_rate=3e-3",
        "train.precision=fp32",
        "train.checkpoint_every_steps=4",
        "train.sparse_embeddings=off",
        "model.max_length=32",
    ]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 1-process run at batch 16 and a 2-process run at batch 8 per process (interrupted, then resumed)."""
    d = tmp_path_factory.mktemp("ddp")
    base = d / "tiny-bert"
    base.mkdir()
    _, model = make_tiny_bert(base)
    # no dropout: with it the two runs would draw different masks and differ by noise, not by a bug
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    model.bert.config.hidden_dropout_prob = model.bert.config.attention_probs_dropout_prob = 0.0
    model.bert.save_pretrained(base)
    data = {
        s: write_csv(d / f"{s}.csv", toy_rows(n, seed))
        for s, n, seed in [("train", 320, 0), ("dev", 64, 1), ("test", 64, 2)]
    }
    one = d / "one"
    run_finetune(load_finetune_config(None, _sets(base, data, one, 16)), progress=False)

    two = d / "two"
    script = d / "interrupt.py"
    script.write_text(textwrap.dedent(INTERRUPT), encoding="utf-8")
    _launch([str(script), "13", *_sets(base, data, two, 8)], d)  # stops mid-epoch 1 (20 steps per epoch)
    assert (two / "checkpoints" / "last.pt").is_file()
    res = _launch(
        ["-m", "growthcurve.cli", "finetune", "-q", *(a for s in _sets(base, data, two, 8) for a in ("-s", s))], d
    )
    return {"one": one, "two": two, "dir": d, "out": res.stdout + res.stderr}  # type: ignore[dict-item]


def test_two_processes_match_one_at_equal_global_batch(two_runs: dict) -> None:
    one = json.loads((two_runs["one"] / "metrics.json").read_text())
    two = json.loads((two_runs["two"] / "metrics.json").read_text())
    assert one["train"]["steps"] == two["train"]["steps"] == 40  # 320 rows / 16 per global batch x 2 epochs
    # Same global batches, same start, no dropout: the only difference left is float summation order (two
    # half-batch gradients averaged by gloo vs one 16-row mean), ~1e-7 relative per step; 2e-3 absolute on
    # losses near 0.1-0.7 leaves room for Adam to amplify that over 40 steps and still catches a wrong
    # split (a lost half batch or a per-rank batch plan moves these losses by > 0.05).
    for e1, e2 in zip(one["epochs"], two["epochs"], strict=True):
        assert e2["train_loss"] == pytest.approx(e1["train_loss"], abs=2e-3)
        assert e2["dev"]["loss"] == pytest.approx(e1["dev"]["loss"], abs=2e-3)
    assert two["test"]["loss"] == pytest.approx(one["test"]["loss"], abs=2e-3)
    assert two["test"]["accuracy"] > 0.7  # it learned the toy task


def test_interrupted_two_process_run_resumes_and_writes_once(two_runs: dict) -> None:
    out = two_runs["out"]
    assert out.count("resuming") == 1  # the main process says it once
    assert "at epoch 1, step 13/40" in out
    assert out.count("growthcurve run:") == 1  # the result table comes from rank 0 only
    run = two_runs["two"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert sorted(p.name for p in run.rglob("metrics.json")) == ["metrics.json"]
    assert len(list(run.rglob("model.safetensors"))) == 1
    assert not list(run.rglob("*.tmp"))  # no half-written file of a second writer


def test_predict_shards_across_processes_into_one_ordered_file(two_runs: dict) -> None:
    d, run = two_runs["dir"], two_runs["two"]
    texts = [t for t, _ in toy_rows(101, 7)]  # odd count: the ranks' shares differ in size
    inp = d / "texts.txt"
    inp.write_text("\n".join(texts) + "\n", encoding="utf-8")
    from growthcurve.cli import main

    single = d / "single.jsonl"
    main(["predict", str(run), str(inp), "--out", str(single), "--top-k", "2", "-q"])
    sharded = d / "sharded.jsonl"
    _launch(["-m", "growthcurve.cli", "predict", str(run), str(inp), "--out", str(sharded), "--top-k", "2", "-q"], d)
    got = [json.loads(x) for x in sharded.read_text(encoding="utf-8").splitlines()]
    want = [json.loads(x) for x in single.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in got] == texts == [r["text"] for r in want]
    # the same answers: labels exactly; numbers to float noise (each process pads its own batches, and the
    # out-of-scope score's distances in feature space move in the 5th decimal with the padding width)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys() and g["label"] == w["label"] and g.get("out_of_scope") == w.get("out_of_scope")
        assert [t["label"] for t in g["top_k"]] == [t["label"] for t in w["top_k"]]
        assert g["score"] == pytest.approx(w["score"], abs=1e-4)
        assert g.get("ood_score", 0) == pytest.approx(w.get("ood_score", 0), rel=1e-3, abs=1e-4)
    assert not [p for p in d.iterdir() if ".part-" in p.name]  # parts merged and removed
