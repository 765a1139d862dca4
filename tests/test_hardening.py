"""The defects the first hostile run found (issue 18), each on a real file or a real process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from hostile import corpus, inputs
from metadata_samples import exiftool, needs_exiftool
from photocap.cli import cli
from photocap.errors import MetadataError, QueryError
from photocap.index.query import MAX_QUERY_TERMS, fts_query
from photocap.index.store import CaptionIndex
from photocap.metadata import jpeg, png, webp
from photocap.metadata.reader import read_metadata
from photocap.metadata.writer import write_caption
from photocap.records import PhotoUpdate, SkipReason

CAPTION = "a dog runs on the beach"


def photocap(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from photocap.cli import cli; cli(prog_name='photocap')", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _file(folder: Path, name: str, fmt: str, packets: list[bytes], seed: int = 0) -> Path:
    rng = random.Random(seed)
    data = {"jpeg": lambda: corpus.jpeg_bytes(rng, packets=packets),
            "png": lambda: corpus.png_bytes(rng, packets=packets),
            "webp": lambda: corpus.webp_bytes(rng, packets=packets)}[fmt]()
    path = folder / name
    path.write_bytes(data)
    return path


def _index(db: Path, paths: list[Path], caption: str = CAPTION) -> None:
    with CaptionIndex.open(db) as idx:
        idx.upsert_photos(PhotoUpdate(str(p), p.stat().st_size, p.stat().st_mtime_ns, caption=caption,
                                      source="model", model="m", score=0.0) for p in paths)


# --- 1. deeply nested XMP; one bad file never stops a run -------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_deeply_nested_xmp_is_refused_not_a_crash(tmp_path, fmt):
    path = _file(tmp_path, f"deep.{fmt}", fmt, [corpus.deep_xmp(3000)])
    before = path.read_bytes()
    report = read_metadata(path)
    assert any("nests elements more than 100 deep" in w for w in report.warnings)
    result = write_caption(path, CAPTION)  # its XMP can't be merged safely: a sidecar instead
    assert result.target == "sidecar" and Path(result.written_path).is_file()
    assert path.read_bytes() == before


def test_a_folder_run_goes_on_past_bad_files(tmp_path):
    """`write` and `read` over a folder: every photo is handled, the bad ones with a reason."""
    folder = tmp_path / "photos"
    folder.mkdir()
    good = [_file(folder, f"good-{i}.jpg", "jpeg", [corpus.RICH_XMP], seed=i) for i in range(3)]
    bad = [_file(folder, "a-deep.jpg", "jpeg", [corpus.deep_xmp(5000)]),
           _file(folder, "b-encoding.png", "png", [corpus.hostile_packets(random.Random(0))["unknown-encoding"]])]
    cut = folder / "c-cut.jpg"
    cut.write_bytes(good[0].read_bytes()[:300])
    os.mkfifo(folder / "d-pipe.jpg")
    db = tmp_path / "index.db"
    _index(db, [*good, *bad, cut])
    out = photocap("write", str(folder), "--json", "--db", str(db))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 6
    by_name = {Path(r["path"]).name: r for r in rows}
    for p in good:
        assert by_name[p.name]["target"] == "embed"
    assert by_name["a-deep.jpg"]["target"] == "sidecar" and by_name["b-encoding.png"]["target"] == "sidecar"
    assert by_name["c-cut.jpg"]["event"] == "failed" and "truncated" in by_name["c-cut.jpg"]["reason"]
    out = photocap("read", str(folder), "--json")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(rows) == {"good-0.jpg", "good-1.jpg", "good-2.jpg", "a-deep.jpg", "b-encoding.png", "c-cut.jpg",
                         "d-pipe.jpg"}
    assert "FIFO" in rows["d-pipe.jpg"]["error"]  # said, never opened
    assert rows["good-1.jpg"]["caption"] == CAPTION


def test_an_unforeseen_error_becomes_a_per_file_error(tmp_path, monkeypatch):
    """A bug photocap did not foresee (here: a parser raising ZeroDivisionError) fails one file."""
    path = _file(tmp_path, "a.jpg", "jpeg", [corpus.RICH_XMP])
    before = path.read_bytes()

    def broken(data):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(jpeg, "parse", broken)
    with pytest.raises(MetadataError, match=r"a\.jpg: photocap could not write the caption into it "
                                            r"\(ZeroDivisionError: boom\).*left as it was"):
        write_caption(path, CAPTION)
    with pytest.raises(MetadataError, match="ZeroDivisionError"):
        read_metadata(path)
    assert path.read_bytes() == before


# --- 2. XMP declaring an unknown encoding ------------------------------------------------------


@pytest.mark.parametrize("declared", ["x-unknown", "Shift_JIS", "UTF-32"])
def test_xmp_with_an_encoding_photocap_cannot_read(tmp_path, declared):
    packet = f'<?xml version="1.0" encoding="{declared}"?>'.encode() + corpus.xmp_packet(corpus.description("x"))
    path = _file(tmp_path, "enc.jpg", "jpeg", [packet])
    report = read_metadata(path)
    assert any("declares an encoding photocap can't read" in w for w in report.warnings)
    assert write_caption(path, CAPTION).target == "sidecar"
    out = photocap("read", str(path))
    assert out.returncode == 0 and "Traceback" not in out.stderr


# --- 3. bytes after a PNG's IEND ------------------------------------------------------------------


@needs_exiftool
def test_png_bytes_after_iend_are_kept(tmp_path):
    path = _file(tmp_path, "t.png", "png", [corpus.RICH_XMP])
    trailer = b"TRAILER\x00\x01\x02" * 10
    path.write_bytes(path.read_bytes() + trailer)
    with Image.open(path) as image:
        pixels = image.convert("RGB").tobytes()
    assert write_caption(path, CAPTION).target == "embed"
    data = path.read_bytes()
    assert data.endswith(b"IEND\xaeB`\x82" + trailer)
    with Image.open(path) as image:
        assert image.convert("RGB").tobytes() == pixels
    tags = exiftool(path)
    assert tags["XMP-dc:Description"] == CAPTION and tags["XMP-dc:Creator"] == ["Ana Núñez"]


# --- 4. duplicated XMP packets -------------------------------------------------------------------


def _packets(path: Path) -> int:
    data = path.read_bytes()
    if path.suffix == ".jpg":
        return len(jpeg.parse(data).get_all(jpeg.APP1, jpeg.XMP_ID))
    if path.suffix == ".png":
        return len(png.get_xmp(png.parse(data)))
    return len(webp.get_all(webp.parse(data), b"XMP "))


@needs_exiftool
@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_a_persons_description_in_a_second_packet_is_seen(tmp_path, fmt):
    path = _file(tmp_path, "dup" + corpus.SUFFIX[fmt], fmt, [corpus.RICH_XMP, corpus.xmp_packet(corpus.description(corpus.PERSON))])
    report = read_metadata(path)
    assert report.has_user_description and report.caption == corpus.PERSON
    before = path.read_bytes()
    assert write_caption(path, CAPTION).skip is SkipReason.PERSONS_DESCRIPTION
    assert path.read_bytes() == before
    assert write_caption(path, CAPTION, force=True).target == "embed"
    assert _packets(path) == 1
    tags = exiftool(path, "-a")
    assert tags["XMP-dc:Description"] == CAPTION and tags["XMP-dc:Creator"] == ["Ana Núñez"]
    out = subprocess.run(["exiftool", "-a", "-s3", "-XMP-dc:Description", str(path)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.splitlines() == [CAPTION]  # one description, not two


@needs_exiftool
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_duplicate_packets_are_merged_into_one(tmp_path, fmt):
    second = corpus.xmp_packet("<xmp:Label>Red</xmp:Label>" + corpus.lang_alt("dc:title", "Harbour"))
    path = _file(tmp_path, "dup" + corpus.SUFFIX[fmt], fmt, [corpus.RICH_XMP, second])
    before = exiftool(path)
    assert before["XMP-xmp:Label"] == "Red"
    assert write_caption(path, CAPTION).target == "embed"
    after = exiftool(path)
    assert _packets(path) == 1
    for tag in ("XMP-xmp:Label", "XMP-dc:Title", "XMP-dc:Creator", "XMP-xmp:Rating", "XMP-photoshop:City"):
        assert after[tag] == before[tag]
    assert after["XMP-dc:Description"] == CAPTION
    assert write_caption(path, CAPTION).skipped == "already up to date"


def test_packets_that_disagree_are_not_merged(tmp_path):
    path = _file(tmp_path, "dup.jpg", "jpeg", [corpus.RICH_XMP, corpus.xmp_packet("<xmp:Rating>1</xmp:Rating>")])
    before = path.read_bytes()
    report = read_metadata(path)
    assert any("disagree on" in w and "Rating" in w for w in report.warnings)
    assert write_caption(path, CAPTION).target == "sidecar"
    assert path.read_bytes() == before


# --- 5. long file names ---------------------------------------------------------------------------


@needs_exiftool
@pytest.mark.parametrize("length", [232, 245, 255])
def test_long_file_names_are_embedded(tmp_path, length):
    stem = "é" * ((length - 4) // 2) + "x" * ((length - 4) % 2)
    path = _file(tmp_path, stem + ".jpg", "jpeg", [corpus.RICH_XMP])
    assert len(path.name.encode()) == length
    assert write_caption(path, CAPTION).target == "embed"
    assert exiftool(path)["XMP-dc:Description"] == CAPTION
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left


def test_a_sidecar_name_over_the_limit_is_a_clear_error(tmp_path):
    path = tmp_path / ("g" * 250 + ".gif")
    Image.new("RGB", (8, 8)).save(path, "GIF")
    with pytest.raises(MetadataError, match=r"its name would be 258 bytes, over the file system's limit of 255"):
        write_caption(path, CAPTION)
    short = tmp_path / ("g" * 240 + ".gif")
    Image.new("RGB", (8, 8)).save(short, "GIF")
    assert write_caption(short, CAPTION).target == "sidecar"


# --- 6. `photocap search cat -sofa --limit 5` -------------------------------------------------------


@pytest.fixture
def search_db(tmp_path) -> Path:
    db = tmp_path / "index.db"
    captions = ["a cat on a sofa", "a cat on a bed", "a dog on a sofa"] * 4
    with CaptionIndex.open(db) as idx:
        idx.upsert_photos(PhotoUpdate(f"/p/{i}.jpg", 1, i, caption=c, source="model", model="m", score=0.0)
                          for i, c in enumerate(captions))
    return db


def test_search_excludes_words_as_the_help_shows(search_db):
    env = {**os.environ, "PHOTOCAP_DB": str(search_db)}
    out = photocap("search", "cat", "-sofa", "--limit", "5", "--paths-only", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["/p/1.jpg", "/p/4.jpg", "/p/7.jpg", "/p/10.jpg"]
    out = photocap("search", "cat", "-sofa", "--limit", "2", "--paths-only", env=env)
    assert len(out.stdout.split()) == 2  # --limit after a -word still counts
    out = photocap("search", "--json", "-sofa", "cat", env=env)
    assert [json.loads(x)["caption"] for x in out.stdout.splitlines()] == ["a cat on a bed"] * 4
    assert "-sofa" in photocap("search", "--help").stdout


def test_real_options_still_work_and_typos_are_errors(search_db):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "cat", "--lmit", "5", "--db", str(search_db)])
    assert result.exit_code == 2 and "No such option '--lmit'" in result.output and "--limit" in result.output
    result = runner.invoke(cli, ["search", "cat", "--limit", "0", "--db", str(search_db)])
    assert result.exit_code == 2
    result = runner.invoke(cli, ["search", "--db", str(search_db), "--", "cat", "--lmit"])
    assert result.exit_code == 0  # after --, anything is a word
    result = runner.invoke(cli, ["search", "--db", str(search_db), "cat", "-sofa", "--paths-only"])
    assert result.exit_code == 0 and len(result.stdout.split()) == 4


# --- 7. a query repeating a word -----------------------------------------------------------------


def test_repeated_words_are_one_term(search_db):
    def query(text: str) -> str | None:
        return fts_query(text, prefix_last=False)

    assert query(" ".join(["dog"] * 2000)) == query("dog") == '"dog"'
    assert query("dog DOG Dog beach dog") == query("dog beach")
    assert query(" OR ".join(["dog"] * 500)) == query("dog")
    assert query("cat " + "-dog " * 500) == query("cat -dog")
    assert fts_query("sofa " * 1000 + "sof") == fts_query("sofa sof")  # with the typed prefix too
    with CaptionIndex.open(search_db) as idx:
        assert [h.record.path for h in idx.search(" ".join(["sofa"] * 1900))] == [
            h.record.path for h in idx.search("sofa")]


def test_long_queries_are_refused_with_the_reason(search_db):
    with pytest.raises(QueryError, match="at most 10,000"):
        fts_query("dog " * 5000)
    with pytest.raises(QueryError, match=f"at most {MAX_QUERY_TERMS}"):
        fts_query(" ".join(f"w{i}" for i in range(MAX_QUERY_TERMS + 1)))
    assert fts_query(" ".join(f"w{i}" for i in range(MAX_QUERY_TERMS)))
    with pytest.raises(QueryError, match="a phrase each of its words"):
        fts_query('"' + "dog " * 100 + '"')
    result = CliRunner().invoke(cli, ["search", "--db", str(search_db), *(["dog"] * 20000)])
    assert result.exit_code == 1 and "Error: The search is 79,999 characters long" in result.output


# --- 8 and 9. model files ---------------------------------------------------------------------------


def test_every_config_field_has_a_rule():
    from dataclasses import fields

    from photocap.decoding.config import RULES, ModelConfig

    assert {f.name for f in fields(ModelConfig)} == set(RULES)
    ModelConfig().validate()  # the defaults pass their own rules


@pytest.mark.parametrize("field,value", inputs.BAD_CONFIG_VALUES, ids=lambda x: str(x)[:20])
def test_bad_config_values_are_refused_naming_the_field(tiny_model_path, tmp_path, field, value):
    from photocap.model.checkpoint import CheckpointError, load_model

    path = inputs._edited(tiny_model_path, tmp_path / "bad.safetensors", inputs._config_edit(field, value))
    with pytest.raises(CheckpointError, match=field):
        load_model(path)


def test_a_huge_config_is_refused_before_anything_is_allocated(tiny_model_path, tmp_path):
    """In range, but far from the weights: found from the shapes alone (the meta device)."""
    import resource

    from photocap.model.checkpoint import CheckpointError, load_model

    def huge(header):
        cfg = json.loads(header["__metadata__"]["config"])
        cfg.update(arch="transformer", d_model=8192, num_heads=8, num_layers=64, ff_dim=32768, max_len=200)
        header["__metadata__"]["config"] = json.dumps(cfg)

    path = inputs._edited(tiny_model_path, tmp_path / "huge.safetensors", huge)  # would be ~50 GB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_model(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 2_000_000  # KiB: under 2 GB


def test_nan_weights_are_refused(tiny_model_path, tmp_path):
    from photocap.model.checkpoint import CheckpointError, load_model

    for make in (lambda d: inputs._weights(tiny_model_path, d, float("nan")), lambda d: inputs._all_nan(
            tiny_model_path, d)):
        with pytest.raises(CheckpointError, match="NaN or infinite"):
            load_model(make(tmp_path / "nan.safetensors"))


def test_model_errors_say_where_the_path_came_from(tiny_model_path, tmp_path, sample_photos):
    photo = str(next(iter(sample_photos.values())))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    env = {**os.environ, "PHOTOCAP_MODEL": str(bad)}
    out = photocap("caption", "--device", "cpu", photo, env=env)
    assert out.returncode == 1 and "$PHOTOCAP_MODEL names this file" in out.stderr
    assert "bundled model" not in out.stderr and "Traceback" not in out.stderr
    folder = tmp_path / "models"
    folder.mkdir()
    result = CliRunner().invoke(cli, ["caption", "--model", str(folder), photo])
    assert result.exit_code == 1 and "is a folder, not a model file" in result.output
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    out = photocap("caption", "--model", str(fifo), photo, timeout=60)  # never opened: no hang
    assert out.returncode == 1 and "is a FIFO (named pipe), not a model file" in out.stderr
    assert time.monotonic() - t0 < 60
    result = CliRunner().invoke(cli, ["caption", "--model", str(tmp_path / "nope.safetensors"), photo])
    assert result.exit_code == 1 and "model file not found" in result.output


def test_the_bundled_model_hint_only_when_it_is_the_bundled_model(tmp_path, monkeypatch):
    from photocap.captioner import base as inference

    missing = tmp_path / "gone.safetensors"
    monkeypatch.delenv("PHOTOCAP_MODEL", raising=False)
    assert "missing from this installation" in inference.model_hint(None, missing)
    missing.write_bytes(b"x")
    assert "damaged" in inference.model_hint(None, missing)
    assert inference.model_hint(missing, missing) == ""
    monkeypatch.setenv("PHOTOCAP_MODEL", str(missing))
    assert "$PHOTOCAP_MODEL" in inference.model_hint(None, missing)


def test_a_photo_that_does_not_decode_is_never_written(tmp_path):
    """Rebuilt headers could turn a broken photo into a different, decodable one: refused instead."""
    webp_file = _file(tmp_path, "broken.webp", "webp", [corpus.RICH_XMP])
    data = bytearray(webp_file.read_bytes())
    data[15] ^= 0x40  # "VP8X" -> "VP8\x18": Pillow can't read it; a fresh VP8X would "repair" it
    webp_file.write_bytes(bytes(data))
    png_file = _file(tmp_path, "badcrc.png", "png", [corpus.RICH_XMP])
    data = bytearray(png_file.read_bytes())
    crc_at = data.index(b"tEXt") + 4 + len(b"Author\x00Ana")
    data[crc_at] ^= 0xFF  # the CRC of an ancillary chunk
    png_file.write_bytes(bytes(data))
    for path in (webp_file, png_file):
        before = path.read_bytes()
        with pytest.raises(MetadataError, match="does not decode.*left as it is"):
            write_caption(path, CAPTION)
        assert path.read_bytes() == before
