"""Photos as torch tensors: ``photocap.imaging.preprocess`` (the one path from a file to the network's
input, torch-free) wrapped for the torch network, training and the tests."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from photocap.imaging.preprocess import open_image, to_array


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [-1, 1]."""
    return torch.from_numpy(to_array(img))


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """``open_image`` then ``to_tensor``: (3, size, size) in [-1, 1]."""
    return to_tensor(open_image(path, size))
