"""Reading one photo file without the model: EXIF facts, completeness, the decode workers."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from photocap.library.photofile import check_complete, decode_file, probe_file, read_exif_facts
from photocap.library.workers import WORKER_NICENESS, DecodePool

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "photos"


def jpeg(path: Path, size=(120, 80), exif: bytes = b"") -> Path:
    Image.new("RGB", size, (200, 120, 40)).save(path, "JPEG", exif=exif)
    return path


def test_exif_facts(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: displayed size is swapped
    exif[271] = "Canon"
    exif[272] = "Canon EOS 5D Mark IV"
    exif.get_ifd(0x8769)[36867] = "2021:07:04 18:30:05"
    exif.get_ifd(0x8769)[36881] = "+02:00"
    p = jpeg(tmp_path / "e.jpg", exif=exif.tobytes())
    assert read_exif_facts(p) == (80, 120, "2021-07-04T18:30:05+02:00", "Canon EOS 5D Mark IV")
    exif2 = Image.Exif()
    exif2[271] = "NIKON CORPORATION"
    exif2[272] = "COOLPIX P7000"
    exif2[306] = "0000:00:00 00:00:00"  # cameras write zeros when the clock was never set
    p2 = jpeg(tmp_path / "f.jpg", size=(64, 48), exif=exif2.tobytes())
    assert read_exif_facts(p2) == (64, 48, None, "NIKON CORPORATION COOLPIX P7000")


def test_probe_and_decode_report_bad_files_instead_of_raising(tmp_path: Path) -> None:
    good = jpeg(tmp_path / "good.jpg")
    probe = probe_file(str(good))
    assert probe.error is None and (probe.width, probe.height) == (120, 80) and len(probe.content_hash) > 16
    decoded = decode_file(str(good), 64)
    assert decoded.error is None and decoded.to_pil().size == (64, 64)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    assert probe_file(str(bad)).error and decode_file(str(bad), 64).error


def test_check_complete_tells_a_half_copied_photo(tmp_path: Path) -> None:
    data = (EXAMPLES / "astronaut.jpg").read_bytes()
    whole, half = tmp_path / "whole.jpg", tmp_path / "half.jpg"
    whole.write_bytes(data)
    half.write_bytes(data[: len(data) // 2])
    assert check_complete(str(whole)) is None
    assert check_complete(str(half))
    png = tmp_path / "p.png"
    buf = io.BytesIO()
    Image.open(whole).save(buf, "PNG")
    png.write_bytes(buf.getvalue())
    assert check_complete(str(png)) is None
    png.write_bytes(buf.getvalue()[:-200])
    assert check_complete(str(png))


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities here")
def test_decode_workers_run_below_the_model_priority():
    pool = DecodePool(1)
    try:
        fut, _ = pool.submit(os.nice, 0)
        worker = fut.result(timeout=60)  # os.nice(0) reports the niceness
    finally:
        pool.shutdown()
    assert worker == min(19, os.nice(0) + WORKER_NICENESS)
