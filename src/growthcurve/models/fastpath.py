"""Skip work a sequence classifier never reads: its last encoder layer, computed for the first token only.

A BERT-family sequence classifier reads one position of the last hidden states (the pooler or the head
takes token 0). The last layer's keys and values need every token, but its query, attention output,
LayerNorms and feed-forward are needed for token 0 alone; everything else is thrown away. Computing only
that row gives the same logits and gradients (tested to float tolerance) at about one sixth fewer FLOPs for
a 6-layer encoder. Neither transformers nor PyTorch offers this (HF computes every position), so the layer's
forward is replaced on the instance; its parameters and names are untouched, so checkpoints, PEFT wrappers
and ``save_pretrained`` see the same model.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch

# Encoder layers whose submodules follow BertLayer's layout (attention.self.{query,key,value},
# attention.output, feed_forward_chunk) and whose sequence-classification heads read position 0 only.
_LAYERS = {"BertLayer", "RobertaLayer", "XLMRobertaLayer", "CamembertLayer", "ElectraLayer"}
_HEADS = {
    "BertForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
    "CamembertForSequenceClassification",
    "ElectraForSequenceClassification",
}
_MARK = "_growthcurve_first_token_only"


def _classifier(model: Any) -> Any:
    """The HF sequence classifier inside ``model`` (itself, or under PEFT/method wrappers), or None."""
    if not isinstance(model, torch.nn.Module):
        return None
    return next((m for m in model.modules() if type(m).__name__ in _HEADS), None)


def first_token_last_layer(model: Any) -> bool:
    """Make the last encoder layer of a supported sequence classifier compute token 0 only; True if applied.

    Unsupported models (token classification, other architectures, decoders, cross-attention) are left as
    they are: the caller needs no check of its own.
    """
    clf = _classifier(model)
    if clf is None:
        return False
    config = clf.config
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return False
    if getattr(config, "_attn_implementation", "eager") not in ("eager", "sdpa"):
        return False
    layers = [m for m in clf.modules() if type(m).__name__ in _LAYERS]
    if not layers:
        return False
    layer = layers[-1]
    if getattr(layer, _MARK, False):
        return True
    sa = getattr(getattr(layer, "attention", None), "self", None)
    if sa is None or not all(hasattr(sa, k) for k in ("query", "key", "value", "attention_head_size", "scaling")):
        return False
    eager = getattr(sys.modules[type(layer).__module__], "eager_attention_forward", None)
    if eager is None:
        return False
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    original = layer.forward

    def forward(self: Any, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: Any,
                **kwargs: Any) -> torch.Tensor:  # fmt: skip
        # encoder_hidden_states comes positionally (for gradient checkpointing); a cache means a decoder
        if any(a is not None for a in args) or any(
            kwargs.get(k) is not None for k in ("cache", "past_key_values", "encoder_hidden_states")
        ):
            return original(hidden_states, attention_mask, *args, **kwargs)
        attn = self.attention.self
        b, n, _ = hidden_states.shape
        d = attn.attention_head_size
        first = hidden_states[:, :1].contiguous()  # a strided view gives alignment-dependent GEMM results
        q = attn.query(first).view(b, 1, -1, d).transpose(1, 2)
        k = attn.key(hidden_states).view(b, n, -1, d).transpose(1, 2)
        v = attn.value(hidden_states).view(b, n, -1, d).transpose(1, 2)
        mask = attention_mask
        if mask is not None and mask.dim() == 4 and mask.shape[-2] != 1:
            mask = mask[:, :, :1, :]  # the query row of token 0: same keys masked
        fn = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager)
        out, _ = fn(attn, q, k, v, mask, dropout=attn.dropout.p if attn.training else 0.0, scaling=attn.scaling)
        out = out.reshape(b, 1, -1).contiguous()
        return self.feed_forward_chunk(self.attention.output(out, first))

    layer.forward = types.MethodType(forward, layer)
    setattr(layer, _MARK, True)
    return True
