"""Image classifiers: a small CNN trained from scratch (``model.type=cnn``) and torchvision/timm models by
name (``model.type=vision``). No weights are ever downloaded: pretrained weights come from a local file.

``model.name_or_path`` for ``vision``: ``resnet18`` (random init), ``resnet18@/path/weights.pth`` or a
torchvision weights file named ``<arch>-<hash>.pth`` (pretrained), ``timm:convnext_atto`` (needs timm).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from growthcurve.errors import ModelError
from growthcurve.models.savable import ClassifierOutput, NullTokenizer, Savable, load_savable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(Savable):
    """Three VGG-style blocks (two 3x3 conv + BatchNorm + ReLU, then 2x2 max-pool), global average pooling,
    one hidden layer of ``hidden_size`` and a linear classifier; block widths are hidden/8, /4, /2.
    """

    def __init__(self, channels: int, num_labels: int, hidden_size: int = 256, dropout: float = 0.25) -> None:
        super().__init__()
        self.architecture = {
            "channels": channels,
            "num_labels": num_labels,
            "hidden_size": hidden_size,
            "dropout": dropout,
        }
        widths = [max(8, hidden_size // 8), max(8, hidden_size // 4), max(8, hidden_size // 2)]
        layers: list[nn.Module] = []
        c_in = channels
        for i, w in enumerate(widths):
            layers += [
                nn.Conv2d(c_in, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(c_in, hidden_size),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_labels),
        )

    def forward(self, pixel_values: torch.Tensor) -> ClassifierOutput:
        """Logits ``[batch, num_labels]`` for normalised images ``[batch, channels, H, W]``."""
        return ClassifierOutput(self.head(self.features(pixel_values)))


def parse_vision_name(name_or_path: str) -> tuple[str, str, str | None]:
    """(library, architecture, weights file or None) from ``model.name_or_path``."""
    library = "torchvision"
    spec = name_or_path
    if spec.startswith("timm:"):
        library, spec = "timm", spec[len("timm:") :]
    weights: str | None = None
    if "@" in spec:
        spec, weights = spec.split("@", 1)
    elif Path(spec).expanduser().is_file():  # a torchvision weights file such as resnet18-f37072fd.pth
        weights = spec
        spec = Path(spec).name.split("-")[0].split(".")[0]
    if weights is not None and not Path(weights).expanduser().is_file():
        raise ModelError(f"weights file '{weights}' does not exist (no weights are downloaded; give a local file)")
    if not spec:
        raise ModelError(f"model.name_or_path '{name_or_path}' names no architecture (e.g. resnet18)")
    return library, spec, weights


def _new_net(library: str, arch: str, num_classes: int | None) -> nn.Module:
    kw = {} if num_classes is None else {"num_classes": num_classes}
    if library == "timm":
        try:
            import timm
        except ImportError:
            raise ModelError(
                "timm is not installed; pip install timm, or use a torchvision name such as resnet18"
            ) from None
        if arch not in timm.list_models():
            close = difflib.get_close_matches(arch, timm.list_models(), n=1)
            raise ModelError(f"timm has no model '{arch}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return timm.create_model(arch, pretrained=False, **kw)
    try:
        import torchvision
    except ImportError:
        raise ModelError("model.type=vision needs torchvision (pip install 'growthcurve[vision]')") from None
    names = torchvision.models.list_models()
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else "; e.g. resnet18, mobilenet_v3_small, efficientnet_b0"
        raise ModelError(f"torchvision has no model '{arch}'{hint}")
    return torchvision.models.get_model(arch, weights=None, **kw)


def _read_weights(path: str) -> dict[str, torch.Tensor]:
    p = Path(path).expanduser()
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except Exception as exc:  # corrupt or foreign files raise many types
        raise ModelError(f"cannot read weights file '{p}' ({type(exc).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelError(f"weights file '{p}' does not hold a state dict")
    return state


def _replace_head(net: nn.Module, num_labels: int) -> None:
    """Swap the last linear layer (the ImageNet head) for a fresh one with ``num_labels`` outputs."""
    last = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ModelError(f"{type(net).__name__} has no linear classifier head to replace")
    parent_name, _, child = last.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    old = getattr(parent, child)
    setattr(parent, child, nn.Linear(old.in_features, num_labels))


class VisionClassifier(Savable):
    """A torchvision (or timm) architecture with a ``num_labels`` head, called like the other models."""

    def __init__(self, arch: str, num_labels: int, library: str = "torchvision", weights: str | None = None) -> None:
        super().__init__()
        self.architecture = {"arch": arch, "num_labels": num_labels, "library": library}
        if weights is None:
            self.net = _new_net(library, arch, num_labels)
        else:
            self.net = _new_net(library, arch, None)
            try:
                self.net.load_state_dict(_read_weights(weights))
            except RuntimeError as exc:
                first = str(exc).splitlines()[0][:160]
                raise ModelError(f"weights file '{weights}' does not fit {arch}: {first}") from None
            _replace_head(self.net, num_labels)

    def forward(self, pixel_values: torch.Tensor) -> ClassifierOutput:
        """Logits ``[batch, num_labels]`` (the main output of models with auxiliary heads)."""
        out = self.net(pixel_values)
        if isinstance(out, tuple):
            out = out[0]
        return ClassifierOutput(out)


def build_image_model(
    model_type: str,
    name_or_path: str,
    num_labels: int,
    channels: int,
    image_size: int,
    hidden_size: int,
    dropout: float | None,
) -> tuple[Savable, bool]:
    """The configured image classifier and whether it starts from pretrained weights (ImageNet statistics)."""
    if model_type == "cnn":
        model: Savable = SmallCNN(channels, num_labels, hidden_size, 0.25 if dropout is None else dropout)
        pretrained = False
    elif model_type == "vision":
        library, arch, weights = parse_vision_name(name_or_path)
        model = VisionClassifier(arch, num_labels, library, weights)
        pretrained = weights is not None
    else:
        raise ModelError(f"model.type={model_type} is not an image model; use cnn or vision")
    model.eval()
    try:
        with torch.no_grad():
            model(pixel_values=torch.zeros(2, channels, image_size, image_size))
    except Exception as exc:  # shape errors surface as several exception types
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ModelError(
            f"{name_or_path if model_type == 'vision' else 'cnn'} cannot classify {image_size}x{image_size} "
            f"images with {channels} channel(s) ({first}); change model.image_size (e.g. 224 for ViT)"
        ) from None
    return model, pretrained


def load_image_model(model_dir: Path, meta: dict[str, Any]) -> tuple[nn.Module, NullTokenizer]:
    """The image classifier of a finished run (its preprocessing lives in ``meta``)."""
    return load_savable(model_dir, {"SmallCNN": SmallCNN, "VisionClassifier": VisionClassifier}), NullTokenizer()
