"""A corpus of camera-like JPEGs and TIFFs carrying what cameras, phones and tools really
write into the description fields (the makers' own stock texts, a description equal to the
camera's name, digests and settings in UserComment), next to descriptions people wrote.

Each :class:`Sample` says what photocap must make of it: ``person`` is the text to adopt as
the user's caption, or None when no person wrote any of it (the model captions it and the
caption is written). Built fresh by :func:`build` (piexif for EXIF, exiftool for IPTC/XMP).
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

from metadata_samples import exiftool_set, gradient

ARMY = ("Operation Mountain Viper put the soldiers of A Company, 2nd Battalion, 22nd Infantry "
        "Regiment into the mountains of southern Afghanistan to search for Taliban fighters.")
HEX_DIGEST = hashlib.sha256(b"photocap corpus").hexdigest()  # 64 hex digits, as some phones write
XIAOMI = ("filter: 0; fileterIntensity: 0.0; filterMask: 0; brp_mask:0; brp_del_th:null; "
          "brp_del_sen:null; delta:null; module: photo;hw-remosaic: false;touch: (-1.0, -1.0);")


@dataclass(frozen=True)
class Sample:
    name: str
    make: str | None = None
    model: str | None = None
    description: str | None = None  # EXIF ImageDescription, as the camera stores it (padding kept)
    user_comment: bytes | None = None  # EXIF UserComment, with its 8-byte character code
    xp_comment: str | None = None  # EXIF XPComment (Windows Explorer's "Comments")
    iptc_caption: str | None = None  # IPTC Caption-Abstract (with Photoshop's IPTCDigest)
    xmp_description: str | None = None  # XMP dc:description (as Lightroom writes it)
    tiff: bool = False
    person: str | None = None  # what must be adopted; None: nobody's words, the model captions it
    extra: dict[str, str] = field(default_factory=dict)


def ascii_comment(text: str) -> bytes:
    return b"ASCII\x00\x00\x00" + text.encode("ascii")


SAMPLES: tuple[Sample, ...] = (
    Sample("sanyo.jpg", "SANYO Electric Co.,Ltd.", "SR6", description="SANYO DIGITAL CAMERA"),
    Sample("olympus.jpg", "OLYMPUS IMAGING CORP.", "E-M10", description="OLYMPUS DIGITAL CAMERA         "),
    Sample("sony.jpg", "SONY", "DSC-W120", description="SONY DSC                       "),
    Sample("kodak.jpg", "EASTMAN KODAK COMPANY", "KODAK EASYSHARE C875 ZOOM DIGITAL CAMERA",
           description="KODAK Digital Still Camera"),
    Sample("pentax.jpg", "PENTAX Corporation", "PENTAX Optio S5i", description="PENTAX DIGITAL CAMERA"),
    Sample("minolta.tif", "KONICA MINOLTA", "DiMAGE Z6", description="KONICA MINOLTA DIGITAL CAMERA",
           tiff=True),
    Sample("leica.tif", "LEICA", "M8 Digital Camera", description="LEICA DIGITAL CAMERA", tiff=True),
    Sample("digimax.jpg", "Samsung Techwin", "<Digimax i50 MP3, Samsung #1 MP3>",
           description="<Digimax i50 MP3, Samsung #1 MP3>"),
    Sample("wwl.jpg", "WWL", "WWL DC-500", description="WWL"),
    Sample("gt5.jpg", "Sony Computer Entertainment Inc.", "Gran Turismo 5", description="Gran Turismo 5"),
    Sample("samsung-phone.jpg", "SAMSUNG", "SM-G930F", description="Exif_JPEG_PICTURE"),
    Sample("gopro.jpg", "GoPro", "HERO4 Silver", description="DCIM\\100GOPRO\\GOPR0001.JPG"),
    Sample("nikon-blank.jpg", "NIKON", "COOLPIX P6000", description=" " * 31,
           user_comment=ascii_comment(" " * 36)),
    Sample("canon-nulls.jpg", "Canon", "Canon EOS 400D DIGITAL", user_comment=b"\x00" * 264),
    Sample("huawei-digest.jpg", "HUAWEI", "ELE-L29", user_comment=ascii_comment(HEX_DIGEST)),
    Sample("xiaomi.jpg", "Xiaomi", "Redmi Note 8", user_comment=ascii_comment(XIAOMI)),
    Sample("oneplus.jpg", "OnePlus", "IN2013", user_comment=ascii_comment("oplus_1048576")),
    Sample("iptc-stock.jpg", "OLYMPUS CORPORATION", "TG-5", iptc_caption="OLYMPUS DIGITAL CAMERA"),
    Sample("vsco.jpg", "Apple", "iPhone 8", xmp_description="Processed with VSCO with a6 preset"),
    # people's words
    Sample("army.jpg", "NIKON CORPORATION", "NIKON D2X", description=ARMY, person=ARMY),
    Sample("lightroom.jpg", "Canon", "Canon EOS 5D Mark IV",
           xmp_description="Grandma's roses in the back garden", person="Grandma's roses in the back garden"),
    Sample("iptc-person.jpg", "FUJIFILM", "X-T3", iptc_caption="Eiffel Tower at dusk, Paris",
           person="Eiffel Tower at dusk, Paris"),
    Sample("tiff-person.tif", "Nikon", "LS-5000", description="Katze auf dem Sofa, 1987", tiff=True,
           person="Katze auf dem Sofa, 1987"),
    Sample("windows.jpg", "Panasonic", "DMC-FZ200", xp_comment="Our house in winter",
           person="Our house in winter"),
    Sample("comment-prose.jpg", "Canon", "Canon PowerShot G7 X",
           user_comment=ascii_comment("Picnic at the lake with the kids"),
           person="Picnic at the lake with the kids"),
    Sample("stock-and-person.jpg", "OLYMPUS IMAGING CORP.", "E-PL7", description="OLYMPUS DIGITAL CAMERA",
           xmp_description="The harbour at Honfleur", person="The harbour at Honfleur"),
)

BROKEN = ("truncated.jpg", "not-a-photo.jpg", "empty.tif")


def _exif(s: Sample, seed: int) -> bytes:
    import piexif

    thumb = io.BytesIO()
    gradient((16, 12)).save(thumb, "JPEG")
    zeroth: dict[int, object] = {piexif.ImageIFD.XResolution: (72, 1), piexif.ImageIFD.YResolution: (72, 1),
                                 piexif.ImageIFD.ResolutionUnit: 2, piexif.ImageIFD.Software: b"Ver.1.00"}
    if s.make:
        zeroth[piexif.ImageIFD.Make] = s.make.encode("latin-1")
    if s.model:
        zeroth[piexif.ImageIFD.Model] = s.model.encode("latin-1")
    if s.description is not None:
        zeroth[piexif.ImageIFD.ImageDescription] = s.description.encode("utf-8")
    if s.xp_comment is not None:
        zeroth[piexif.ImageIFD.XPComment] = tuple(s.xp_comment.encode("utf-16-le") + b"\x00\x00")
    exif: dict[int, object] = {
        piexif.ExifIFD.DateTimeOriginal: f"2019:0{1 + seed % 9}:1{seed % 10} 10:2{seed % 10}:00".encode(),
        piexif.ExifIFD.ExposureTime: (1, 125 + seed), piexif.ExifIFD.FNumber: (28 + seed % 20, 10),
        piexif.ExifIFD.ISOSpeedRatings: 100 + seed,
        piexif.ExifIFD.MakerNote: b"MAKERNOTE" + bytes((seed + i) % 256 for i in range(48)),
    }
    if s.user_comment is not None:
        exif[piexif.ExifIFD.UserComment] = s.user_comment
    gps = {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((45, 1), (seed % 60, 1), (0, 1))}
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps, "1st": {}, "thumbnail": thumb.getvalue()})


def _image(seed: int):  # type: ignore[no-untyped-def]
    img = gradient((120, 90))
    img.putpixel((seed % 120, seed % 90), (seed * 37 % 256, 200, 10))
    return img


def build(folder: Path) -> dict[str, Sample]:
    """Write the corpus into ``folder``; return name -> sample (broken files are not listed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, s in enumerate(SAMPLES):
        path = folder / s.name
        if s.tiff:
            info = {270: s.description} if s.description is not None else {}
            if s.make:
                info[271] = s.make
            if s.model:
                info[272] = s.model
            _image(seed).save(path, "TIFF", tiffinfo=info)
        else:
            _image(seed).save(path, "JPEG", quality=88, exif=_exif(s, seed))
        args = []
        if s.iptc_caption is not None:
            args += [f"-IPTC:Caption-Abstract={s.iptc_caption}", "-IPTC:Keywords=corpus", "-IPTCDigest=new"]
        if s.xmp_description is not None:
            args += [f"-XMP-dc:Description={s.xmp_description}", "-XMP-xmp:Rating=3"]
        if args:
            exiftool_set(path, *args)
    good = (folder / "sanyo.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "not-a-photo.jpg").write_bytes(b"<html>this is not a photo</html>")
    (folder / "empty.tif").write_bytes(b"")
    return {s.name: s for s in SAMPLES}


def jpeg_image_data(data: bytes) -> bytes:
    """Everything from the first SOS marker on."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return data[pos:]
