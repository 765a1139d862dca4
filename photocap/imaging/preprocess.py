"""The one path from an image file to the network's input.

Training and inference share it, so the model always sees photos prepared the
way its training data was: Flickr8k's images were squashed (not cropped) to a
square, so photos are squashed to ``size x size`` here too.

Pillow and numpy only (it runs in decode worker processes and on the torch-free path);
``photocap.model.preprocess`` wraps ``to_array`` as a torch tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

if TYPE_CHECKING:
    import numpy as np

# Refuse absurd images before decoding them (a 40,000 x 40,000 photo is ~1.6 Gpx).
MAX_PIXELS = 400_000_000


def open_image(path: str | Path, size: int) -> Image.Image:
    """Decode ``path`` as an RGB image squashed to ``size x size``.

    JPEGs are decoded at reduced scale (Pillow's draft mode) when the photo is
    much larger than ``size``, so a 24-megapixel photo costs a fraction of a
    full decode. EXIF orientation is honoured; palettes, alpha, greyscale,
    CMYK and 16-bit modes are converted to RGB (alpha over white). Raises
    ``OSError`` or ``ValueError`` (e.g. ``PIL.UnidentifiedImageError``) for a
    file that is not a readable image.
    """
    with Image.open(path) as img:
        if img.width * img.height > MAX_PIXELS:
            raise ValueError(f"image too large ({img.width}x{img.height} pixels)")
        if img.format == "JPEG":
            # libjpeg's scaled IDCT (1/2, 1/4, 1/8) is itself an anti-aliased downscale, so
            # decoding at the smallest scale still >= size is both the fastest and clean.
            img.draft("RGB", (size, size))
        img.seek(0)  # first frame of GIF/multi-page TIFF
        img.load()  # raises on truncated or corrupt data
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
        return img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits before converting.
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_array(img: Image.Image) -> "np.ndarray":
    """RGB PIL image -> float32 array (3, H, W) scaled to [-1, 1], as the TF EfficientNet-Lite ports expect."""
    import numpy as np

    array = np.asarray(img.convert("RGB"), dtype=np.float32)  # (H, W, 3)
    return np.ascontiguousarray(array.transpose(2, 0, 1)) / np.float32(127.5) - np.float32(1.0)


def squashed(img: Image.Image, size: int) -> Image.Image:
    """``img`` at ``size x size`` (as ``open_image`` squashes; already that size: itself)."""
    return img if img.size == (size, size) else img.resize((size, size), Image.Resampling.BICUBIC)


def describe_image_error(exc: BaseException) -> str:
    """A short, user-facing reason why ``open_image`` could not read a file."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return "file not found (moved or deleted?)"
    if isinstance(exc, PermissionError):
        return "permission denied (check the file's read permission)"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image, or a format Pillow cannot read"
    if isinstance(exc, Image.DecompressionBombError):
        return "image too large to decode safely"
    text = str(exc) or exc.__class__.__name__
    if "truncated" in text.lower() or "broken data stream" in text.lower():
        return "truncated or corrupt image data"
    return text
