"""The on-disk encoder feature cache: real encoder, real files, keyed by content."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from photocap.model.encoder import ImageEncoder
from photocap.training.features import FeatureCache, encoder_fingerprint


class CountingEncoder(torch.nn.Module):
    """The real Lite0 encoder, counting the images it is asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ImageEncoder("efficientnet-lite0", pretrained=True)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, P, C)
        self.seen += x.shape[0]
        return self.inner(x)


@pytest.fixture(scope="module")
def encoder():
    return CountingEncoder().eval()


def _cache(root, encoder):
    return FeatureCache(root, encoder_fingerprint(encoder.inner, "efficientnet-lite0", 224))


def test_a_moved_and_copied_dataset_reuses_its_features_and_an_edited_photo_is_re_encoded(
        tmp_path, sample_photos, encoder):
    first = tmp_path / "first"
    first.mkdir()
    for name, src in sample_photos.items():
        shutil.copyfile(src, first / name)
    images = sorted(first.iterdir())
    cache = _cache(tmp_path / "cache", encoder)
    encoder.seen = 0
    assert cache.build(images, encoder, 224) == []
    assert encoder.seen == len(images)
    before = cache.load(images)
    assert before.shape[0] == len(images) and before.dtype == torch.float16

    # Copied elsewhere without keeping mtimes (plain cp, another machine): nothing is encoded again.
    moved = tmp_path / "elsewhere" / "photos with spaces"
    moved.mkdir(parents=True)
    for path in images:
        shutil.copyfile(path, moved / path.name)
        os.utime(moved / path.name, (1_000_000, 1_000_000))
    copies = sorted(moved.iterdir())
    encoder.seen = 0
    fresh = _cache(tmp_path / "cache", encoder)  # a new run: no in-memory state
    assert fresh.build(copies, encoder, 224) == []
    assert encoder.seen == 0
    assert torch.equal(fresh.load(copies), before)

    # An edited photo (same name, new bytes) is encoded again; the others are not.
    copies[0].write_bytes(images[1].read_bytes())
    shutil.copyfile(images[2], copies[1])
    with open(copies[1], "ab") as fh:
        fh.write(b"\0")  # trailing bytes after EOI: different content, same picture
    encoder.seen = 0
    fresh = _cache(tmp_path / "cache", encoder)
    assert fresh.build(copies, encoder, 224) == []
    assert encoder.seen == 1  # copies[0] now equals images[1], already cached
    assert torch.equal(fresh.load(copies[:1]), before[1:2])


def test_unreadable_missing_and_broken_files_are_reported_not_fatal(tmp_path, sample_photos, encoder):
    good = tmp_path / "good.jpg"
    shutil.copyfile(next(iter(sample_photos.values())), good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    missing = tmp_path / "missing.jpg"
    locked = tmp_path / "locked.jpg"
    shutil.copyfile(good, locked)
    locked.chmod(0)
    try:
        can_read_anyway = os.access(locked, os.R_OK)  # root reads everything
        failed = _cache(tmp_path / "cache", encoder).build([good, broken, missing, locked], encoder, 224)
    finally:
        locked.chmod(0o644)
    expected = {broken, missing} | (set() if can_read_anyway else {locked})
    assert set(failed) == expected
