"""`photocap caption` on real files, through click's CliRunner."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner
from PIL import Image

from photocap.cli import cli


def _library(tmp_path, sample_photos):
    folder = tmp_path / "my photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(sample_photos["chelsea.jpg"], folder / "cat.jpg")
    # PNG with alpha, greyscale JPEG, EXIF-rotated JPEG, a corrupt JPEG and a non-image.
    Image.open(sample_photos["coffee.jpg"]).convert("RGBA").save(folder / "sub" / "coffee alpha.png")
    Image.open(sample_photos["rocket.jpg"]).convert("L").save(folder / "sub" / "grey.jpg")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.open(sample_photos["astronaut.jpg"]).rotate(-90, expand=True).save(folder / "rotated.jpg", exif=exif.tobytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    (folder / "readme.txt").write_text("not a photo")
    (folder / ".hidden").mkdir()
    shutil.copy(sample_photos["chelsea.jpg"], folder / ".hidden" / "skip.jpg")
    return folder


def test_caption_folder_text_output(tmp_path, sample_photos, tiny_model_path):
    folder = _library(tmp_path, sample_photos)
    result = CliRunner().invoke(cli, ["caption", str(folder), "--model", str(tiny_model_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("\t") for line in result.stdout.strip().splitlines())
    names = {p.rsplit("/", 1)[-1] for p in lines}
    assert names == {"cat.jpg", "coffee alpha.png", "grey.jpg", "rotated.jpg"}
    assert "cat" in lines[str(folder / "cat.jpg")]
    assert "coffee" in lines[str(folder / "sub" / "coffee alpha.png")]
    assert "woman" in lines[str(folder / "rotated.jpg")]  # EXIF orientation was applied
    assert "corrupt.jpg" in result.stderr and "skipped" in result.stderr


def test_caption_json_lines(tmp_path, sample_photos, tiny_model_path):
    result = CliRunner().invoke(cli, ["caption", str(sample_photos["coffee.jpg"]), str(sample_photos["rocket.jpg"]),
                                      "--json", "--beam", "2", "--model", str(tiny_model_path)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(sample_photos["coffee.jpg"]), str(sample_photos["rocket.jpg"])]
    for row in rows:
        assert set(row) == {"path", "caption", "score", "model", "concepts"}
        assert row["model"] == "tiny-show-attend-tell" and row["score"] <= 0 and row["caption"]


def test_nothing_captioned_exits_non_zero(tmp_path, tiny_model_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = CliRunner().invoke(cli, ["caption", str(bad), "--model", str(tiny_model_path)])
    assert result.exit_code == 1
    assert "bad.png" in result.stderr and "none of the 1 file(s)" in result.stderr


def test_missing_or_foreign_model_is_a_clear_error(tmp_path, sample_photos):
    result = CliRunner().invoke(cli, ["caption", str(sample_photos["coffee.jpg"]), "--model", str(tmp_path / "x.safetensors")])
    assert result.exit_code == 1 and "model file not found" in result.stderr
    assert "Traceback" not in result.output
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"this is not a model")
    result = CliRunner().invoke(cli, ["caption", str(sample_photos["coffee.jpg"]), "--model", str(foreign)])
    assert result.exit_code == 1 and "not a photocap model" in result.stderr
