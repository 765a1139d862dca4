"""Read what photocap cares about from a photo's metadata (embedded and sidecar).

:func:`read_metadata` answers: what do the description fields say, which one a
caption would come from, and whose words each is (:class:`~photocap.metadata.provenance.Owner`):
a person's, a model's written by photocap, or a camera's stock text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from photocap.errors import MetadataError
from photocap.metadata import containers, exif, fields, guard, iptc, sidecar, stock, xmp
from photocap.metadata.provenance import Owner, owner_of, parse_source
from photocap.records import CaptionSource

MAX_SIDECAR = 16 * 1024 * 1024
# The XMP properties photocap writes: where a file's packets disagree on these, the write settles it.
# (Not the keywords: photocap only adds to those, so packets disagreeing on them stay refused.)
_WRITTEN_KEYS = frozenset(
    xmp.key_of(prop) for tag, prop in fields.XMP_PROPERTIES.items() if tag not in fields.KEYWORD_SPECS
)


@dataclass(frozen=True)
class FieldValue:
    """One caption tag's value as found in the photo or its sidecar."""

    tag: str  # e.g. "XMP-dc:Description"
    value: str
    location: str  # "embedded" | "sidecar"
    by_photocap: bool  # the value is the description photocap recorded writing
    placeholder: bool  # not a person's words: empty, a camera's stock text, a machine string
    owner: Owner = Owner.PERSON
    stock: str | None = None  # why it is not a person's words (placeholder), e.g. "a file name"


@dataclass(frozen=True)
class KeywordValues:
    """The keywords one tag holds in the photo or its sidecar, in their order."""

    tag: str  # e.g. "XMP-dc:Subject"
    values: tuple[str, ...]
    location: str  # "embedded" | "sidecar"


@dataclass
class MetadataReport:
    """What photocap finds in one photo's metadata."""

    path: str
    format: str  # "jpeg", "png", "tiff", "webp", "gif", "bmp", "heif", "raw", ...
    embeddable: bool  # photocap can write into the file itself
    sidecar: str | None  # an existing XMP sidecar
    values: list[FieldValue] = field(default_factory=list)  # in read priority order
    caption: str | None = None  # what a caption would come from, if any
    caption_tag: str | None = None  # the tag it comes from
    caption_location: str | None = None  # "embedded" | "sidecar"
    caption_owner: Owner | None = None  # whose words the caption above is
    has_user_description: bool = False  # a person's words are there (whoever typed them in)
    written_by_photocap: bool = False  # the caption above is one photocap wrote
    photocap_source: CaptionSource | None = None  # whose words photocap recorded writing
    photocap_model: str | None = None
    keywords: list[str] = field(default_factory=list)  # every keyword found, once each (ignoring case)
    keyword_values: list[KeywordValues] = field(default_factory=list)  # ... and where each list is
    camera_make: str | None = None  # EXIF Make and Model (a description equal to them is stock)
    camera_model: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Location:
    """Parsed metadata of one place (the file itself or its sidecar), for the writer."""

    name: str  # "embedded" | "sidecar"
    tags: dict[str, str] = field(default_factory=dict)  # caption tag -> value
    keywords: dict[str, list[str]] = field(default_factory=dict)  # keyword tag -> its keywords
    provenance: dict[str, str] = field(default_factory=dict)  # photocap tags -> value
    doc: xmp.XmpDoc | None = None
    iptc: iptc.IptcBlock | None = None
    embedded: containers.Embedded | None = None
    problems: dict[str, str] = field(default_factory=dict)  # block ("XMP", "EXIF", "IPTC") -> why
    others: list[tuple[str, str]] = field(default_factory=list)  # (tag, value) of a duplicate XMP packet
    camera: tuple[str | None, str | None] = (None, None)  # EXIF Make, Model


def merged_xmp(packets: list[bytes]) -> xmp.XmpDoc:
    """One document from a file's XMP packets (normally one; a file may carry duplicates).

    MetadataError if a packet does not parse or two disagree on a property photocap does not
    write (the caption and provenance properties are about to be replaced anyway).
    """
    return xmp.merge([xmp.parse(packet) for packet in packets], _WRITTEN_KEYS)


def _read_xmp_into(loc: Location, packets: list[bytes]) -> None:
    if not packets:
        return
    try:
        docs = [xmp.parse(packet) for packet in packets]
    except MetadataError as exc:
        loc.problems["XMP"] = str(exc)
        return
    for doc in docs:  # a description in any packet counts (exiftool shows them all)
        for tag in (fields.XMP_DESCRIPTION, fields.XMP_ALT_TEXT, *fields.PROVENANCE_TAGS):
            value = xmp.get(doc, fields.XMP_PROPERTIES[tag])
            if value is None:
                continue
            if tag in fields.PROVENANCE_TAGS:
                loc.provenance.setdefault(tag, value.strip())
            elif not value.strip():
                continue
            elif tag not in loc.tags:
                loc.tags[tag] = value
            elif value.strip() != loc.tags[tag].strip():
                loc.others.append((tag, value))
        words = xmp.get_list(doc, fields.XMP_PROPERTIES[fields.XMP_SUBJECT])
        if words is not None:
            have = loc.keywords.setdefault(fields.XMP_SUBJECT, [])
            have += [w for w in words if w not in have]
    try:
        loc.doc = xmp.merge(docs, _WRITTEN_KEYS)
    except MetadataError as exc:
        loc.problems["XMP"] = str(exc)
        return
    problem = xmp.wrapper_problem(loc.doc)  # one it can put right is put right by the writer
    if problem is not None:
        loc.problems["XMP"] = problem


def read_embedded(kind: str, data: bytes) -> Location:
    """The embedded metadata of file bytes; MetadataError if the container is corrupt."""
    loc = Location("embedded", embedded=containers.extract(kind, data))
    emb = loc.embedded
    assert emb is not None
    _read_xmp_into(loc, emb.xmp)
    if emb.exif is not None:
        try:
            loc.tags.update(exif.read_text_tags(emb.exif))
            loc.camera = exif.read_camera(emb.exif)
        except MetadataError as exc:
            loc.problems["EXIF"] = str(exc)
    if emb.photoshop is not None:
        try:
            loc.iptc = iptc.load(emb.photoshop)
        except MetadataError as exc:
            loc.problems["IPTC"] = str(exc)
        else:
            if emb.photoshop_segments > 1:
                loc.problems["IPTC"] = "the Photoshop block spans several segments"
            caption = loc.iptc.caption if loc.iptc else None
            if caption:
                loc.tags[fields.IPTC_CAPTION] = caption
            if loc.iptc is not None and loc.iptc.keywords:
                loc.keywords[fields.IPTC_KEYWORDS] = loc.iptc.keywords
    return loc


def read_sidecar(path: Path) -> Location:
    """The metadata of an XMP sidecar file."""
    loc = Location("sidecar")
    try:
        with path.open("rb") as handle:
            packet = handle.read(MAX_SIDECAR + 1)
    except OSError as exc:
        raise MetadataError(f"{path}: can't read the sidecar ({exc.strerror or exc})") from exc
    if len(packet) > MAX_SIDECAR:
        loc.problems["XMP"] = "the sidecar is implausibly large"
        return loc
    _read_xmp_into(loc, [packet])
    return loc


def require_file(path: Path) -> None:
    """MetadataError unless ``path`` is a regular file (never opens a FIFO, which would block)."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MetadataError(f"{path}: no such file") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else (
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
        raise MetadataError(f"{path}: not a photo file: it is {what}")


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(16)
    except OSError as exc:
        raise MetadataError(f"{path}: can't read the file ({exc.strerror or exc})") from exc


def build_report(
    path: Path, kind: str, embeddable: bool, sidecar_path: Path | None, locations: list[Location],
    data: bytes | None = None,
) -> MetadataReport:
    """Combine parsed locations (in priority order) into a report. ``data``: the file's bytes
    as :func:`inspect` returned them (to tell whether a model's caption photocap wrote was
    written for this photo: :func:`photocap.metadata.containers.image_digest`)."""
    report = MetadataReport(
        str(path), kind, embeddable, str(sidecar_path) if sidecar_path else None
    )
    make, model = next((loc.camera for loc in locations if any(loc.camera)), (None, None))
    report.camera_make, report.camera_model = make, model
    # digest of a text photocap wrote -> whose words photocap recorded them to be
    written: dict[str, CaptionSource] = {}
    elsewhere: set[str] = set()  # digests of model captions photocap wrote for another photo
    image: list[str | None] = []  # this photo's image digest, computed once if needed
    for loc in locations:
        digest = loc.provenance.get(fields.XMP_PHOTOCAP_DIGEST)
        source = parse_source(loc.provenance.get(fields.XMP_PHOTOCAP_SOURCE))
        made_for = loc.provenance.get(fields.XMP_PHOTOCAP_IMAGE)
        if digest and source is CaptionSource.MODEL and made_for:
            if not image:
                image.append(containers.image_digest(kind, data, path))
            if made_for != image[0]:
                elsewhere.add(digest)
                continue
        if digest and source is not None:
            written.setdefault(digest, source)
    for loc in locations:
        for block, problem in loc.problems.items():
            report.warnings.append(f"{loc.name} {block}: {problem}")
        for spec in fields.CAPTION_TAGS:
            found = [loc.tags[spec.name]] if spec.name in loc.tags else []
            for value in found + [v for tag, v in loc.others if tag == spec.name]:
                report.values.append(_field_value(spec, value, loc.name, written, make, model, elsewhere))
        for spec in fields.KEYWORD_TAGS:
            words = [w for w in loc.keywords.get(spec.name, []) if w.strip()]
            if words:
                report.keyword_values.append(KeywordValues(spec.name, tuple(words), loc.name))
                report.keywords += fields.missing_keywords(report.keywords, fields.clean_keywords(words))
        if report.photocap_source is None and loc.provenance.get(fields.XMP_PHOTOCAP_SOURCE):
            report.photocap_source = parse_source(loc.provenance[fields.XMP_PHOTOCAP_SOURCE])
            report.photocap_model = loc.provenance.get(fields.XMP_PHOTOCAP_MODEL)
    real = [v for v in report.values if not v.placeholder]
    persons = [v for v in real if v.owner.persons]
    chosen = persons[0] if persons else (real[0] if real else None)
    if chosen is not None:
        report.caption = chosen.value.strip()
        report.caption_tag = chosen.tag
        report.caption_location = chosen.location
        report.caption_owner = chosen.owner
        report.written_by_photocap = chosen.by_photocap
    report.has_user_description = bool(persons)
    return report


def _field_value(
    spec: fields.TagSpec, value: str, location: str, written: dict[str, CaptionSource],
    make: str | None, model: str | None, elsewhere: frozenset[str] | set[str] = frozenset(),
) -> FieldValue:
    digests = (fields.caption_digest(value.strip()), fields.caption_digest(value))
    source = written.get(digests[0]) or written.get(digests[1])
    if source is None and elsewhere.intersection(digests):
        # a model's caption of other pixels (the photo was replaced or edited after photocap
        # wrote it, or the metadata was copied here): no one's description of this photo
        reason: str | None = "a model's caption photocap wrote for another photo"
    else:
        reason = None if source is not None else stock.stock_reason(
            value, make=make, model=model, prose_only=spec.prose_only
        )
    return FieldValue(
        spec.name, value, location, by_photocap=source is not None, placeholder=reason is not None,
        owner=owner_of(stock=reason is not None, photocap_source=source), stock=reason,
    )


def inspect(
    path: Path, *, sidecar_name: str = "ext"
) -> tuple[str, bytes | None, list[Location], Path | None]:
    """(kind, file bytes if embeddable, locations in priority order, existing sidecar)."""
    kind = containers.kind_of(path, _read_head(path))
    embeddable = containers.can_embed(path, kind)
    if not embeddable and not containers.is_photo(path, kind):
        raise MetadataError(f"{path}: not a photo format photocap handles ({kind})")
    data = None
    embedded: list[Location] = []
    if embeddable:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MetadataError(f"{path}: can't read the file ({exc.strerror or exc})") from exc
        try:
            embedded = [read_embedded(kind, data)]
        except MetadataError as exc:
            raise MetadataError(f"{path}: {exc}") from exc
    side_path = sidecar.find(path, sidecar_name)
    side = [read_sidecar(side_path)] if side_path else []
    return kind, data, (embedded + side if embeddable else side + embedded), side_path


@guard.guarded("read its metadata")
def read_metadata(path: str | Path) -> MetadataReport:
    """What photocap finds in a photo's metadata; MetadataError if it can't be read at all."""
    path = Path(path)
    require_file(path)
    kind, data, locations, side_path = inspect(path)
    return build_report(path, kind, containers.can_embed(path, kind), side_path, locations, data)
