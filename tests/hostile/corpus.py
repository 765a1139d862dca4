"""A corpus of broken and odd image files, deterministic from a seed.

Independent of photocap (Pillow, zlib and the standard library only), so what it
builds is not shaped by the code it tests. :func:`build` writes every file into a
folder and returns one :class:`Case` per file: every supported format (JPEG, PNG,
TIFF, WebP, GIF, BMP, and HEIC when pillow-heif is installed), each intact with
metadata, truncated, with flipped bytes, with bad segment/chunk lengths, with
duplicated segments and chunks, with hostile XMP (deep nesting, entities, unknown
encodings, huge packets); odd names (unicode, newlines, 240+ bytes, a leading
dash); FIFOs, zero-byte files, non-images with image suffixes, read-only files
and a read-only folder.

The same seed always gives the same bytes and names. ``per_format`` scales the
number of random truncations and byte flips.
"""

from __future__ import annotations

import io
import os
import random
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

NS = (
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
)
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
SUFFIX = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "gif": ".gif", "bmp": ".bmp",
          "heic": ".heic"}
PERSON = "Grandma's garden, summer 1994"


@dataclass(frozen=True)
class Case:
    path: Path
    format: str  # one of SUFFIX, or "other" (non-images, specials)
    what: str  # how the file was made, e.g. "truncated at 412 of 1530 bytes"
    special: str = ""  # "fifo", "readonly", "readonly-folder", "symlink" or ""


# --- XMP packets ----------------------------------------------------------------------------


def xmp_packet(inner: str = "", *, head: str = "", about: str = "") -> bytes:
    """A well-formed XMP packet with ``inner`` inside its rdf:Description."""
    return (
        f'{head}<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF {NS}>'
        f'<rdf:Description rdf:about="{about}">{inner}</rdf:Description></rdf:RDF></x:xmpmeta>'
    ).encode("utf-8")


def lang_alt(tag: str, text: str) -> str:
    return f'<{tag}><rdf:Alt><rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt></{tag}>'


def description(text: str) -> str:
    return lang_alt("dc:description", text)


RICH_XMP = xmp_packet(
    "<dc:creator><rdf:Seq><rdf:li>Ana Núñez</rdf:li></rdf:Seq></dc:creator>"
    "<dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>beach</rdf:li></rdf:Bag></dc:subject>"
    "<xmp:Rating>4</xmp:Rating><photoshop:City>Porto</photoshop:City>"
)


def deep_xmp(depth: int) -> bytes:
    return xmp_packet('<dc:x xmlns:dc="urn:deep">' + "<dc:n>" * depth + "</dc:n>" * depth + "</dc:x>")


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + "]>"
).encode() + xmp_packet(description("&i;"))


def hostile_packets(rng: random.Random) -> dict[str, bytes]:
    """name -> packet: every kind of hostile or odd XMP."""
    items, size = [], 0
    while size < 59_000:  # a packet just under one JPEG segment's 65,533 bytes
        items.append(f"<rdf:li>{'w' * 40}{len(items)}</rdf:li>")
        size += len(items[-1])
    return {
        "deep-3000": deep_xmp(3000),
        "deep-150": deep_xmp(150),
        "billion-laughs": BILLION_LAUGHS,
        "external-entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        + xmp_packet(description("&e;")),
        "unknown-encoding": b'<?xml version="1.0" encoding="x-unknown"?>' + xmp_packet(description("a")),
        "utf16-declared": b'<?xml version="1.0" encoding="UTF-16"?>' + xmp_packet(description("a")),
        "shift-jis-declared": b'<?xml version="1.0" encoding="Shift_JIS"?>' + xmp_packet(description("a")),
        "near-jpeg-limit": xmp_packet(f"<dc:subject><rdf:Bag>{''.join(items)}</rdf:Bag></dc:subject>"),
        "invalid-utf8": xmp_packet(description("cafX")).replace(b"cafX", b"caf\xe9\xff"),
        "not-xml": b"<x:xmpmeta><<<>>>" + bytes(rng.randrange(256) for _ in range(64)),
        "no-rdf": b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><foo/></x:xmpmeta>',
        "empty": b"",
        "control-chars": xmp_packet(description("a\x01b")).replace(b"a\x01b", b"a&#1;b"),
        "person-description": xmp_packet(description(PERSON)),
        "stock-camera-text": xmp_packet(description("OLYMPUS DIGITAL CAMERA")),
        "attribute-form": xmp_packet().replace(b'rdf:about=""', b'rdf:about="" xmp:Rating="3" '
                                               b'xmp:CreatorTool="Hostile 1.0"'),
        "comments-and-pis": xmp_packet("<!-- keep me --><?pi data?><xmp:Rating>2</xmp:Rating>"),
        # other tools read no property inside a wrapper of another namespace
        "corrupt-xmpmeta-namespace": RICH_XMP.replace(b'xmlns:x="adobe:ns:meta/"', b'xmlns:x="adobe:ns:meta/#"'),
        # fits one JPEG segment, but not with a caption added
        "over-jpeg-limit-with-a-caption": xmp_packet(
            f"<dc:subject><rdf:Bag>{''.join(items)}</rdf:Bag></dc:subject><xmp:Label>{'z' * 5_800}</xmp:Label>"),
    }


# --- well-formed files with metadata ------------------------------------------------------


def _image(rng: random.Random, size: tuple[int, int] = (48, 32), mode: str = "RGB") -> Image.Image:
    ox, oy = rng.randrange(256), rng.randrange(256)
    image = Image.new("RGB", size)
    image.putdata([((x * 5 + ox) % 256, (y * 7 + oy) % 256, (x * y + ox) % 256)
                   for y in range(size[1]) for x in range(size[0])])
    return image.convert(mode)


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "HostileCam"  # Make
    exif[0x0110] = "HC-1"  # Model
    exif[0x013B] = "Ana Núñez"  # Artist
    exif[0x0132] = "2024:05:06 07:08:09"  # DateTime
    return exif.tobytes()


def _iptc_app13(caption: str | None = None) -> bytes:
    """A Photoshop APP13 segment with IPTC keywords, city (and a caption)."""
    records = b""
    for dataset, value in ((25, "holiday"), (90, "Lisbon"), *(((120, caption),) if caption else ())):
        data = value.encode("utf-8")
        records += b"\x1c\x02" + bytes((dataset,)) + struct.pack(">H", len(data)) + data
    records = b"\x1c\x01\x5a\x00\x03\x1b\x25\x47" + records  # CodedCharacterSet: UTF-8
    pad = b"\x00" if len(records) % 2 else b""
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(records)) + records + pad
    payload = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def _app1_xmp(packet: bytes) -> bytes:
    payload = XMP_ID + packet
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_bytes(rng: random.Random, *, packets: list[bytes] = (), iptc: bool = False, exif: bool = True) -> bytes:
    buf = io.BytesIO()
    kwargs = {"exif": _exif()} if exif else {}
    _image(rng).save(buf, "JPEG", quality=80, **kwargs)
    data = buf.getvalue()
    # After SOI and any APP0/APP1 Pillow wrote: the XMP and IPTC segments.
    pos = 2
    while data[pos + 1] in (0xE0, 0xE1):
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    extra = b"".join(_app1_xmp(p) for p in packets) + (_iptc_app13() if iptc else b"")
    return data[:pos] + extra + data[pos:]


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def _png_xmp_chunk(packet: bytes, compressed: bool = False) -> bytes:
    text = zlib.compress(packet) if compressed else packet
    return _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00" + (b"\x01\x00" if compressed else b"\x00\x00")
                      + b"\x00\x00" + text)


def png_bytes(rng: random.Random, *, packets: list[bytes] = (), exif: bool = False, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    _image(rng, mode="RGBA" if rng.random() < 0.3 else "RGB").save(buf, "PNG")
    data = buf.getvalue()
    first_idat = data.index(b"IDAT") - 4
    extra = b"".join(_png_xmp_chunk(p, compressed) for p in packets)
    extra += _png_chunk(b"tEXt", b"Author\x00Ana") + (_png_chunk(b"eXIf", _exif()[6:]) if exif else b"")
    return data[:first_idat] + extra + data[first_idat:]


def tiff_bytes(rng: random.Random, packet: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    info = {270: "", 271: "HostileCam", 272: "HC-1", 315: "Ana Núñez"}
    del info[270]
    if packet is not None:
        info[700] = packet
    _image(rng).save(buf, "TIFF", tiffinfo=info, compression=rng.choice(["raw", "tiff_lzw"]))
    return buf.getvalue()


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"WEBP" + b"".join(c + struct.pack("<I", len(d)) + d + (b"\x00" if len(d) % 2 else b"")
                              for c, d in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, chunks = 12, []
    while pos + 8 <= len(data):
        fourcc, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + size % 2
    return chunks


def webp_bytes(rng: random.Random, *, packets: list[bytes] = (), lossless: bool = False) -> bytes:
    buf = io.BytesIO()
    if packets:
        _image(rng).save(buf, "WEBP", lossless=lossless, exif=_exif(), xmp=packets[0])
        chunks = webp_chunks(buf.getvalue())
        chunks += [(b"XMP ", p) for p in packets[1:]]
        return _riff(chunks)
    _image(rng).save(buf, "WEBP", lossless=lossless)
    return buf.getvalue()


def simple_bytes(rng: random.Random, fmt: str) -> bytes:
    buf = io.BytesIO()
    image = _image(rng)
    if fmt == "gif":
        image.convert("P").save(buf, "GIF", comment=b"a hostile gif")
    elif fmt == "bmp":
        image.save(buf, "BMP")
    else:  # heic
        import pillow_heif  # type: ignore[import-not-found]

        pillow_heif.register_heif_opener()
        image.save(buf, "HEIF", quality=60)
    return buf.getvalue()


# --- damage ---------------------------------------------------------------------------------


def truncations(data: bytes, rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    cuts = sorted({1, 2, len(data) // 2, len(data) - 2, len(data) - 1,
                   *(rng.randrange(1, len(data)) for _ in range(n))})
    return [(f"truncated at {c} of {len(data)} bytes", data[:c]) for c in cuts[: n + 2]]


def byte_flips(data: bytes, rng: random.Random, n: int, header: int = 512) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        flipped = bytearray(data)
        span = min(len(data), header) if i % 2 == 0 else len(data)
        positions = sorted(rng.randrange(span) for _ in range(1 + i % 4))
        for pos in positions:
            flipped[pos] ^= 1 << rng.randrange(8) or 0xFF
        out.append((f"bytes flipped at {positions}", bytes(flipped)))
    return out


def _jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each header segment (SOI excluded, up to SOS)."""
    pos, found = 2, []
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        found.append((pos, end))
        pos = end
    return found


def jpeg_structural(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    segs = _jpeg_segments(data)
    out = []
    for length in (0, 1, 0xFFFF):
        start, _ = segs[rng.randrange(len(segs))]
        out.append((f"segment length {length}", data[: start + 2] + struct.pack(">H", length) + data[start + 4 :]))
    start, end = segs[0]
    out.append(("first segment duplicated 3 times", data[:end] + data[start:end] * 3 + data[end:]))
    xmp_seg = next(((s, e) for s, e in segs if data[s + 4 : s + 4 + len(XMP_ID)] == XMP_ID), None)
    if xmp_seg:
        s, e = xmp_seg
        out.append(("XMP segment duplicated", data[:e] + data[s:e] + data[e:]))
    eoi = data.rfind(b"\xff\xd9")
    out.append(("no end-of-image marker", data[:eoi]))
    out.append(("trailer after end-of-image", data + b"TRAILER-BYTES\x00\x01" * 8))
    out.append(("fill bytes before a marker", data[:2] + b"\xff" * 7 + data[2:]))
    out.append(("no image data", data[:segs[-1][1]] + b"\xff\xd9"))
    return out


def _png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    pos, found = 8, []
    while pos + 12 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        found.append((pos, pos + 12 + length, ctype))
        pos += 12 + length
    return found


def png_structural(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    chunks = _png_chunks(data)
    idat = next(c for c in chunks if c[2] == b"IDAT")
    iend = next(c for c in chunks if c[2] == b"IEND")
    out = [
        ("bad CRC on IDAT", data[: idat[1] - 4] + b"\x00\x00\x00\x00" + data[idat[1] :]),
        ("huge chunk length", data[: idat[0]] + b"\x7f\xff\xff\xff" + data[idat[0] + 4 :]),
        ("trailer after IEND", data + b"TRAILER-BYTES" * 5),
        ("no IEND", data[: iend[0]]),
        ("no IDAT", data[: idat[0]] + data[idat[1] :]),
        ("IDAT duplicated", data[: idat[1]] + data[idat[0] : idat[1]] + data[idat[1] :]),
        ("zlib bomb XMP chunk", data[: idat[0]]
         + _png_xmp_chunk(b"<x>" + b" " * (40 * 1024 * 1024) + b"</x>", compressed=True) + data[idat[0] :]),
    ]
    return out


def tiff_structural(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    bo = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(bo + "I", data[4:8])[0]
    count = struct.unpack(bo + "H", data[ifd : ifd + 2])[0]
    next_at = ifd + 2 + 12 * count
    return [
        ("IFD offset past the end", data[:4] + struct.pack(bo + "I", len(data) + 1000) + data[8:]),
        ("IFD loops to itself", data[:next_at] + struct.pack(bo + "I", ifd) + data[next_at + 4 :]),
        ("IFD entry count 65535", data[:ifd] + struct.pack(bo + "H", 0xFFFF) + data[ifd + 2 :]),
        ("first tag count huge", data[: ifd + 6] + struct.pack(bo + "I", 0x7FFFFFFF) + data[ifd + 10 :]),
    ]


def webp_structural(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    size = struct.unpack("<I", data[4:8])[0]
    return [
        ("RIFF size too big", data[:4] + struct.pack("<I", size + 100) + data[8:]),
        ("RIFF size too small", data[:4] + struct.pack("<I", max(4, size - 20)) + data[8:]),
        ("first chunk length huge", data[:16] + struct.pack("<I", 0xFFFFFFF0) + data[20:]),
        ("data after the RIFF container", data + b"EXTRA"),
    ]


STRUCTURAL = {"jpeg": jpeg_structural, "png": png_structural, "tiff": tiff_structural, "webp": webp_structural}


def _with_packets(fmt: str, rng: random.Random, packets: list[bytes]) -> bytes:
    if fmt == "jpeg":
        return jpeg_bytes(rng, packets=packets, iptc=rng.random() < 0.5)
    if fmt == "png":
        return png_bytes(rng, packets=packets, exif=rng.random() < 0.5)
    if fmt == "webp":
        return webp_bytes(rng, packets=packets, lossless=rng.random() < 0.5)
    return tiff_bytes(rng, packets[0] or None)  # libtiff refuses an empty XMP tag


def format_files(fmt: str, rng: random.Random, per_format: int) -> list[tuple[str, bytes]]:
    """(what, bytes) for one format: intact, damaged, and (where it holds XMP) hostile packets."""
    if fmt in ("gif", "bmp", "heic"):
        base = simple_bytes(rng, fmt)
        files = [("intact", base), ("intact, second", simple_bytes(rng, fmt))]
    else:
        base = _with_packets(fmt, rng, [RICH_XMP])
        files = [("intact, with EXIF and XMP", base), ("intact, no metadata", {
            "jpeg": lambda: jpeg_bytes(rng, exif=False), "png": lambda: png_bytes(rng),
            "webp": lambda: webp_bytes(rng), "tiff": lambda: tiff_bytes(rng)}[fmt]())]
        files += [(f"XMP: {name}", _with_packets(fmt, rng, [packet]))
                  for name, packet in hostile_packets(rng).items()]
        if fmt != "tiff":
            files += [
                ("two XMP packets, a person's description in the second",
                 _with_packets(fmt, rng, [RICH_XMP, xmp_packet(description(PERSON))])),
                ("two XMP packets, disjoint properties",
                 _with_packets(fmt, rng, [RICH_XMP, xmp_packet("<xmp:Label>Red</xmp:Label>")])),
                ("two identical XMP packets", _with_packets(fmt, rng, [RICH_XMP, RICH_XMP])),
                ("two XMP packets that disagree on a rating",
                 _with_packets(fmt, rng, [RICH_XMP, xmp_packet("<xmp:Rating>1</xmp:Rating>")])),
            ]
        if fmt == "png":
            files.append(("compressed XMP chunk", png_bytes(rng, packets=[RICH_XMP], compressed=True)))
        files += STRUCTURAL[fmt](base, rng)
    n = max(2, per_format // 4)
    files += truncations(base, rng, n)
    files += byte_flips(base, rng, n)
    return files


# --- names and specials -----------------------------------------------------------------------


ODD_STEMS = [
    "café ☕ 咖啡", "new\nline", "tab\there", " leading space", "-dash", "--double-dash", "UPPER",
    "emoji 🐱🐶", "rtl \u202eexe.gpj", "dots...in.name", "x" * 235, "é" * 120,
]


def _name(fmt: str, i: int, rng: random.Random) -> str:
    suffix = SUFFIX[fmt] if rng.random() < 0.9 else SUFFIX[fmt].upper()
    if i % 7 == 3:
        stem = ODD_STEMS[(i // 7) % len(ODD_STEMS)]
        limit = 255 - len(suffix.encode())
        while len((stem + f" {i}").encode()) > limit:
            stem = stem[:-1]
        return f"{stem} {i}{suffix}"
    return f"{fmt}-{i:03d}{suffix}"


def _specials(root: Path, rng: random.Random) -> list[Case]:
    cases = []
    others = root / "other"
    others.mkdir()

    def put(name: str, data: bytes, what: str) -> None:
        path = others / name
        path.write_bytes(data)
        cases.append(Case(path, "other", what))

    for suffix in (".jpg", ".png", ".tif", ".webp", ".gif", ".bmp", ".heic", ".JPEG"):
        put(f"zero-byte{suffix}", b"", "zero bytes")
    put("text.jpg", b"this is not a photo\n" * 20, "text with a .jpg suffix")
    put("random.png", bytes(rng.randrange(256) for _ in range(3000)), "random bytes with a .png suffix")
    put("pdf.tif", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "a PDF named .tif")
    put("zip.webp", b"PK\x03\x04" + bytes(100), "a ZIP header named .webp")
    put("html.gif", b"<html><body>not a gif</body></html>", "HTML named .gif")
    put("png-named.jpg", png_bytes(rng, packets=[RICH_XMP]), "a PNG named .jpg")
    put("jpeg-named.png", jpeg_bytes(rng, packets=[RICH_XMP]), "a JPEG named .png")
    put("riff-avi.webp", b"RIFF\x10\x00\x00\x00AVI LIST\x04\x00\x00\x00abcd", "a RIFF/AVI named .webp")
    put("only-soi.jpg", b"\xff\xd8", "just a JPEG SOI marker")
    put("only-signature.png", b"\x89PNG\r\n\x1a\n", "just the PNG signature")
    put("tiny-tiff.tif", b"II*\x00\x08\x00\x00\x00", "a TIFF header with no IFD")
    fifo = others / "pipe.jpg"
    os.mkfifo(fifo)
    cases.append(Case(fifo, "other", "a FIFO named .jpg", "fifo"))
    link = others / "dangling.jpg"
    link.symlink_to(others / "nowhere.jpg")
    cases.append(Case(link, "other", "a dangling symlink", "symlink"))
    # Read-only files, and a read-only folder of photos.
    for i, data in enumerate((jpeg_bytes(rng, packets=[RICH_XMP]), png_bytes(rng), webp_bytes(rng, packets=[RICH_XMP]))):
        path = others / f"readonly-{i}{('.jpg', '.png', '.webp')[i]}"
        path.write_bytes(data)
        path.chmod(0o444)
        cases.append(Case(path, ("jpeg", "png", "webp")[i], "read-only file", "readonly"))
    locked = root / "readonly-folder"
    locked.mkdir()
    for i, data in enumerate((jpeg_bytes(rng, packets=[RICH_XMP]), tiff_bytes(rng, RICH_XMP))):
        path = locked / f"in-locked-folder-{i}{('.jpg', '.tif')[i]}"
        path.write_bytes(data)
        cases.append(Case(path, ("jpeg", "tiff")[i], "in a read-only folder", "readonly-folder"))
    locked.chmod(0o555)
    return cases


def formats() -> list[str]:
    """The formats the corpus covers here (HEIC only where pillow-heif can write it)."""
    found = ["jpeg", "png", "tiff", "webp", "gif", "bmp"]
    try:
        simple_bytes(random.Random(0), "heic")
    except Exception:  # noqa: BLE001 - no pillow-heif, or no encoder in it
        return found
    return found + ["heic"]


def build(root: Path, seed: int = 0, per_format: int = 40) -> list[Case]:
    """Write the corpus under ``root`` (which must be empty); one Case per file."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    for fmt in formats():
        folder = root / fmt
        folder.mkdir()
        for i, (what, data) in enumerate(format_files(fmt, rng, per_format)):
            path = folder / _name(fmt, i, rng)
            path.write_bytes(data)
            cases.append(Case(path, fmt, what))
    cases += _specials(root, rng)
    return cases


def unlock(root: Path) -> None:
    """Make everything under ``root`` writable again (so it can be deleted)."""
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    Path(root).chmod(Path(root).stat().st_mode | stat.S_IWUSR)
