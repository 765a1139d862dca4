"""ResNet-50 and Inception-v3 image encoders: torchvision's architectures, weights from a file.

photocap never downloads anything. These encoders start from random weights
unless the user supplies an ImageNet ``state_dict`` file (``--encoder-weights``),
e.g. torchvision's official one, downloaded on a machine with internet access:

- resnet50:     https://download.pytorch.org/models/resnet50-11ad3fa6.pth (IMAGENET1K_V2)
                or https://download.pytorch.org/models/resnet50-0676ba61.pth (IMAGENET1K_V1)
- inception-v3: https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth

The file is read with ``torch.load(weights_only=True)`` (tensors only, never
code) and loaded with ``strict=True``. Keys that are deliberately ignored:

- ``fc.*`` (the ImageNet classifier) and ``AuxLogits.*`` (Inception's
  auxiliary classifier): photocap does not build these heads;
- a missing ``*.num_batches_tracked`` is filled with 0 (BatchNorm's step
  counter; older torchvision files lack it and it never affects the output).

Every other key must be present with the right shape; otherwise
``EncoderWeightsError`` names the first missing, unexpected or mismatched key.
A trained photocap model stores its encoder weights, so it loads without this file.

Input normalisation happens *inside* the encoder, so ``preprocess.py`` (which
scales pixels to [-1, 1] for EfficientNet-Lite) stays the one shared path:

- resnet50: [-1, 1] -> [0, 1] -> ImageNet mean/std, as torchvision's weights expect;
- inception-v3: [-1, 1] unchanged. torchvision's official Inception weights are
  a port of Google's, used with ``transform_input=True``: callers pass
  ImageNet-normalised input and the network maps it back to (x - 0.5) / 0.5,
  i.e. [-1, 1]. Passing [-1, 1] directly is the same computation without the
  round trip (a test checks the equivalence). Inception runs at 299 px.

Grids: resnet50 gives (B, 7*7, 2048) at 224 px; inception-v3 (B, 8*8, 2048) at 299 px.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from photocap.model.statedict import cast_like, mismatch


class EncoderWeightsError(ValueError):
    """An encoder weights file is unreadable or does not match the architecture."""


class MissingEncoderWeights(EncoderWeightsError, FileNotFoundError):
    """No encoder weights file was given, or it does not exist."""


@dataclass(frozen=True)
class TorchvisionSpec:
    name: str
    channels: int  # channels of the feature grid
    native_size: int  # input size of the ImageNet weights (and the only one allowed for inception)
    stages: tuple[str, ...]  # torchvision child modules, in forward order, up to the feature grid
    blocks: tuple[str, ...]  # stages that count as "blocks" for fine-tuning, bottom to top
    ignored_prefixes: tuple[str, ...]  # heads photocap does not build
    normalisation: str  # "imagenet" | "inception"
    urls: tuple[str, ...]


_INCEPTION_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")

SPECS = {
    "resnet50": TorchvisionSpec(
        "resnet50", 2048, 224,
        stages=("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
        blocks=("layer1", "layer2", "layer3", "layer4"),
        ignored_prefixes=("fc.",),
        normalisation="imagenet",
        urls=("https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
              "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
    ),
    "inception-v3": TorchvisionSpec(
        "inception-v3", 2048, 299,
        stages=("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                "Conv2d_4a_3x3", "maxpool2", *_INCEPTION_MIXED),
        blocks=_INCEPTION_MIXED,
        ignored_prefixes=("fc.", "AuxLogits."),
        normalisation="inception",
        urls=("https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",),
    ),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_net(name: str) -> nn.Module:
    from torchvision.models import inception_v3, resnet50

    if name == "resnet50":
        return resnet50(weights=None)
    return inception_v3(weights=None, aux_logits=False, init_weights=False)


class TorchvisionBackbone(nn.Module):
    """The convolutional part of a torchvision network, with torchvision's parameter names.

    Only the stages up to the last feature map are kept (no pooling, dropout or
    classifier), registered under their torchvision names, so ``state_dict()``
    keys equal those of torchvision's files minus the dropped heads.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in SPECS:
            raise ValueError(f"unknown torchvision encoder {name!r}; choose one of {', '.join(SPECS)}")
        self.spec = SPECS[name]
        net = _torchvision_net(name)
        for stage in self.spec.stages:
            self.add_module(stage, getattr(net, stage))
        # Constants, not weights: non-persistent, so they stay out of state_dicts and model files.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """photocap's shared [-1, 1] input -> what this network's ImageNet weights expect."""
        if self.spec.normalisation == "imagenet":
            return ((x + 1.0) * 0.5 - self.mean) / self.std
        return x  # inception: torchvision's transform_input maps ImageNet-normalised input back to [-1, 1]

    def units(self) -> list:
        """The forward pass as an ordered list of callables; the last ones are block_modules()."""
        units: list = [self.normalise]
        for stage in self.spec.stages:
            module = getattr(self, stage)
            in_blocks = stage in self.spec.blocks and isinstance(module, nn.Sequential)
            units.extend(module.children() if in_blocks else [module])
        return units

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 2048, h, w)."""
        for unit in self.units():
            x = unit(x)
        return x

    def head_modules(self) -> list[nn.Module]:
        """Layers after the blocks: none (the feature grid is the last block's output)."""
        return []

    def block_modules(self) -> list[nn.Module]:
        """Fine-tuning units, bottom to top (ResNet bottlenecks; Inception Mixed blocks)."""
        units: list[nn.Module] = []
        for stage in self.spec.blocks:
            module = getattr(self, stage)
            units.extend(module.children() if isinstance(module, nn.Sequential) else [module])
        return units


def where_to_get(name: str) -> str:
    if name not in SPECS:
        return f"pass a state_dict file for {name} with --encoder-weights PATH"
    urls = " or ".join(SPECS[name].urls)
    return (f"photocap never downloads weights: on a machine with internet access, download "
            f"torchvision's official ImageNet state_dict for {name} ({urls}) and pass it with "
            f"--encoder-weights PATH")


def read_state_dict(path: str | Path | None, name: str) -> dict[str, torch.Tensor]:
    """Tensors of a state_dict file, read without unpickling code."""
    if not path:
        raise MissingEncoderWeights(f"the {name} encoder needs ImageNet weights from a file. {where_to_get(name)}.")
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingEncoderWeights(f"encoder weights file not found: {path}. {where_to_get(name)}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, refused globals: all mean "not a plain state_dict"
        raise EncoderWeightsError(
            f"{path} is not a PyTorch state_dict of tensors (read with weights_only=True): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise EncoderWeightsError(f"{path} is not a state_dict (a mapping of names to tensors)")
    return dict(state)


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, name: str,
                 ignored_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` strictly, first naming what does not match in plain words."""
    state = {k: v for k, v in state.items() if not k.startswith(ignored_prefixes)}
    expected = module.state_dict()
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    problem = mismatch(expected, state, name)
    if problem:
        raise EncoderWeightsError(f"{source} does not hold {name} weights: {problem}")
    state = cast_like(expected, state)
    module.load_state_dict(state, strict=True)


def build_torchvision_backbone(name: str, pretrained: bool,
                               weights_path: str | Path | None = None) -> TorchvisionBackbone:
    """A ResNet-50 / Inception-v3 backbone; ``pretrained`` loads ``weights_path`` strictly."""
    net = TorchvisionBackbone(name)
    if pretrained:
        state = read_state_dict(weights_path, name)
        load_checked(net, state, str(weights_path), name, net.spec.ignored_prefixes)
    return net
