"""``train.embedding_lr_scale``: the word-embedding table trains at its own rate (dense AdamW group or the
lazy SparseAdam), the rest of the model at ``train.learning_rate``."""

from __future__ import annotations

from pathlib import Path

import pytest

from growthcurve.config import load_finetune_config
from growthcurve.training.dispatch import run_finetune
from tests.conftest import toy_overrides


def _moves(base: Path, run_dir: Path) -> tuple[float, float]:
    """Mean absolute change of the word embeddings and of the first query projection after training."""
    from transformers import AutoModel

    before = AutoModel.from_pretrained(str(base)).state_dict()
    after = AutoModel.from_pretrained(str(run_dir / "model")).state_dict()
    emb, q = "embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"
    return float((after[emb] - before[emb]).abs().mean()), float((after[q] - before[q]).abs().mean())


@pytest.mark.parametrize("sparse", ["off", "on"])
def test_embedding_table_trains_at_its_own_rate(
    tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path, sparse: str
) -> None:
    ratios = {}
    for scale in (1.0, 100.0):
        sets = toy_overrides(
            tiny_bert,
            toy_data,
            tmp_path / f"run-{scale}",
            **{
                "train.learning_rate": 1e-5,
                "train.epochs": 1,
                "train.embedding_lr_scale": scale,
                "train.sparse_embeddings": sparse,
                "train.weight_decay": 0.0,
            },
        )
        res = run_finetune(load_finetune_config(None, sets), progress=False)
        emb, q = _moves(tiny_bert, res.run_dir)
        assert q > 0
        ratios[scale] = emb / q
    # Adam steps are about lr in size, so a 100x rate moves the table ~100x more relative to the encoder
    assert ratios[100.0] > 20 * ratios[1.0]


def test_scale_must_be_positive(tmp_path: Path) -> None:
    from growthcurve.errors import ConfigError

    with pytest.raises(ConfigError, match="embedding_lr_scale"):
        load_finetune_config(None, ["train.embedding_lr_scale=0"])


def test_a_frozen_table_refuses_the_scale(tiny_bert: Path, toy_data: dict[str, Path], tmp_path: Path) -> None:
    # LoRA freezes the word embeddings and this English toy adds no rows: the scale would be silently ignored
    from growthcurve.errors import ConfigError

    sets = toy_overrides(
        tiny_bert, toy_data, tmp_path / "run", **{"method": "lora", "train.embedding_lr_scale": 5, "train.epochs": 1}
    )
    with pytest.raises(ConfigError, match="embedding_lr_scale=5 has nothing to act on"):
        run_finetune(load_finetune_config(None, sets), progress=False)
