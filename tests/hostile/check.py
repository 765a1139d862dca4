"""What a hostile run must leave behind: snapshots of files before, and the checks after.

Independent of photocap: file bytes (SHA-256), decoded pixels (Pillow) and every tag
exiftool reads (where it is installed), compared before and after photocap ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

# Tags that may differ after photocap writes a caption (besides what photocap itself writes).
VOLATILE_GROUPS = ("System:", "ExifTool:", "SourceFile", "File:", "Composite:", "XMP-photocap:")
VOLATILE_TAGS = {
    "IFD0:ImageDescription", "IFD0:XPComment", "ExifIFD:UserComment", "XMP-dc:Description",
    "XMP-iptcCore:AltTextAccessibility", "IPTC:Caption-Abstract", "IPTC:CodedCharacterSet",
    "Photoshop:IPTCDigest", "XMP-x:XMPToolkit", "IFD0:ApplicationNotes", "XMP-dc:Format",
    "RIFF:WebP_Flags",  # gains its XMP/EXIF bits when those chunks are added
}
TEMP_MARK = ".photocap-tmp"


@dataclass
class Snap:
    sha: str
    pixels: str | None  # mode, size and SHA-256 of the decoded first frame; None if it does not decode
    tags: dict = field(default_factory=dict)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels(path: Path) -> str | None:
    try:
        import pillow_heif  # type: ignore[import-not-found]

        pillow_heif.register_heif_opener()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                image.load()
                return f"{image.mode} {image.size} {hashlib.sha256(image.tobytes()).hexdigest()}"
        except Exception:  # noqa: BLE001 - any failure: it does not decode
            return None


def regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _exiftool_rows(paths: list[Path]) -> list[dict]:
    out = subprocess.run(["exiftool", "-j", "-G1", "-charset", "filename=utf8", *map(str, paths)],
                         capture_output=True, timeout=300)
    try:
        return json.loads(out.stdout.decode("utf-8", "replace") or "[]")
    except (json.JSONDecodeError, RecursionError):
        if len(paths) == 1:
            return [{"SourceFile": str(paths[0]), "unreadable": True}]
        return [row for path in paths for row in _exiftool_rows([path])]


def exiftool_tags(paths: list[Path]) -> dict[Path, dict]:
    """Every tag exiftool reads, per file ({} for all when exiftool is not installed)."""
    if shutil.which("exiftool") is None or not paths:
        return {}
    found: dict[Path, dict] = {}
    for start in range(0, len(paths), 200):
        for row in _exiftool_rows(paths[start : start + 200]):
            found[Path(row.get("SourceFile", ""))] = row
    return found


def snapshot(paths: list[Path]) -> dict[Path, Snap]:
    files = [p for p in paths if regular(p)]
    tags = exiftool_tags(files)
    return {p: Snap(sha256(p), pixels(p), tags.get(p, {})) for p in files}


def lost_tags(before: dict, after: dict) -> dict:
    lost = {}
    for key, value in before.items():
        if key.startswith(VOLATILE_GROUPS) or key.split("-")[0] in VOLATILE_TAGS or key in VOLATILE_TAGS:
            continue
        if after.get(key) != value and not _moved_out_of_a_broken_wrapper(key, value, after):
            lost[key] = (value, after.get(key))
    return lost


def _moved_out_of_a_broken_wrapper(key: str, value: object, after: dict) -> bool:
    """exiftool names a property inside an x:xmpmeta of the wrong namespace ``XMP-...:XmpmetaCity``;
    photocap puts the packet in the standard wrapper, where it is ``XMP-photoshop:City``: kept."""
    group, _, name = key.partition(":")
    if not group.startswith("XMP") or not name.startswith("Xmpmeta") or len(name) <= len("Xmpmeta"):
        return False
    plain = name[len("Xmpmeta"):]
    return any(k.startswith("XMP") and k.partition(":")[2] == plain and v == value for k, v in after.items())


def leftovers(root: Path) -> list[Path]:
    """Temp files photocap left behind."""
    return [Path(d) / n for d, _, names in os.walk(root) for n in names if TEMP_MARK in n]


def compare(before: dict[Path, Snap], written: set[Path]) -> list[str]:
    """Problems: a file changed that photocap did not write, or a written file that lost pixels or tags."""
    problems = []
    changed = [p for p, snap in before.items() if regular(p) and sha256(p) != snap.sha]
    after_tags = exiftool_tags(changed)
    for path in changed:
        snap = before[path]
        if path not in written:
            problems.append(f"{path!s}: changed, but photocap does not say it wrote it")
            continue
        now = pixels(path)
        if now != snap.pixels:
            problems.append(f"{path!s}: pixels differ after the write ({snap.pixels} -> {now})")
        if snap.tags:
            lost = lost_tags(snap.tags, after_tags.get(path, {}))
            if lost:
                problems.append(f"{path!s}: tags lost or changed: {lost}")
    for path in before:
        if not path.exists() and not path.is_symlink():
            problems.append(f"{path!s}: gone")
    return problems


@dataclass
class Run:
    rc: int
    lines: list[str]
    stderr: str
    longest_gap_s: float
    timed_out: bool


def run_streaming(cmd: list[str], *, per_line_s: float, total_s: float, env: dict | None = None,
                  stop_when=None) -> Run:
    """Run ``cmd``; fail (kill it) if no stdout line comes for ``per_line_s`` or it runs past ``total_s``.

    Every command here prints one line per file, so the gap between lines bounds the time spent
    on any one file. ``stop_when(lines)`` ends a long-running command (the watcher) with SIGTERM.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    out, err = b"", b""
    start = last = time.monotonic()
    gap, timed_out, open_streams, stopping = 0.0, False, 2, False
    while open_streams:
        now = time.monotonic()
        if now - last > per_line_s or now - start > total_s:
            timed_out = True
            proc.kill()
            break
        for key, _ in sel.select(timeout=0.5):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
            elif key.data == "out":
                if b"\n" in chunk:
                    gap, last = max(gap, time.monotonic() - last), time.monotonic()
                out += chunk
            else:
                err += chunk
        if stop_when is not None and not stopping and stop_when(out.decode("utf-8", "replace").splitlines()):
            stopping = True
            last = time.monotonic()
            proc.terminate()
    rc = proc.wait(timeout=60)
    return Run(rc, out.decode("utf-8", "replace").splitlines(), err.decode("utf-8", "replace"), gap, timed_out)
