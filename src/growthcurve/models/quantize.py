"""Dynamic int8 quantisation of a loaded model: the one transform both `compress` and `load_run` apply."""

from __future__ import annotations

import torch
from torch import nn


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every Linear dynamically quantised to int8 (weights int8, activations per batch)."""
    import copy
    import warnings

    with warnings.catch_warnings():
        # torch 2.13 flags its quantized-tensor constructors as deprecated (pytorch#184982) on every call;
        # quantize_dynamic is still the documented eager-mode dynamic int8 path, so keep the CLI quiet
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)
