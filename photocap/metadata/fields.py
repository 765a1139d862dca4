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
from collections.abc import Iterable
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
XMP_PHOTOCAP_WRITER = "XMP-photocap:Writer"
XMP_PHOTOCAP_IMAGE = "XMP-photocap:ImageDigest"
XMP_SUBJECT = "XMP-dc:Subject"
IPTC_KEYWORDS = "IPTC:Keywords"

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
    why: str = ""  # one line for the docs' fields table (scripts/mkdocs_hooks.py)
    # A comment field rather than a description (cameras and phones fill it with settings):
    # only prose found there counts as a person's words (see photocap.metadata.stock).
    prose_only: bool = False

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
    bag: bool = False  # an unordered list (rdf:Bag), e.g. dc:subject


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
        why="Windows Explorer's Comments.",
    ),
    TagSpec(
        EXIF_USER_COMMENT,
        OPTIONAL,
        EXIF_KINDS,
        why="EXIF user comment for Windows-oriented tools.",
        prose_only=True,
    ),
)

# photocap field "keywords" -> tags. Keywords are only ever added (merged after a person's,
# compared without regard to case): photocap never removes or reorders one.
KEYWORD_TAGS: tuple[TagSpec, ...] = (
    TagSpec(
        XMP_SUBJECT,
        ALWAYS,
        XMP_KINDS,
        why="The keywords of Lightroom, digiKam, Bridge and most photo managers.",
    ),
    TagSpec(
        IPTC_KEYWORDS,
        IF_PRESENT,
        frozenset({"jpeg"}),
        why="Legacy IPTC keywords, added to only where the photo already has IPTC data.",
    ),
)

# Tags recording that photocap wrote the description and whose words it is (never
# xmp:CreatorTool): DescriptionSource is "model" or "user" (photocap 0.1.0 wrote its version
# there, read as "model"), DescriptionDigest the digest of the text written, DescriptionModel
# the model's id (model captions only), Writer photocap's version, ImageDigest the pixels a
# model's caption describes (photocap.metadata.containers.image_digest; model captions only).
PROVENANCE_TAGS: tuple[str, ...] = (
    XMP_PHOTOCAP_SOURCE, XMP_PHOTOCAP_DIGEST, XMP_PHOTOCAP_MODEL, XMP_PHOTOCAP_WRITER, XMP_PHOTOCAP_IMAGE,
)

XMP_PROPERTIES: dict[str, XmpProperty] = {
    XMP_DESCRIPTION: XmpProperty(NS_DC, "description", lang_alt=True),
    XMP_ALT_TEXT: XmpProperty(NS_IPTC_CORE, "AltTextAccessibility", lang_alt=True),
    XMP_PHOTOCAP_SOURCE: XmpProperty(NS_PHOTOCAP, "DescriptionSource", lang_alt=False),
    XMP_PHOTOCAP_DIGEST: XmpProperty(NS_PHOTOCAP, "DescriptionDigest", lang_alt=False),
    XMP_PHOTOCAP_MODEL: XmpProperty(NS_PHOTOCAP, "DescriptionModel", lang_alt=False),
    XMP_PHOTOCAP_WRITER: XmpProperty(NS_PHOTOCAP, "Writer", lang_alt=False),
    XMP_PHOTOCAP_IMAGE: XmpProperty(NS_PHOTOCAP, "ImageDigest", lang_alt=False),
    XMP_SUBJECT: XmpProperty(NS_DC, "subject", lang_alt=False, bag=True),
}

TAG_SPECS: dict[str, TagSpec] = {spec.name: spec for spec in CAPTION_TAGS}
KEYWORD_SPECS: dict[str, TagSpec] = {spec.name: spec for spec in KEYWORD_TAGS}

def caption_digest(text: str) -> str:
    """The digest photocap records next to a description it wrote (to spot later edits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def tags_for(
    kind: str, *, block_present: dict[str, bool], windows: bool, specs: tuple[TagSpec, ...] = CAPTION_TAGS
) -> list[str]:
    """The tags of ``specs`` (the caption's, or :data:`KEYWORD_TAGS`) written for a container
    ``kind`` ("jpeg", "png", "tiff", "webp", "sidecar").

    ``block_present`` says which optional blocks the file already has, by tag group
    ("IPTC", "EXIF").
    """
    return [
        spec.name
        for spec in specs
        if spec.writes_to(
            kind, block_present=block_present.get(spec.name.split(":")[0], False), windows=windows
        )
    ]


def keyword_key(word: str) -> str:
    """What two keywords are compared by: "Cat" and "cat " are the same keyword."""
    return " ".join(word.split()).casefold()


def clean_keywords(words: Iterable[str]) -> tuple[str, ...]:
    """Keywords to add: whitespace collapsed, empty ones and duplicates (ignoring case) dropped."""
    out: dict[str, str] = {}
    for word in words:
        text = " ".join(str(word).split())
        if text and not any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
            out.setdefault(keyword_key(text), text)
    return tuple(out.values())


def missing_keywords(existing: Iterable[str], wanted: Iterable[str]) -> tuple[str, ...]:
    """The ``wanted`` keywords not yet among ``existing`` (compared by :func:`keyword_key`)."""
    have = {keyword_key(w) for w in existing}
    return tuple(w for w in wanted if keyword_key(w) not in have)
