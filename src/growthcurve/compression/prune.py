"""Pruning and dynamic int8 on a loaded transformers classifier: pure functions on the model, no I/O.

- `magnitude_prune`: global unstructured L1 pruning of the encoder's Linear weights (`torch.nn.utils.prune`).
- `prune_ffn_neurons`: structured, drops the lowest-norm feed-forward neurons by slicing the two Linear
  layers, so the model really shrinks and reloads with a smaller ``intermediate_size``.
- `quantize_dynamic_int8` (from `growthcurve.models.quantize`, which `load_run` applies too):
  `torch.ao.quantization.quantize_dynamic` on every Linear.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from growthcurve.errors import ConfigError
from growthcurve.models.hf import HFModel
from growthcurve.models.quantize import quantize_dynamic_int8  # noqa: F401  (part of this module's API)

# Why attention heads are not pruned: checked against transformers 5.24.
HEADS_UNAVAILABLE = (
    "--structured heads is not available: transformers 5.x removed `prune_heads`, and a BERT config cannot "
    "describe fewer heads of the same size (head size = hidden_size / num_attention_heads), so a head-pruned "
    "model would not reload; use --structured neurons (feed-forward neurons) or unstructured pruning"
)


def encoder_of(model: nn.Module) -> nn.Module:
    """The transformer encoder (``model.<base_model_prefix>.encoder``) whose layers are pruned."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None) or model
    enc = getattr(base, "encoder", None)
    if not isinstance(enc, nn.Module):
        raise ConfigError(f"{type(model).__name__} has no '.encoder' module to prune (BERT-family encoders have one)")
    return enc


def encoder_linears(model: nn.Module) -> list[nn.Linear]:
    """Every Linear layer inside the encoder (attention projections and feed-forward; not the head)."""
    return [m for m in encoder_of(model).modules() if isinstance(m, nn.Linear)]


def check_amount(amount: float) -> float:
    """The pruning fraction, refused unless 0 < amount < 1."""
    if not 0.0 < float(amount) < 1.0:
        raise ConfigError(f"--prune must be a fraction between 0 and 1 (exclusive), got {amount}")
    return float(amount)


def magnitude_prune(model: nn.Module, amount: float) -> dict[str, torch.Tensor]:
    """Zero the ``amount`` smallest-magnitude encoder Linear weights globally; made permanent with
    `prune.remove`. Returns the keep-masks by parameter name, so a recovery fine-tune can re-apply them."""
    amount = check_amount(amount)
    linears = encoder_linears(model)
    # an absolute count rounded up: torch rounds a fraction to the nearest count, which can fall short of it
    count = math.ceil(amount * sum(m.weight.numel() for m in linears))
    prune.global_unstructured([(m, "weight") for m in linears], pruning_method=prune.L1Unstructured, amount=count)
    for m in linears:
        prune.remove(m, "weight")
    ids = {id(m) for m in linears}
    return {
        f"{name}.weight": (mod.weight != 0).detach().clone() for name, mod in model.named_modules() if id(mod) in ids
    }


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the weights whose mask entry is False (after training moved them away from zero)."""
    params = dict(model.named_parameters())
    missing = [k for k in masks if k not in params]
    if missing:
        raise ConfigError(f"pruning masks do not fit this model (no parameter '{missing[0]}')")
    with torch.no_grad():
        for name, keep in masks.items():
            params[name].mul_(keep.to(params[name].dtype))


def sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros among the encoder's Linear weights."""
    linears = encoder_linears(model)
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    return zeros / sum(m.weight.numel() for m in linears)


def _ffn_pairs(model: nn.Module) -> list[tuple[HFModel, HFModel]]:
    """(intermediate, output) modules of each layer, whose ``.dense`` Linears hold the feed-forward."""
    layers = getattr(encoder_of(model), "layer", None)
    pairs = []
    for layer in layers or []:
        inter, out = getattr(layer, "intermediate", None), getattr(layer, "output", None)
        if not (
            isinstance(getattr(inter, "dense", None), nn.Linear) and isinstance(getattr(out, "dense", None), nn.Linear)
        ):
            break
        pairs.append((inter, out))
    if not pairs or len(pairs) != len(layers or []):
        raise ConfigError(
            f"{type(model).__name__}: neuron pruning needs BERT-style layers (layer.intermediate.dense / "
            "layer.output.dense); use unstructured pruning for this model"
        )
    return pairs


def prune_ffn_neurons(model: HFModel, amount: float) -> int:
    """Remove the ``amount`` lowest-norm feed-forward neurons of every layer; returns the new width.

    A neuron's norm is the L2 norm of all its weights (its row in ``intermediate.dense`` and its column in
    ``output.dense``). Every layer keeps the same number of neurons because one ``config.intermediate_size``
    has to describe all of them for `from_pretrained` to reload the model.
    """
    amount = check_amount(amount)
    pairs = _ffn_pairs(model)
    width = pairs[0][0].dense.out_features
    keep_n = max(1, round(width * (1.0 - amount)))
    with torch.no_grad():
        for inter, out in pairs:
            w_in, w_out = inter.dense.weight, out.dense.weight
            score = w_in.pow(2).sum(dim=1) + w_out.pow(2).sum(dim=0)
            keep = torch.sort(torch.topk(score, keep_n).indices).values
            new_in = nn.Linear(w_in.shape[1], keep_n, bias=inter.dense.bias is not None)
            new_in.weight.copy_(w_in[keep])
            if inter.dense.bias is not None:
                new_in.bias.copy_(inter.dense.bias[keep])
            new_out = nn.Linear(keep_n, w_out.shape[0], bias=out.dense.bias is not None)
            new_out.weight.copy_(w_out[:, keep])
            if out.dense.bias is not None:
                new_out.bias.copy_(out.dense.bias)
            inter.dense, out.dense = new_in, new_out
    model.config.intermediate_size = keep_n
    return keep_n


def state_dict_bytes(model: nn.Module) -> int:
    """Size of the model's state dict as `torch.save` writes it (works for quantised models too)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def nonzero_parameters(model: nn.Module) -> int:
    """Parameters that are not exactly zero (what unstructured pruning reduces)."""
    return sum(int((p != 0).sum()) for p in model.parameters())


def parameter_count(model: Any) -> int:
    """All parameters (what structured pruning reduces)."""
    return sum(p.numel() for p in model.parameters())
