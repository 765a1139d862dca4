"""XMP sidecar files: which name to use, and finding one that already exists.

``photo.jpg.xmp`` ("ext", the default: unambiguous when a RAW and a JPEG share a
base name) or ``photo.xmp`` ("base", what Lightroom uses for raw files).  An
existing sidecar of either name (either case of ``.xmp``) is merged into rather
than a second one created.
"""

from __future__ import annotations

import os
from pathlib import Path

from photocap.errors import MetadataError
from photocap.metadata import atomic

NAMES = ("ext", "base")


def candidates(photo: Path, name: str = "ext") -> list[Path]:
    """Possible sidecar paths, the preferred naming first."""
    if name not in NAMES:
        raise MetadataError(f"unknown sidecar naming {name!r}; use 'ext' or 'base'")
    ext = [photo.with_name(photo.name + ".xmp"), photo.with_name(photo.name + ".XMP")]
    base = [photo.with_suffix(".xmp"), photo.with_suffix(".XMP")]
    ordered = ext + base if name == "ext" else base + ext
    unique: list[Path] = []
    for path in ordered:
        if path not in unique and path != photo:
            unique.append(path)
    return unique


def find(photo: Path, name: str = "ext") -> Path | None:
    """An existing sidecar of the photo, the preferred naming first."""
    for path in candidates(photo, name):
        if atomic.fits(path) and path.is_file():  # a name over the limit can't exist
            return path
    return None


def target(photo: Path, name: str = "ext") -> Path:
    """The sidecar to write: an existing one, else a new one with the preferred name."""
    found = find(photo, name)
    if found is not None:
        return found
    path = candidates(photo, name)[0]
    if not atomic.fits(path):
        size, limit = len(os.fsencode(path.name)), atomic.name_max(path.parent)
        other = "base" if name == "ext" else "ext"
        raise MetadataError(
            f"{photo}: can't write a sidecar: its name would be {size} bytes, over the file "
            f"system's limit of {limit}; rename the photo (or try --sidecar-name {other})"
        )
    return path
