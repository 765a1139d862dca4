"""Only a person's words count as a person's: text cameras, phones and tools write by themselves.

A description found in a photo is adopted as the user's caption (and protected from being
overwritten), so text that no person wrote must not pass for one. :func:`stock_reason` says
why a value is not a person's words, or returns ``None`` when it may be. The rule, in order:

1. empty, or only spaces, NULs and punctuation ("no words");
2. a known stock text (:data:`STOCK_TEXTS`: "OLYMPUS DIGITAL CAMERA", "SANYO DIGITAL CAMERA",
   "SONY DSC" ...), any "<maker> DIGITAL CAMERA" / "<maker> DSC", or a known tool's stamp
   (:data:`STOCK_PREFIXES`: "Created with GIMP", "Processed with VSCO" ...);
3. the camera's own name: equal to EXIF Make, Model, or both ("Gran Turismo 5",
   "<Digimax i50 MP3, Samsung #1 MP3>"), ignoring case, spaces, brackets and punctuation;
4. machine-looking strings: hex digests and UUIDs, base64-like blobs, file names and paths
   ("DCIM\\100GOPRO\\GOPR0001.JPG", "IMG_1234"), identifiers with no spaces
   ("oplus_1048576"), "key: value;" settings lists, binary noise;
5. for fields that are comments rather than descriptions (EXIF UserComment, where phones and
   cameras store their settings), only prose counts: at least two words of letters.

Which fields are read at all, and which are comment-like, is the table in
:mod:`photocap.metadata.fields` (``TagSpec.prose_only``). Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata

# Exact stock texts (compared after :func:`normalise`), as cameras and tools write them.
STOCK_TEXTS = frozenset(
    {
        "olympus digital camera", "sanyo digital camera", "sony dsc", "konica minolta digital camera",
        "minolta digital camera", "samsung digital camera", "leica digital camera",
        "pentax digital camera", "nikon digital camera", "fujifilm digital camera",
        "kodak digital still camera", "eastman kodak company", "casio digital camera",
        "ricoh digital camera", "digital camera", "digital still camera", "camera", "dcim", "default",
        "image", "picture", "photo", "photograph", "jpeg", "jpg", "exif jpeg", "exif_jpeg_picture",
        "exif_jpeg_420", "exif_jpeg_422", "samsung camera pictures", "screenshot", "untitled",
        "untitled image", "no description", "description", "image description", "none", "n/a",
        "na", "null", "unknown", "hdr", "panorama", "portrait", "my beautiful picture",
        "lead technologies inc. v1.01", "created with gimp", "processed with vsco",
    }
)  # fmt: skip

# Stamps that tools put before or instead of a description ("Processed with VSCO with a6 preset").
STOCK_PREFIXES = (
    "created with gimp", "processed with vsco", "lead technologies", "optimized by jpegmini",
    "compressed by jpeg-recompress", "edited with google photos", "edited with snapseed",
)  # fmt: skip
# Phones' and watermark apps' stamps: "Shot on iPhone", "Shot with my Pixel".
_PHONE_STAMP = re.compile(
    r"^(shot|taken|captured) (on|with) (my |an? )?(iphone|ipad|pixel|oneplus|galaxy|samsung|huawei|"
    r"xiaomi|redmi|poco|oppo|vivo|realme|honor|nokia|moto|motorola|sony|lg)\b[\w .+-]*$"
)
# "<MAKER> DIGITAL CAMERA", "<MAKER> DSC" in capitals, as the firmware writes it.
_MAKER_STOCK = re.compile(r"^[A-Z][A-Z0-9.&,-]*( [A-Z0-9.&,-]+){0,2} (DIGITAL (STILL )?CAMERA|DSC)$")
_HEX = re.compile(r"^(0x)?[0-9a-f]{16,}$")
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]{24,}={0,2}$")
_FILE_NAME = re.compile(
    r"^([\w .~-]*[\\/])*[\w .~-]*\.(jpe?g|png|tiff?|gif|bmp|webp|heic|heif|dng|raw|cr[23w]|nef|arw|"
    r"orf|rw2|raf|mp4|mov|avi)$",
    re.IGNORECASE,
)
_CAMERA_FILE = re.compile(
    r"^(img|dsc|dscn|dscf|dsci|pict|pic|gopr|gp|dji|mvimg|pxl|vid|sam|imag|cimg|p|_mg|dcim)"
    r"[_-]?\d{3,}([_-]\w*)?$",
    re.IGNORECASE,
)
_SETTINGS = re.compile(r"[\w\- ]+\s*[:=]\s*[^;,]*[;,]")
_WORD = re.compile(r"[^\W\d_]{2,}")


def normalise(text: str) -> str:
    """Case-folded, NFKC, NULs and runs of white space collapsed: how texts are compared."""
    text = unicodedata.normalize("NFKC", text).replace("\x00", " ")
    return " ".join(text.split()).casefold()


def _squash(text: str) -> str:
    """Letters and digits only: "<Digimax i50 MP3, Samsung #1 MP3>" -> "digimaxi50mp3samsung1mp3"."""
    return "".join(ch for ch in normalise(text) if ch.isalnum())


def _same_as_camera(text: str, make: str | None, model: str | None) -> bool:
    value = _squash(text)
    if not value:
        return False
    names = {_squash(n) for n in (make, model) if n}
    if make and model:
        names.add(_squash(f"{make} {model}"))
        names.add(_squash(f"{make.split()[0]} {model}"))
    names.discard("")
    return value in names


def _machine_like(text: str) -> str | None:
    stripped = text.strip()
    compact = stripped.replace(" ", "")
    low = compact.lower()
    if _HEX.match(low) or _UUID.match(low):
        return "a digest or identifier, not words"
    if _FILE_NAME.match(stripped) or _CAMERA_FILE.match(stripped):
        return "a file name"
    if sum(1 for ch in stripped if not ch.isprintable() or ch == "\ufffd") > max(2, len(stripped) // 10):
        return "binary data"
    if len(_SETTINGS.findall(stripped + ";")) >= 2:
        return "a list of camera settings"
    if " " not in stripped:
        if _BASE64.match(stripped) and any(ch.isdigit() for ch in stripped):
            return "encoded data, not words"
        if any(ch.isdigit() for ch in stripped) and ("_" in stripped or stripped.isupper()):
            return "an identifier, not words"
        if "_" in stripped and stripped.upper() == stripped:
            return "an identifier, not words"
    return None


def stock_reason(
    value: str | None, *, make: str | None = None, model: str | None = None, prose_only: bool = False
) -> str | None:
    """Why ``value`` is not a person's words (a short phrase), or None if it may be.

    ``make`` and ``model`` are the photo's EXIF Make and Model; ``prose_only`` is set for
    comment-like fields (EXIF UserComment), where only sentences count.
    """
    if value is None:
        return "empty"
    text = normalise(value)
    if not _WORD.search(text) and not any(ch.isalpha() for ch in text if not ch.isascii()):
        return "no words" if text else "empty"
    if text in STOCK_TEXTS or _MAKER_STOCK.match(" ".join(value.replace("\x00", " ").split())):
        return "a camera's stock text"
    if text.startswith(STOCK_PREFIXES) or _PHONE_STAMP.match(text):
        return "a tool's stock text"
    if _same_as_camera(value, make, model):
        return "the camera's make or model"
    machine = _machine_like(value)
    if machine:
        return machine
    if prose_only and len(_WORD.findall(text)) < 2:
        return "not a sentence (only sentences count in this comment field)"
    return None

