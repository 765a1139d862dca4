"""photocap.library.scan on real folders: filters, hidden files, excludes, symlinks and loops, hashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photocap.library.scan import ScanStats, content_hash, is_image_path, scan


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    for rel in ["a.jpg", "b.JPEG", "c.png", "d.tif", "e.webp", "f.bmp", "g.gif", "sub/h.jpg",
                "sub/deeper/i.Tiff", "notes.txt", "a.jpg.xmp", "b.xmp", ".hidden.jpg",
                ".thumbs/j.jpg", "sub/.cache/k.jpg", "raw/l.cr2"]:
        touch(root / rel)
    return root


def names(entries) -> list[str]:
    return sorted(Path(e.path).name for e in entries)


def test_finds_images_only_skipping_hidden_and_sidecars(tree: Path) -> None:
    stats = ScanStats()
    found = list(scan([tree], stats=stats))
    assert names(found) == ["a.jpg", "b.JPEG", "c.png", "d.tif", "e.webp", "f.bmp", "g.gif", "h.jpg", "i.Tiff"]
    assert all(os.path.isabs(e.path) for e in found)
    assert stats.skipped_hidden == 3 and stats.files == 9


def test_fingerprint_is_the_stat(tree: Path) -> None:
    os.utime(tree / "a.jpg", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    (tree / "a.jpg").write_bytes(b"12345")
    os.utime(tree / "a.jpg", ns=(1, 1_600_000_000_123_456_789))
    entry = next(e for e in scan([tree]) if e.path.endswith("a.jpg"))
    assert entry.size == 5 and entry.mtime_ns == 1_600_000_000_123_456_789


def test_exclude_globs_by_name_relative_and_absolute(tree: Path) -> None:
    assert "h.jpg" not in names(scan([tree], exclude=["sub"]))
    assert names(scan([tree], exclude=["*.png", "sub/deeper"])) == [
        "a.jpg", "b.JPEG", "d.tif", "e.webp", "f.bmp", "g.gif", "h.jpg"]
    assert "a.jpg" not in names(scan([tree], exclude=[str(tree / "a.jpg")]))


def test_single_file_root_and_missing_root(tree: Path) -> None:
    assert names(scan([tree / "c.png"])) == ["c.png"]
    assert list(scan([tree / "notes.txt"])) == []
    with pytest.raises(FileNotFoundError):
        list(scan([tree / "nope"]))


def test_symlinks_not_followed_by_default(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "x.jpg")
    root = tmp_path / "lib"
    touch(root / "y.jpg")
    (root / "link_dir").symlink_to(outside, target_is_directory=True)
    (root / "link_file.jpg").symlink_to(outside / "x.jpg")
    assert names(scan([root])) == ["y.jpg"]
    assert names(scan([root], follow_symlinks=True)) == ["link_file.jpg", "x.jpg", "y.jpg"]


def test_symlink_loop_is_safe(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    touch(root / "a" / "p.jpg")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to(root / "a", target_is_directory=True)
    stats = ScanStats()
    found = list(scan([root], follow_symlinks=True, stats=stats))
    assert names(found) == ["p.jpg"]
    assert stats.loops >= 1


def test_unreadable_folder_is_reported_not_fatal(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    root = tmp_path / "lib"
    touch(root / "ok.jpg")
    touch(root / "locked" / "no.jpg")
    (root / "locked").chmod(0)
    try:
        stats = ScanStats()
        assert names(scan([root], stats=stats)) == ["ok.jpg"]
        assert stats.errors and stats.errors[0][0].endswith("locked")
    finally:
        (root / "locked").chmod(0o755)


def test_content_hash_small_and_sampled(tmp_path: Path) -> None:
    small = touch(tmp_path / "s.jpg", b"abc" * 1000)
    same = touch(tmp_path / "t.jpg", b"abc" * 1000)
    assert content_hash(small) == content_hash(same)
    assert content_hash(small).startswith("b2s1:")
    touch(small, b"abd" * 1000)
    assert content_hash(small) != content_hash(same)
    big = bytearray(os.urandom(8 << 20))
    a = touch(tmp_path / "big.jpg", bytes(big))
    h = content_hash(a)
    big[-1] ^= 1  # the tail is sampled
    assert content_hash(touch(a, bytes(big))) != h
    big[-1] ^= 1
    big[0] ^= 1  # the header is sampled
    assert content_hash(touch(a, bytes(big))) != h
    big[0] ^= 1
    assert content_hash(touch(a, bytes(big))) == h
    assert content_hash(touch(a, bytes(big) + b"x")) != h  # size is hashed


def test_is_image_path() -> None:
    assert is_image_path("/x/a.JPG")
    assert not is_image_path("/x/a.jpg.xmp")
    assert not is_image_path("/x/.a.jpg")
    assert not is_image_path("/x/a.txt")
