"""Write a caption into a photo (or its XMP sidecar) without losing anything.

:func:`write_caption` decides where the caption goes, refuses to overwrite a
person's words unless allowed (:func:`photocap.metadata.provenance.may_replace`),
merges into the existing metadata (and adds keywords after those already there, when
given), records whose words the new caption is, then replaces the file atomically after verifying the result: it decodes, the
image data is byte-identical, the new fields read back, every tag that was
there before is still there with the same value, and every keyword list still starts
with the keywords it had, in their order.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable, Sequence
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
from photocap.metadata.provenance import may_replace
from photocap.records import CaptionSource, SkipReason, WriteReport

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


class _NoRoom(MetadataError):
    """The photo has no room for the caption's metadata (``--target auto`` then writes a sidecar)."""


@dataclass
class _Plan:
    """What a write will do: where, which tags, the new bytes, and how to verify them."""

    target: str  # "embed" | "sidecar"
    written: Path
    tags: list[str]
    data: bytes | None = None  # None: nothing to change
    old: bytes | None = None
    removed: tuple[str, ...] = ()  # provenance tags taken out (a model's id under a person's words)
    keywords: tuple[str, ...] = ()  # the keywords every keyword tag in ``tags`` must hold after


@dataclass(frozen=True)
class _Who:
    """Whose caption is being written: recorded next to it in photocap's XMP namespace."""

    source: CaptionSource
    model: str | None  # the model's id, for a model's caption
    image: str | None = None  # a model's caption: the digest of the pixels it describes


def _provenance(doc: xmp.XmpDoc, text: str, who: _Who) -> tuple[list[str], tuple[str, ...]]:
    """Record ``who`` wrote ``text``: (tags written, tags removed)."""
    props = fields.XMP_PROPERTIES
    xmp.set_value(doc, props[fields.XMP_PHOTOCAP_SOURCE], str(who.source))
    xmp.set_value(doc, props[fields.XMP_PHOTOCAP_DIGEST], fields.caption_digest(text))
    xmp.set_value(doc, props[fields.XMP_PHOTOCAP_WRITER], f"photocap {_version()}")
    written = [fields.XMP_PHOTOCAP_SOURCE, fields.XMP_PHOTOCAP_DIGEST, fields.XMP_PHOTOCAP_WRITER]
    removed = []
    for tag, value in ((fields.XMP_PHOTOCAP_MODEL, who.model), (fields.XMP_PHOTOCAP_IMAGE, who.image)):
        if value and who.source is CaptionSource.MODEL:
            xmp.set_value(doc, props[tag], value)
            written.append(tag)
        elif xmp.remove(doc, props[tag]):  # a person's words, or pixels photocap can't name
            removed.append(tag)
    return written, tuple(removed)


def _up_to_date(loc: reader.Location | None, tags: list[str], text: str, who: _Who) -> bool:
    if loc is None:
        return False
    if loc.embedded is not None and len(loc.embedded.xmp) > 1:
        return False  # duplicate XMP packets: collapse them into one
    if loc.doc is not None and not xmp.is_standard(loc.doc):
        return False  # other tools can't read it there: put it in the standard wrapper
    if any(loc.tags.get(t, "").strip() != text for t in tags):
        return False
    prov = loc.provenance
    if prov.get(fields.XMP_PHOTOCAP_DIGEST) != fields.caption_digest(text):
        return False
    if prov.get(fields.XMP_PHOTOCAP_SOURCE) != str(who.source):
        return False
    if who.source is CaptionSource.USER:
        return fields.XMP_PHOTOCAP_MODEL not in prov and fields.XMP_PHOTOCAP_IMAGE not in prov
    return (who.model is None or prov.get(fields.XMP_PHOTOCAP_MODEL) == who.model) and \
        prov.get(fields.XMP_PHOTOCAP_IMAGE) == who.image


def _keyword_tags(kind: str, present: dict[str, bool], keywords: tuple[str, ...]) -> list[str]:
    if not keywords:
        return []
    return fields.tags_for(kind, block_present=present, windows=False, specs=fields.KEYWORD_TAGS)


def _keywords_missing(loc: reader.Location | None, ktags: list[str], keywords: tuple[str, ...]) -> bool:
    """Whether some keyword tag still lacks one of ``keywords`` (ignoring case)."""
    have = loc.keywords if loc is not None else {}
    return any(fields.missing_keywords(have.get(t, []), keywords) for t in ktags)


def _add_xmp_keywords(doc: xmp.XmpDoc, keywords: tuple[str, ...]) -> None:
    prop = fields.XMP_PROPERTIES[fields.XMP_SUBJECT]
    xmp.add_to_list(doc, prop, list(fields.missing_keywords(xmp.get_list(doc, prop) or [], keywords)))


def _check_keywords(old: reader.Location | None, new: reader.Location, plan: _Plan) -> None:
    """Each keyword tag written still starts with the keywords it had, in order, and holds
    every keyword asked for."""
    for tag in plan.tags:
        if tag not in fields.KEYWORD_SPECS:
            continue
        before = old.keywords.get(tag, []) if old is not None else []
        after = new.keywords.get(tag, [])
        if after[: len(before)] != before:
            raise MetadataError(f"verification failed: {tag} would lose or reorder a keyword")
        if fields.missing_keywords(after, plan.keywords):
            raise MetadataError(f"verification failed: {tag} does not read back")


def _check_preserved(before: dict, after: dict, changing: set[str], what: str) -> None:
    for key, value in before.items():
        if key in changing or key.startswith(IPTC_CHANGING):
            continue
        if after.get(key) != value:
            raise MetadataError(f"verification failed: {what} {key} would change or be lost")


def _check_readback(loc: reader.Location, tags: list[str], text: str) -> None:
    if loc.problems:
        raise MetadataError(f"verification failed: {'; '.join(loc.problems.values())}")
    if loc.doc is None or not xmp.is_standard(loc.doc):  # where exiftool and other tools read it
        raise MetadataError("verification failed: the XMP packet is not in the standard x:xmpmeta form")
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


def _present(loc: reader.Location) -> dict[str, bool]:
    """Which optional blocks the photo already has, by tag group."""
    emb = loc.embedded
    assert emb is not None
    return {
        "IPTC": loc.iptc is not None and "IPTC" not in loc.problems,
        "EXIF": emb.exif is not None,
    }


def _embed_tags(kind: str, loc: reader.Location, windows: bool) -> list[str]:
    return fields.tags_for(kind, block_present=_present(loc), windows=windows)


def _plan_embed(
    path: Path, kind: str, data: bytes, loc: reader.Location, text: str, windows: bool, who: _Who,
    keywords: tuple[str, ...] = (),
) -> _Plan:
    emb = loc.embedded
    assert emb is not None
    tags = _embed_tags(kind, loc, windows)
    ktags = _keyword_tags(kind, _present(loc), keywords)
    photoshop = None
    if fields.IPTC_CAPTION in tags or fields.IPTC_KEYWORDS in ktags:
        block = loc.iptc
        assert block is not None
        caption = text if fields.IPTC_CAPTION in tags else None
        add = fields.missing_keywords(loc.keywords.get(fields.IPTC_KEYWORDS, []), keywords) \
            if fields.IPTC_KEYWORDS in ktags else ()
        # each on its own: a caption or keywords the block can't hold losslessly (charset,
        # length) are left to XMP without costing the other
        alone = iptc.updated(block, caption=caption) if caption is not None else None
        if alone is None:
            if caption is not None:
                tags.remove(fields.IPTC_CAPTION)
            caption = None
        if add:
            photoshop = iptc.updated(block, caption=caption, keywords=add)
            if photoshop is None:
                ktags.remove(fields.IPTC_KEYWORDS)
        if photoshop is None:
            photoshop = alone
    plan = _Plan("embed", path, tags + ktags, old=data, keywords=keywords)
    if _up_to_date(loc, tags, text, who) and not _keywords_missing(loc, ktags, keywords):
        return plan
    try:  # only into a photo that decodes: rewritten headers could "repair" a broken one into another
        _decode(path, kind)
    except MetadataError as exc:
        raise MetadataError(f"{path}: {exc}; left as it is") from exc
    doc = reader.merged_xmp(emb.xmp) if emb.xmp else xmp.new_doc(f"photocap {_version()}")
    xmp.make_standard(doc)  # a corrupt x:xmpmeta would hide the caption from other tools
    for tag in tags:
        if tag in fields.XMP_PROPERTIES:
            xmp.set_value(doc, fields.XMP_PROPERTIES[tag], text)
    if fields.XMP_SUBJECT in ktags:
        _add_xmp_keywords(doc, keywords)
    written, plan.removed = _provenance(doc, text, who)
    plan.tags = tags + ktags + written
    packet = xmp.serialize(doc)
    if kind == "jpeg":
        room = jpeg.MAX_XMP - len(packet)
        if room < 0:
            raise _NoRoom(f"{path}: the merged XMP packet would be {len(packet):,} bytes, more than one JPEG "
                          f"segment holds ({jpeg.MAX_XMP:,}); photocap does not write extended XMP "
                          "(--target sidecar writes the caption beside the photo)")
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
        xmp.key_of(fields.XMP_PROPERTIES[t]) for t in (*plan.tags, *plan.removed)
        if t in fields.XMP_PROPERTIES
    }
    old_mpf = jpeg.mpf_targets(old) if kind == "jpeg" else []

    def verify(temp: Path) -> None:
        new = temp.read_bytes()
        if not containers.same_image(kind, old, new):
            raise MetadataError("verification failed: the image data would change")
        new_loc = reader.read_embedded(kind, new)
        _check_readback(new_loc, [t for t in plan.tags if t in fields.TAG_SPECS], text)
        _check_keywords(loc, new_loc, plan)
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
    path: Path, loc: reader.Location | None, side: Path, text: str, who: _Who,
    keywords: tuple[str, ...] = (),
) -> _Plan:
    if loc is not None and "XMP" in loc.problems:
        raise MetadataError(f"{side}: the existing sidecar can't be merged: {loc.problems['XMP']}")
    if not _writable(side.parent):
        raise MetadataError(f"{path}: can't write a sidecar: the folder {side.parent} is read-only")
    if side.exists() and not _writable(side):
        raise MetadataError(f"{path}: the sidecar {side} is read-only")
    tags = fields.tags_for("sidecar", block_present={}, windows=False)
    ktags = _keyword_tags("sidecar", {}, keywords)
    plan = _Plan("sidecar", side, tags + ktags, keywords=keywords)
    if _up_to_date(loc, tags, text, who) and not _keywords_missing(loc, ktags, keywords):
        return plan
    doc = loc.doc if loc is not None and loc.doc is not None else None
    if doc is None:
        doc = xmp.new_doc(f"photocap {_version()}")
    else:
        assert side.exists()
        doc = xmp.parse(side.read_bytes())  # a fresh copy to change
        xmp.make_standard(doc)
    for tag in tags:
        xmp.set_value(doc, fields.XMP_PROPERTIES[tag], text)
    if fields.XMP_SUBJECT in ktags:
        _add_xmp_keywords(doc, keywords)
    written, plan.removed = _provenance(doc, text, who)
    plan.tags = tags + ktags + written
    plan.data = xmp.serialize(doc)
    return plan


def _verify_sidecar(
    loc: reader.Location | None, plan: _Plan, text: str
) -> Callable[[Path], None]:
    old_props = xmp.properties(loc.doc) if loc is not None and loc.doc is not None else {}
    changing = {xmp.key_of(fields.XMP_PROPERTIES[t]) for t in (*plan.tags, *plan.removed)}

    def verify(temp: Path) -> None:
        new_loc = reader.read_sidecar(temp)
        _check_readback(new_loc, [t for t in plan.tags if t in fields.TAG_SPECS], text)
        _check_keywords(loc, new_loc, plan)
        assert new_loc.doc is not None
        _check_preserved(old_props, xmp.properties(new_loc.doc), changing, "XMP")

    return verify


def _also_unchanged(verify: Callable[[Path], None], photo: Path, sig: atomic.Signature) -> Callable[[Path], None]:
    """``verify``, then check the photo a sidecar is written for is still the one it was."""

    def check(temp: Path) -> None:
        verify(temp)
        if atomic.signature(photo) != sig:
            raise MetadataError(f"{photo}: changed while photocap was writing its sidecar; left as it is")

    return check


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
    source: CaptionSource = CaptionSource.MODEL,
    withdrawn: str | None = None,
    keywords: Sequence[str] = (),
    photo: atomic.Signature | None = None,
) -> WriteReport:
    """Write ``text`` as the photo's description and alt text; see the module docstring.

    ``target``: "auto" embeds into JPEG/PNG/TIFF/WebP files that can be changed safely and
    writes an XMP sidecar otherwise; "embed" or "sidecar" force one (embed fails with a
    MetadataError where it is not safe).  ``sidecar_name``: "ext" (``photo.jpg.xmp``) or
    "base" (``photo.xmp``); an existing sidecar of either name is merged into.
    ``source`` says whose words ``text`` is (``model`` is the model's id, recorded with a
    model's caption). A description that ``source`` may not replace
    (:func:`~photocap.metadata.provenance.may_replace`: a person's words under a model's
    caption, or words photocap did not write) is left alone, with ``skip`` set to
    ``SkipReason.PERSONS_DESCRIPTION``, unless ``force``; ``withdrawn`` is a person's
    caption they have just cleared, which photocap wrote and may now replace.
    ``keywords`` are added to the photo's keywords (:data:`~photocap.metadata.fields.KEYWORD_TAGS`:
    XMP dc:subject, and IPTC Keywords where the photo has IPTC data), after the ones already
    there, which are never removed or reordered; one already there (ignoring case) is not
    added again. The write is "already up to date" only when the caption and every keyword are.
    ``keep_mtime`` keeps the file's modification time.  ``dry_run`` changes nothing.
    ``photo`` is the :func:`~photocap.metadata.atomic.signature` of the photo the caption was
    made for (the caller checked it is that photo): if the file is not that one any more when it
    is read, nothing is written (``skip`` = ``SkipReason.PHOTO_CHANGED``), and if it changes
    before the new file or sidecar replaces the old, the write fails and changes nothing.
    """
    if target not in TARGETS:
        raise MetadataError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    if sidecar_name not in sidecar.NAMES:
        raise MetadataError(f"unknown sidecar naming {sidecar_name!r}; use 'ext' or 'base'")
    text = _clean(text)
    if isinstance(keywords, str):
        raise MetadataError("keywords must be a list of words, not one string")
    words = fields.clean_keywords(keywords)
    given = Path(path)
    real = Path(os.path.realpath(given))
    reader.require_file(real)
    expected = atomic.signature(real)
    if photo is not None and expected != photo:
        return WriteReport(str(given), "none", skipped="the file changed since it was captioned",
                           skip=SkipReason.PHOTO_CHANGED, dry_run=dry_run)
    kind, data, locations, side_path = reader.inspect(real, sidecar_name=sidecar_name)
    report = reader.build_report(real, kind, data is not None, side_path, locations, data)
    who = _Who(CaptionSource(source), model)
    if who.source is CaptionSource.MODEL:
        who = _Who(who.source, model, containers.image_digest(kind, data, real))
    gone = " ".join(withdrawn.split()) if withdrawn else None
    conflicts = sorted({
        f"{v.tag} ({v.location})" for v in report.values
        if v.value.strip() != text and not may_replace(
            v.owner, who.source, force=force, withdrawn=gone is not None and " ".join(v.value.split()) == gone
        )
    })
    if conflicts:
        return WriteReport(
            str(given), "none",
            skipped=f"a person's description is already there: {', '.join(conflicts)}; --force replaces it",
            skip=SkipReason.PERSONS_DESCRIPTION, conflicts=tuple(conflicts), dry_run=dry_run,
        )
    embedded = next((loc for loc in locations if loc.name == "embedded"), None)
    side_loc = next((loc for loc in locations if loc.name == "sidecar"), None)
    choice, _why_not_embedded = _choose_target(target, real, kind, embedded)
    if choice == "embed":
        assert data is not None and embedded is not None
        try:
            plan = _plan_embed(real, kind, data, embedded, text, write_windows_fields, who, words)
        except _NoRoom:
            if target != "auto":
                raise
            choice = "sidecar"  # the help's promise: embedded where that is safe, a sidecar otherwise
        else:
            verify = _verify_embed(kind, data, embedded, plan, text) if plan.data else None
    if choice == "sidecar":
        side = sidecar.target(real, sidecar_name)
        expected = atomic.signature(side)
        plan = _plan_sidecar(real, side_loc, side, text, who, words)
        verify = _verify_sidecar(side_loc, plan, text) if plan.data else None
    if plan.data is None:
        return WriteReport(str(given), plan.target, None, tuple(plan.tags), skipped="already up to date",
                           skip=SkipReason.UP_TO_DATE, dry_run=dry_run)
    result = WriteReport(str(given), plan.target, str(plan.written), tuple(plan.tags), dry_run=dry_run)
    if dry_run:
        return result
    assert verify is not None
    if photo is not None and plan.written != real:
        verify = _also_unchanged(verify, real, photo)
    try:
        atomic.replace(plan.written, plan.data, verify=verify, expected=expected, keep_mtime=keep_mtime)
    except MetadataError as exc:
        message = str(exc)
        if not message.startswith(str(plan.written)):
            message = f"{given}: {message}"
        raise MetadataError(message) from exc
    return result
