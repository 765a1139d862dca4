"""THE table: which tags photocap reads and writes for each of its fields.

Photini's pattern: one place maps a photocap field to an ordered list of tags.
The order is the read priority (the first tag with a value is where a caption
"comes from"); the mode says when the tag is written.  Tag names follow
exiftool's ``Group:Tag`` spelling so that what photocap reports can be checked
with ``exiftool -G1``.

Nothing here does I/O; the containers and the writer consult the table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Write modes.
ALWAYS = "always"  # written whenever the container can hold it
IF_PRESENT = "if_present"  # written only if the file already has that block (e.g. IPTC IIM)
OPTIONAL = "optional"  # written only when asked for (Windows-oriented fields)

# Container kinds a tag can live in.  "sidecar" is an XMP sidecar file.
EMBED_KINDS = frozenset({"jpeg", "png", "tiff", "webp"})
XMP_KINDS = frozenset({"jpeg", "png", "tiff", "webp", "sidecar"})
EXIF_KINDS = frozenset({"jpeg", "tiff", "webp"})

# Tag names (exiftool ``-G1`` style).
XMP_DESCRIPTION = "XMP-dc:Description"
XMP_ALT_TEXT = "XMP-iptcCore:AltTextAccessibility"
EXIF_DESCRIPTION = "EXIF:ImageDescription"
IPTC_CAPTION = "IPTC:Caption-Abstract"
EXIF_XP_COMMENT = "EXIF:XPComment"
EXIF_USER_COMMENT = "EXIF:UserComment"
XMP_PHOTOCAP_SOURCE = "XMP-photocap:DescriptionSource"
XMP_PHOTOCAP_DIGEST = "XMP-photocap:DescriptionDigest"
XMP_PHOTOCAP_MODEL = "XMP-photocap:DescriptionModel"

# XML namespaces used by the XMP tags above.
NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
NS_PHOTOCAP = "http://ns.photocap.app/xmp/1.0/"

# Preferred prefixes when photocap declares a namespace itself.
PREFERRED_PREFIXES = {
    NS_X: "x",
    NS_RDF: "rdf",
    NS_DC: "dc",
    NS_IPTC_CORE: "Iptc4xmpCore",
    NS_PHOTOCAP: "photocap",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
}


@dataclass(frozen=True)
class TagSpec:
    """One tag a field is written to / read from."""

    name: str  # exiftool-style, e.g. "EXIF:ImageDescription"
    mode: str  # ALWAYS | IF_PRESENT | OPTIONAL
    kinds: frozenset[str]  # containers that can hold it
    if_present_kinds: frozenset[str] = frozenset()  # kinds where it's only updated, never added
    why: str = ""  # one line for the README table

    def writes_to(self, kind: str, *, block_present: bool, windows: bool) -> bool:
        """Whether this tag is written in a container of ``kind``."""
        if kind in self.if_present_kinds:
            return block_present
        if kind not in self.kinds:
            return False
        if self.mode == OPTIONAL:
            return windows
        if self.mode == IF_PRESENT:
            return block_present
        return True


@dataclass(frozen=True)
class XmpProperty:
    """Where an XMP tag lives in the RDF: namespace, local name, and its shape."""

    namespace: str
    local: str
    lang_alt: bool


# photocap field "caption" -> ordered tags (read priority = this order).
CAPTION_TAGS: tuple[TagSpec, ...] = (
    TagSpec(
        XMP_DESCRIPTION,
        ALWAYS,
        XMP_KINDS,
        why="The description field of Lightroom, digiKam, Photo Mechanic, Bridge and web CMSs.",
    ),
    TagSpec(
        XMP_ALT_TEXT,
        ALWAYS,
        XMP_KINDS,
        why="IPTC 2021 accessibility alt text, read by CMSs and screen-reader workflows.",
    ),
    TagSpec(
        EXIF_DESCRIPTION,
        ALWAYS,
        EXIF_KINDS,
        if_present_kinds=frozenset({"png"}),
        why="The oldest description tag; read by file managers, Windows and most viewers.",
    ),
    TagSpec(
        IPTC_CAPTION,
        IF_PRESENT,
        frozenset({"jpeg"}),
        why="Legacy IPTC caption, kept in sync so older tools don't show a stale one.",
    ),
    TagSpec(
        EXIF_XP_COMMENT,
        OPTIONAL,
        EXIF_KINDS,
        why="Windows Explorer's Comments (only with write_windows_fields).",
    ),
    TagSpec(
        EXIF_USER_COMMENT,
        OPTIONAL,
        EXIF_KINDS,
        why="EXIF user comment for Windows-oriented tools (only with write_windows_fields).",
    ),
)

# Tags recording that photocap wrote the description (never xmp:CreatorTool).
PROVENANCE_TAGS: tuple[str, ...] = (XMP_PHOTOCAP_SOURCE, XMP_PHOTOCAP_DIGEST, XMP_PHOTOCAP_MODEL)

XMP_PROPERTIES: dict[str, XmpProperty] = {
    XMP_DESCRIPTION: XmpProperty(NS_DC, "description", lang_alt=True),
    XMP_ALT_TEXT: XmpProperty(NS_IPTC_CORE, "AltTextAccessibility", lang_alt=True),
    XMP_PHOTOCAP_SOURCE: XmpProperty(NS_PHOTOCAP, "DescriptionSource", lang_alt=False),
    XMP_PHOTOCAP_DIGEST: XmpProperty(NS_PHOTOCAP, "DescriptionDigest", lang_alt=False),
    XMP_PHOTOCAP_MODEL: XmpProperty(NS_PHOTOCAP, "DescriptionModel", lang_alt=False),
}

# Descriptions cameras write by themselves; they are not a human's description.
CAMERA_PLACEHOLDERS = frozenset(
    s.casefold()
    for s in (
        "OLYMPUS DIGITAL CAMERA",
        "SONY DSC",
        "KONICA MINOLTA DIGITAL CAMERA",
        "MINOLTA DIGITAL CAMERA",
        "DIGITAL CAMERA",
        "SAMSUNG DIGITAL CAMERA",
        "DCIM",
        "Default",
        "Image",
        "Picture",
        "LEICA DIGITAL CAMERA",
        "Exif_JPEG_PICTURE",
        "Exif JPEG",
        "Created with GIMP",
        "Screenshot",
    )
)


def is_placeholder(value: str | None) -> bool:
    """True for empty values and the stock descriptions cameras write."""
    if value is None:
        return True
    cleaned = value.strip(" \t\r\n\x00")
    return not cleaned or cleaned.casefold() in CAMERA_PLACEHOLDERS


def caption_digest(text: str) -> str:
    """The digest photocap records next to a description it wrote (to spot later edits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def tags_for(kind: str, *, block_present: dict[str, bool], windows: bool) -> list[str]:
    """The caption tags written for a container ``kind`` ("jpeg", "png", "tiff", "webp", "sidecar").

    ``block_present`` says which optional blocks the file already has, by tag group
    ("IPTC", "EXIF").
    """
    return [
        spec.name
        for spec in CAPTION_TAGS
        if spec.writes_to(
            kind, block_present=block_present.get(spec.name.split(":")[0], False), windows=windows
        )
    ]
