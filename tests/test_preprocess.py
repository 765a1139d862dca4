"""The one image -> tensor path: orientation, modes, draft decoding, bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from photocap.model.preprocess import open_image, to_tensor


def _exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_exif_orientation_is_honoured(tmp_path):
    # A wide image whose left half is red; EXIF orientation 6 says "rotate 90 degrees clockwise to view".
    img = Image.new("RGB", (400, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 200, 200))
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=_exif_with_orientation(6), quality=95)
    out = np.asarray(open_image(path, 64)).astype(int)
    # After rotating clockwise, the red half is at the top.
    assert out[8, 32, 0] > 200 and out[8, 32, 2] < 60
    assert out[56, 32, 2] > 200 and out[56, 32, 0] < 60


def test_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (50, 30), (255, 0, 0, 0)).save(path)
    out = open_image(path, 32)
    assert out.mode == "RGB" and out.size == (32, 32)
    assert out.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize("mode,colour", [("L", 128), ("I;16", 40000), ("CMYK", (0, 0, 0, 0)), ("P", 3)])
def test_any_mode_becomes_rgb(tmp_path, mode, colour):
    path = tmp_path / f"img-{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.new(mode, (40, 20), colour).save(path)
    out = open_image(path, 16)
    assert out.mode == "RGB" and out.size == (16, 16)


def test_squashes_instead_of_cropping(tmp_path):
    # A 300x100 image with a green right third: after squashing to a square, the right third is still green.
    img = Image.new("RGB", (300, 100), (255, 255, 255))
    img.paste((0, 255, 0), (200, 0, 300, 100))
    path = tmp_path / "wide.png"
    img.save(path)
    out = np.asarray(open_image(path, 60))
    assert out[30, 55, 1] > 200 and out[30, 55, 0] < 60
    assert out[30, 5].min() > 200


def test_large_jpeg_is_draft_decoded(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(path, quality=80)
    sizes = []
    original_load = Image.Image.load

    def spy(self):
        sizes.append(self.size)
        return original_load(self)

    monkeypatch.setattr(Image.Image, "load", spy)
    out = open_image(path, 224)
    assert out.size == (224, 224)
    assert max(w for w, _ in sizes) <= 1000  # decoded at 1/4 or 1/8 scale, not 4000 px wide


def test_to_tensor_range_and_shape():
    t = to_tensor(Image.new("RGB", (8, 4), (255, 0, 128)))
    assert t.shape == (3, 4, 8)
    assert t[0].max().item() == pytest.approx(1.0) and t[1].min().item() == pytest.approx(-1.0)


def test_unreadable_inputs_raise(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises((OSError, ValueError)):
        open_image(text, 32)
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (1, 2, 3)).save(buf, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(OSError):
        open_image(truncated, 32)
