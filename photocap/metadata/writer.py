"""Write a caption into a photo (or its XMP sidecar) without losing anything.

:func:`write_caption` decides where the caption goes, refuses to overwrite a
description a human wrote (unless forced), merges into the existing metadata,
then replaces the file atomically after verifying the result: it decodes, the
image data is byte-identical, the new fields read back, and every tag that was
there before is still there with the same value.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photocap.errors import MetadataError
from photocap.metadata import (
    atomic,
    containers,
    exif,
    fields,
    guard,
    iptc,
    jpeg,
    reader,
    sidecar,
    tiff,
    xmp,
)
from photocap.records import WriteReport

TARGETS = ("auto", "embed", "sidecar")
IPTC_CHANGING = ("IIM:2:120:", "IIM:1:90:", "8BIM:b'8BIM':1028", "8BIM:b'8BIM':1061")


def _version() -> str:
    from photocap import __version__

    return __version__


def _clean(text: str) -> str:
    if not isinstance(text, str):
        raise MetadataError("a caption must be text")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise MetadataError("the caption is empty")
    if any((ord(c) < 32 and c not in "\n\t") or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise MetadataError("the caption contains control characters")
    return text


def _writable(path: Path) -> bool:
    """Writable, and not marked read-only (a mode with no write bits counts, even for root)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@dataclass
class _Plan:
    """What a write will do: where, which tags, the new bytes, and how to verify them."""

    target: str  # "embed" | "sidecar"
    written: Path
    tags: list[str]
    data: bytes | None = None  # None: nothing to change
    old: bytes | None = None


def _provenance(doc: xmp.XmpDoc, text: str, model: str | None) -> list[str]:
    written = [fields.XMP_PHOTOCAP_SOURCE, fields.XMP_PHOTOCAP_DIGEST]
    props = fields.XMP_PROPERTIES
    xmp.set_value(doc, props[fields.XMP_PHOTOCAP_SOURCE], f"photocap {_version()}")
    xmp.set_value(doc, props[fields.XMP_PHOTOCAP_DIGEST], fields.caption_digest(text))
    if model:
        xmp.set_value(doc, props[fields.XMP_PHOTOCAP_MODEL], model)
        written.append(fields.XMP_PHOTOCAP_MODEL)
    return written


def _up_to_date(loc: reader.Location | None, tags: list[str], text: str, model: str | None) -> bool:
    if loc is None:
        return False
    if loc.embedded is not None and len(loc.embedded.xmp) > 1:
        return False  # duplicate XMP packets: collapse them into one
    if any(loc.tags.get(t, "").strip() != text for t in tags):
        return False
    if loc.provenance.get(fields.XMP_PHOTOCAP_DIGEST) != fields.caption_digest(text):
        return False
    return model is None or loc.provenance.get(fields.XMP_PHOTOCAP_MODEL) == model


def _check_preserved(before: dict, after: dict, changing: set[str], what: str) -> None:
    for key, value in before.items():
        if key in changing or key.startswith(IPTC_CHANGING):
            continue
        if after.get(key) != value:
            raise MetadataError(f"verification failed: {what} {key} would change or be lost")


def _check_readback(loc: reader.Location, tags: list[str], text: str) -> None:
    if loc.problems:
        raise MetadataError(f"verification failed: {'; '.join(loc.problems.values())}")
    for tag in tags:
        if loc.tags.get(tag, "").strip() != text:
            raise MetadataError(f"verification failed: {tag} does not read back")
    if loc.provenance.get(fields.XMP_PHOTOCAP_DIGEST) != fields.caption_digest(text):
        raise MetadataError("verification failed: photocap's provenance does not read back")


def _decode(path: Path, kind: str) -> None:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                if kind == "jpeg":
                    image.draft(None, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
        except Image.DecompressionBombError:
            return  # too big to decode here; the image bytes were compared instead
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds
            raise MetadataError(f"the photo does not decode (corrupt or unsupported?): {exc}") from exc


# --- embedding ------------------------------------------------------------------------------


def _embed_tags(kind: str, loc: reader.Location, windows: bool) -> list[str]:
    emb = loc.embedded
    assert emb is not None
    present = {
        "IPTC": loc.iptc is not None and "IPTC" not in loc.problems,
        "EXIF": emb.exif is not None,
    }
    return fields.tags_for(kind, block_present=present, windows=windows)


def _plan_embed(
    path: Path, kind: str, data: bytes, loc: reader.Location, text: str, windows: bool, model: str | None
) -> _Plan:
    emb = loc.embedded
    assert emb is not None
    tags = _embed_tags(kind, loc, windows)
    photoshop = None
    if fields.IPTC_CAPTION in tags:
        assert loc.iptc is not None
        photoshop = iptc.with_caption(loc.iptc, text)
        if photoshop is None:  # charset or length photocap can't write losslessly
            tags.remove(fields.IPTC_CAPTION)
    plan = _Plan("embed", path, tags, old=data)
    if _up_to_date(loc, tags, text, model):
        return plan
    try:  # only into a photo that decodes: rewritten headers could "repair" a broken one into another
        _decode(path, kind)
    except MetadataError as exc:
        raise MetadataError(f"{path}: {exc}; left as it is") from exc
    doc = reader.merged_xmp(emb.xmp) if emb.xmp else xmp.new_doc(f"photocap {_version()}")
    for tag in tags:
        if tag in fields.XMP_PROPERTIES:
            xmp.set_value(doc, fields.XMP_PROPERTIES[tag], text)
    plan.tags = tags + _provenance(doc, text, model)
    packet = xmp.serialize(doc)
    if kind == "jpeg":
        room = jpeg.MAX_XMP - len(packet)
        packet = xmp.serialize(doc, padding=max(0, min(containers.JPEG_XMP_PADDING, room)))
    exif_values = {t: text for t in tags if t in exif.TEXT_TAGS}
    try:
        plan.data = containers.rebuild(
            kind, data, emb, exif_values=exif_values, xmp=packet, photoshop=photoshop
        )
    except MetadataError as exc:
        raise MetadataError(f"{path}: {exc}") from exc
    return plan


def _verify_embed(
    kind: str, old: bytes, loc: reader.Location, plan: _Plan, text: str
) -> Callable[[Path], None]:
    """A verifier for the temp file of an embedded write."""
    emb = loc.embedded
    assert emb is not None
    old_props = xmp.properties(reader.merged_xmp(emb.xmp)) if emb.xmp else {}
    old_exif = tiff.fingerprint(emb.exif) if emb.exif is not None else {}
    exif_changing = exif.changed_keys({t: text for t in plan.tags if t in exif.TEXT_TAGS})
    exif_changing.add(f"IFD0:0x{exif.TAG_XMP:04x}")
    old_iptc = loc.iptc.fingerprint() if loc.iptc is not None else {}
    xmp_changing = {
        xmp.key_of(fields.XMP_PROPERTIES[t]) for t in plan.tags if t in fields.XMP_PROPERTIES
    }
    old_mpf = jpeg.mpf_targets(old) if kind == "jpeg" else []

    def verify(temp: Path) -> None:
        new = temp.read_bytes()
        if not containers.same_image(kind, old, new):
            raise MetadataError("verification failed: the image data would change")
        new_loc = reader.read_embedded(kind, new)
        caption_tags = [t for t in plan.tags if t not in fields.PROVENANCE_TAGS]
        _check_readback(new_loc, caption_tags, text)
        assert new_loc.doc is not None and new_loc.embedded is not None
        _check_preserved(old_props, xmp.properties(new_loc.doc), xmp_changing, "XMP")
        if emb.exif is not None and new_loc.embedded.exif is not None:
            _check_preserved(old_exif, tiff.fingerprint(new_loc.embedded.exif), exif_changing, "EXIF")
            if exif.piexif_readable(emb.exif) and not exif.piexif_readable(new_loc.embedded.exif):
                raise MetadataError("verification failed: the new EXIF block is unreadable")
        new_iptc = new_loc.iptc.fingerprint() if new_loc.iptc is not None else {}
        _check_preserved(old_iptc, new_iptc, set(), "IPTC")
        if kind == "jpeg" and jpeg.mpf_targets(new) != old_mpf:
            raise MetadataError("verification failed: multi-picture (MPF) offsets would break")
        _decode(temp, kind)

    return verify


# --- sidecars -------------------------------------------------------------------------------


def _plan_sidecar(
    path: Path, loc: reader.Location | None, side: Path, text: str, model: str | None
) -> _Plan:
    if loc is not None and "XMP" in loc.problems:
        raise MetadataError(f"{side}: the existing sidecar can't be merged: {loc.problems['XMP']}")
    if not _writable(side.parent):
        raise MetadataError(f"{path}: can't write a sidecar: the folder {side.parent} is read-only")
    if side.exists() and not _writable(side):
        raise MetadataError(f"{path}: the sidecar {side} is read-only")
    tags = fields.tags_for("sidecar", block_present={}, windows=False)
    plan = _Plan("sidecar", side, tags)
    if _up_to_date(loc, tags, text, model):
        return plan
    doc = loc.doc if loc is not None and loc.doc is not None else None
    if doc is None:
        doc = xmp.new_doc(f"photocap {_version()}")
    else:
        assert side.exists()
        doc = xmp.parse(side.read_bytes())  # a fresh copy to change
    for tag in tags:
        xmp.set_value(doc, fields.XMP_PROPERTIES[tag], text)
    plan.tags = tags + _provenance(doc, text, model)
    plan.data = xmp.serialize(doc)
    return plan


def _verify_sidecar(
    loc: reader.Location | None, plan: _Plan, text: str
) -> Callable[[Path], None]:
    old_props = xmp.properties(loc.doc) if loc is not None and loc.doc is not None else {}
    changing = {xmp.key_of(fields.XMP_PROPERTIES[t]) for t in plan.tags}

    def verify(temp: Path) -> None:
        new_loc = reader.read_sidecar(temp)
        _check_readback(new_loc, [t for t in plan.tags if t not in fields.PROVENANCE_TAGS], text)
        assert new_loc.doc is not None
        _check_preserved(old_props, xmp.properties(new_loc.doc), changing, "XMP")

    return verify


# --- the entry point ------------------------------------------------------------------------


def _choose_target(
    target: str, path: Path, kind: str, embedded: reader.Location | None
) -> tuple[str, str | None]:
    """("embed" | "sidecar", why not embedded)."""
    if target == "sidecar":
        return "sidecar", None
    why = None
    if not containers.can_embed(path, kind):
        why = f"photocap does not embed metadata in {kind} files"
    elif not _writable(path):
        why = "the file is read-only"
    elif not _writable(path.parent):
        why = f"the folder {path.parent} is read-only"
    elif embedded is not None and embedded.problems.keys() & {"XMP", "EXIF"}:
        block = "XMP" if "XMP" in embedded.problems else "EXIF"
        why = f"its {block} metadata can't be merged safely ({embedded.problems[block]})"
    elif target == "auto" and path.stat().st_nlink > 1:
        why = "the file has other hard links"
    if why is None:
        return "embed", None
    if target == "embed":
        raise MetadataError(f"{path}: can't embed the caption: {why}")
    return "sidecar", why


@guard.guarded("write the caption into it")
def write_caption(
    path: str | Path,
    text: str,
    *,
    target: str = "auto",
    sidecar_name: str = "ext",
    force: bool = False,
    keep_mtime: bool = True,
    dry_run: bool = False,
    write_windows_fields: bool = False,
    model: str | None = None,
) -> WriteReport:
    """Write ``text`` as the photo's description and alt text; see the module docstring.

    ``target``: "auto" embeds into JPEG/PNG/TIFF/WebP files that can be changed safely and
    writes an XMP sidecar otherwise; "embed" or "sidecar" force one (embed fails with a
    MetadataError where it is not safe).  ``sidecar_name``: "ext" (``photo.jpg.xmp``) or
    "base" (``photo.xmp``); an existing sidecar of either name is merged into.  A
    description a human wrote is left alone (``skipped`` says so) unless ``force``.
    ``keep_mtime`` keeps the file's modification time.  ``dry_run`` changes nothing.
    ``model`` (a model id) is recorded next to photocap's version.
    """
    if target not in TARGETS:
        raise MetadataError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    if sidecar_name not in sidecar.NAMES:
        raise MetadataError(f"unknown sidecar naming {sidecar_name!r}; use 'ext' or 'base'")
    text = _clean(text)
    given = Path(path)
    real = Path(os.path.realpath(given))
    reader.require_file(real)
    expected = atomic.signature(real)
    kind, data, locations, side_path = reader.inspect(real, sidecar_name=sidecar_name)
    report = reader.build_report(real, kind, data is not None, side_path, locations)
    conflicts = [
        v for v in report.values if not v.placeholder and not v.by_photocap and v.value.strip() != text
    ]
    if conflicts and not force:
        where = ", ".join(sorted({f"{v.tag} ({v.location})" for v in conflicts}))
        return WriteReport(
            str(given), "none", skipped=f"a description is already there: {where}; --force replaces it",
            dry_run=dry_run,
        )
    embedded = next((loc for loc in locations if loc.name == "embedded"), None)
    side_loc = next((loc for loc in locations if loc.name == "sidecar"), None)
    choice, _why_not_embedded = _choose_target(target, real, kind, embedded)
    if choice == "embed":
        assert data is not None and embedded is not None
        plan = _plan_embed(real, kind, data, embedded, text, write_windows_fields, model)
        verify = _verify_embed(kind, data, embedded, plan, text) if plan.data else None
    else:
        side = sidecar.target(real, sidecar_name)
        expected = atomic.signature(side)
        plan = _plan_sidecar(real, side_loc, side, text, model)
        verify = _verify_sidecar(side_loc, plan, text) if plan.data else None
    result = WriteReport(str(given), plan.target, str(plan.written), list(plan.tags), dry_run=dry_run)
    if plan.data is None:
        result.written_path = None
        result.skipped = "already up to date"
        return result
    if dry_run:
        return result
    assert verify is not None
    try:
        atomic.replace(plan.written, plan.data, verify=verify, expected=expected, keep_mtime=keep_mtime)
    except MetadataError as exc:
        message = str(exc)
        if not message.startswith(str(plan.written)):
            message = f"{given}: {message}"
        raise MetadataError(message) from exc
    return result
