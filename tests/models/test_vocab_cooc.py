"""The distributional initialisation of new embedding rows (``model.new_rows_init=cooc``): characters used in the
same contexts get close vectors, and the new rows keep the spread of the pretrained ones."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from growthcurve.models.vocab import cooc_vectors, extend_vocab
from tests.models.test_vocab import tiny_bert_en, zh_rows  # noqa: F401  (fixture)


def _toy_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Two synonym pairs that share every context (暴/飓 before 雨, 饺/馄 before 子) and filler characters."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a = rng.choice("暴飓") + "雨" + rng.choice("来了呢")
        b = rng.choice("今明") + rng.choice("饺馄") + "子" + rng.choice("香好")
        out.append(a if rng.random() < 0.5 else b)
    return out


def _cos(z: np.ndarray, chars: list[str], a: str, b: str) -> float:
    va, vb = z[chars.index(a)], z[chars.index(b)]
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def test_characters_in_the_same_contexts_are_closer_than_unrelated_ones() -> None:
    texts = _toy_corpus()
    chars = sorted({c for t in texts for c in t})
    z = cooc_vectors(texts, chars, dim=8)
    assert z.shape == (len(chars), 8)
    assert _cos(z, chars, "暴", "飓") > _cos(z, chars, "暴", "馄") + 0.5
    assert _cos(z, chars, "饺", "馄") > _cos(z, chars, "饺", "飓") + 0.5


def test_unseen_character_gets_a_zero_vector_and_the_result_is_seeded() -> None:
    texts = _toy_corpus()
    chars = sorted({c for t in texts for c in t}) + ["龘"]
    z = cooc_vectors(texts, chars, dim=4, seed=1)
    assert not z[-1].any()
    assert np.array_equal(z, cooc_vectors(texts, chars, dim=4, seed=1))


def test_cooc_rows_keep_the_pretrained_spread_and_old_rows(tiny_bert_en: Path) -> None:  # noqa: F811
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_en))
    texts = [t for t, _ in zh_rows(200, 0)]
    ext = extend_vocab(True, tok, texts, seed=2, init="cooc")
    assert ext.cooc is not None and ext.cooc.shape[0] == len(ext.added)
    model = BertModel.from_pretrained(str(tiny_bert_en))
    old = model.get_input_embeddings().weight.detach().clone()
    ext.resize(model)
    new = model.get_input_embeddings().weight.detach()
    assert torch.equal(new[: old.shape[0]], old)
    added = new[old.shape[0] :]
    assert (added.mean(0) - old.mean(0)).abs().mean() < 0.5 * old.std(0).mean()
    assert added.std(0).mean() == pytest.approx(old.std(0).mean(), rel=0.5)
    # 饺 and 馄 share their contexts in the keyword list (饺子 / 馄饨 both food words) more than 饺 and 暴
    i = {c: k for k, c in enumerate(ext.added)}
    cos = torch.nn.functional.cosine_similarity
    assert cos(added[i["饺"]], added[i["馄"]], dim=0) > cos(added[i["饺"]], added[i["暴"]], dim=0)


def test_unknown_init_is_refused(tiny_bert_en: Path) -> None:  # noqa: F811
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match="cooc"):
        extend_vocab(True, AutoTokenizer.from_pretrained(str(tiny_bert_en)), ["饺子"], init="nearest")
