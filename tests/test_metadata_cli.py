"""``photocap write`` (captions from the index into photos) and ``photocap read``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from photocap.cli import cli
from photocap.metadata.reader import read_metadata

from metadata_samples import CAPTION, copy_example, gradient


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        return CliRunner()


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """A folder with photos and an index holding captions for some of them."""
    from photocap.index.store import CaptionIndex
    from photocap.records import PhotoUpdate

    photos = tmp_path / "My Photos"
    photos.mkdir()
    files = {
        "coffee": copy_example(photos, "coffee.jpg"),
        "rocket": copy_example(photos, "rocket.jpg", dest="rocket ünïcode.jpg"),
        "gif": photos / "anim.gif",
        "uncaptioned": copy_example(photos, "chelsea.jpg"),
    }
    gradient((10, 10)).save(files["gif"], "GIF")
    db = tmp_path / "index.db"
    captions = {"coffee": CAPTION, "rocket": "a rocket on a launch pad", "gif": "a gradient"}
    with CaptionIndex.open(db) as idx:
        idx.upsert_photos(
            PhotoUpdate(
                str(path.resolve()),
                path.stat().st_size,
                path.stat().st_mtime_ns,
                caption=captions.get(key),
                source="model" if key in captions else None,
                model="test-model" if key in captions else None,
            )
            for key, path in files.items()
        )
    return db, photos, files


def test_write_folder_json(library) -> None:
    db, photos, files = library
    result = runner().invoke(cli, ["write", str(photos), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_path = {Path(r["path"]).name: r for r in rows}
    assert by_path["coffee.jpg"]["target"] == "embed"
    assert by_path["anim.gif"]["target"] == "sidecar"
    assert by_path["chelsea.jpg"]["event"] == "skipped" and by_path["chelsea.jpg"]["skip"] == "no_caption"
    assert by_path["coffee.jpg"]["event"] == "written" and by_path["coffee.jpg"]["source"] == "model"
    assert read_metadata(files["coffee"]).caption == CAPTION
    assert read_metadata(files["rocket"]).caption == "a rocket on a launch pad"
    assert (photos / "anim.gif.xmp").is_file()
    again = runner().invoke(cli, ["write", str(photos), "--db", str(db)])
    assert again.exit_code == 0
    assert "already up to date" in again.stdout


def test_write_dry_run_and_file_not_in_index(library, tmp_path: Path) -> None:
    db, photos, files = library
    stray = copy_example(tmp_path, "astronaut.jpg")
    old = files["coffee"].read_bytes()
    result = runner().invoke(cli, ["write", str(files["coffee"]), str(stray), "--db", str(db), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would write" in result.stdout
    assert f"    text: {CAPTION}\n" in result.stdout  # the words it would write, not only where
    assert "not in the index" in result.stderr
    assert files["coffee"].read_bytes() == old
    only_bad = runner().invoke(cli, ["write", str(stray), "--db", str(db)])
    assert only_bad.exit_code != 0


def test_write_without_an_index_is_a_clear_error(tmp_path: Path) -> None:
    photo = copy_example(tmp_path)
    result = runner().invoke(cli, ["write", str(photo), "--db", str(tmp_path / "none.db")])
    assert result.exit_code != 0
    assert "photocap index" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_read_text_and_json(tmp_path: Path) -> None:
    from photocap.metadata.writer import write_caption

    photo = copy_example(tmp_path)
    write_caption(photo, CAPTION)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    result = runner().invoke(cli, ["read", str(tmp_path)])
    assert result.exit_code == 0
    assert "XMP-dc:Description" in result.stdout and "photocap" in result.stdout
    assert "broken.jpg" in result.stderr
    result = runner().invoke(cli, ["read", "--json", str(photo)])
    data = json.loads(result.stdout)
    assert data["caption"] == CAPTION and data["written_by_photocap"] is True
    bad = runner().invoke(cli, ["read", str(tmp_path / "broken.jpg")])
    assert bad.exit_code != 0


def test_help_mentions_keep_mtime() -> None:
    result = runner().invoke(cli, ["write", "--help"])
    assert "--keep-mtime" in result.stdout and "incremental" in result.stdout
    assert "Examples" in result.stdout
