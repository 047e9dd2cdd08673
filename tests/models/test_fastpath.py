"""The first-token last layer gives the classifier the same logits and gradients as the full layer."""

from __future__ import annotations

import copy

import pytest
import torch

from growthcurve.models.fastpath import first_token_last_layer


def _tiny(kind: str) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

    common = dict(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(**common))
    return RobertaForSequenceClassification(RobertaConfig(**common, pad_token_id=1))


def _batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(3, 50, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padded rows: the mask must still hide the same keys
    mask[3, 2:] = 0
    ids[mask == 0] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_same_logits_and_gradients(kind: str, attn: str) -> None:
    full = _tiny(kind)
    full.config._attn_implementation = attn
    fast = copy.deepcopy(full)
    assert first_token_last_layer(fast) is True
    assert first_token_last_layer(fast) is True  # idempotent
    batch, y = _batch(), torch.tensor([0, 2, 1, 2])
    a, b = full(**batch).logits, fast(**batch).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.nn.functional.cross_entropy(a, y).backward()
    torch.nn.functional.cross_entropy(b, y).backward()
    for (name, p), q in zip(full.named_parameters(), fast.parameters(), strict=True):
        if p.grad is None:
            assert q.grad is None or not q.grad.any(), name
            continue
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)
    # parameter names are untouched: a checkpoint of one loads into the other
    assert list(full.state_dict()) == list(fast.state_dict())


def test_fewer_flops_in_the_last_layer() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    full = _tiny("bert").eval()
    fast = copy.deepcopy(full)
    first_token_last_layer(fast)
    counts = []
    for m in (full, fast):
        with FlopCounterMode(display=False) as fc:
            m(**_batch())
        counts.append(fc.get_total_flops())
    assert counts[1] < counts[0] * 0.85


def test_token_classifier_and_peft_are_handled() -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertForTokenClassification

    tok = BertForTokenClassification(
        BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    )
    assert first_token_last_layer(tok) is False  # every position is read: nothing to skip
    full = _tiny("bert")
    lora = get_peft_model(copy.deepcopy(full), LoraConfig(r=4, target_modules=["query", "value"], task_type="SEQ_CLS"))
    ref = copy.deepcopy(lora)
    assert first_token_last_layer(lora) is True
    torch.testing.assert_close(ref(**_batch()).logits, lora(**_batch()).logits, atol=1e-5, rtol=1e-5)
