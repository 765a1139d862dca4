"""`photocap index/search/prune/db` through click, on real files and a real index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from photocap.cli import cli
from photocap.index.store import CaptionIndex
from photocap.records import PhotoUpdate


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An index with a few captions (written through the store, as the pipeline would)."""
    path = tmp_path / "idx" / "index.db"
    photos = tmp_path / "photos"
    photos.mkdir()
    rows = {"dog.jpg": "a dog runs on the beach", "cat.jpg": "a cat sleeping on a red sofa",
            "car.jpg": "a red car parked near a building"}
    for name in rows:
        (photos / name).write_bytes(b"x")
    with CaptionIndex.open(path) as idx:
        idx.upsert_photos(PhotoUpdate(str(photos / n), 1, 1, caption=c, source="model", model="m1", score=-1.0)
                          for n, c in rows.items())
    return path


def test_index_then_search_with_the_real_model(tmp_path: Path, photo_dir: Path, tiny_model_path: Path) -> None:
    db = tmp_path / "i.db"
    r = run("index", str(photo_dir), "--db", str(db), "--model", str(tiny_model_path), "--device", "cpu",
            "--workers", "0")
    assert r.exit_code == 0, r.output
    assert "4 new" in r.output and "4 captioned by" in r.output
    with CaptionIndex.open(db) as idx:
        caption = idx.get(photo_dir / "rocket.jpg").caption
    word = max(caption.split(), key=len)
    r = run("search", word, "--db", str(db), "--paths-only")
    assert r.exit_code == 0 and str(photo_dir / "rocket.jpg") in r.output.splitlines()
    r = run("index", str(photo_dir), "--db", str(db), "--model", "/nonexistent.safetensors", "--json")
    lines = [json.loads(line) for line in r.output.splitlines()]
    assert lines[-1]["event"] == "summary" and lines[-1]["unchanged"] == 4  # no model needed


def test_index_json_events(tmp_path: Path, photo_dir: Path, tiny_model_path: Path) -> None:
    (photo_dir / "broken.jpg").write_text("nope")
    r = run("index", str(photo_dir), "--db", str(tmp_path / "i.db"), "--model", str(tiny_model_path),
            "--device", "cpu", "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.output.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("captioned") == 4 and kinds.count("failed") == 1 and kinds[-1] == "summary"
    assert events[-1]["new"] == 4 and events[-1]["failed"] == 1
    assert all({"path", "caption", "score", "model"} <= set(e) for e in events if e["event"] == "captioned")


def test_index_bad_options_and_missing_model(tmp_path: Path, photo_dir: Path) -> None:
    r = CliRunner().invoke(cli, ["index", str(photo_dir), "--force", "--db", str(tmp_path / "i.db")])
    assert r.exit_code == 2 and "--recaption" in r.output
    r = CliRunner().invoke(cli, ["index", str(photo_dir), "--db", str(tmp_path / "i.db"), "--model",
                                 str(tmp_path / "none.safetensors"), "--workers", "0"])
    assert r.exit_code == 1 and "Error:" in r.output and "Traceback" not in r.output


def test_search_output_forms(db: Path) -> None:
    r = run("search", "dogs", "running", "--db", str(db))
    assert r.exit_code == 0
    assert r.output.splitlines()[0].endswith("dog.jpg") and "[dog] [runs]" in r.output
    r = run("search", "red", "--db", str(db), "--json")
    objs = [json.loads(line) for line in r.output.splitlines()]
    assert len(objs) == 2 and {"path", "caption", "snippet", "rank", "source"} <= set(objs[0])
    r = run("search", "red", "--db", str(db), "--paths-only")
    assert all(line.startswith("/") for line in r.output.splitlines()) and len(r.output.splitlines()) == 2
    r = run("search", "red", "--db", str(db), "--limit", "1")
    assert "Showing 1 of 2 matches" in r.output


@pytest.mark.parametrize("query", ['"', "NEAR(", "a AND OR NOT", "*", "caption:^x", "((", "--", "'"])
def test_search_any_text_is_safe_and_empty_result_says_so(db: Path, query: str) -> None:
    r = CliRunner().invoke(cli, ["search", "--db", str(db), "--", query])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output


def test_search_empty_result_message(db: Path) -> None:
    r = run("search", "zebra", "--db", str(db))
    assert r.exit_code == 0 and "No photos match 'zebra'." in r.output


def test_search_without_an_index(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["search", "dog", "--db", str(tmp_path / "nothing.db")])
    assert r.exit_code == 1 and "photocap index" in r.output
    assert not (tmp_path / "nothing.db").exists()


def test_search_imports_neither_torch_nor_qt(db: Path) -> None:
    code = (
        "import sys\n"
        "from photocap.cli import cli\n"
        f"cli(['search', 'dog', '--db', {str(db)!r}], standalone_mode=False)\n"
        "print('HEAVY', [m for m in ('torch', 'torchvision', 'PySide6', 'PIL') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "dog.jpg" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_db_commands(db: Path, tmp_path: Path) -> None:
    r = run("db", "path", env={"PHOTOCAP_DB": str(db)})
    assert r.output.strip() == str(db)
    r = run("db", "path", "--db", str(tmp_path / "x.db"))
    assert r.output.strip() == str(tmp_path / "x.db")
    r = run("db", "status", "--db", str(db), "--json")
    s = json.loads(r.output)
    assert s["photos"] == 3 and s["models"] == {"m1": 3}
    r = run("db", "status", "--db", str(db))
    assert "Photos:    3" in r.output and "m1 (3)" in r.output
    assert "Writes owed: 0 (asked for with --write-metadata" in r.output  # not "nothing left to write"
    r = run("db", "backup", str(tmp_path / "b" / "copy.db"), "--db", str(db))
    assert r.exit_code == 0
    with CaptionIndex.open(tmp_path / "b" / "copy.db") as copy:
        assert copy.count_matches("red") == 2


def test_prune(db: Path, tmp_path: Path) -> None:
    (tmp_path / "photos" / "dog.jpg").unlink()
    r = run("prune", "--db", str(db), "--dry-run")
    assert "Would remove 1 photo " in r.output
    r = run("prune", "--db", str(db))
    assert "Removed 1 photo " in r.output
    shutil.rmtree(tmp_path / "photos")  # a whole folder gone: perhaps an unmounted drive
    r = run("prune", "--db", str(db), "--json")
    assert json.loads(r.output)["removed"] == 0 and json.loads(r.output)["kept_missing_folders"] == 2
    r = run("prune", "--db", str(db), "--gone-folders")
    assert "Removed 2 photos" in r.output


def test_help_has_examples() -> None:
    for cmd in (["index"], ["search"], ["prune"], ["db"]):
        r = run(*cmd, "--help")
        assert r.exit_code == 0 and "Examples:" in r.output


def test_paths_with_a_newline_can_be_told_apart(tmp_path: Path) -> None:
    """Issue 31: ``--print0`` hands exact paths to ``xargs -0`` (a real pipe); plain output shows
    control characters escaped, one line per photo."""
    photos = tmp_path / "photos"
    photos.mkdir()
    odd = photos / "two\nlines.jpg"
    plain = photos / "lines.jpg"
    for p in (odd, plain):
        p.write_bytes(b"x")
    db = tmp_path / "i.db"
    with CaptionIndex.open(db) as idx:
        idx.upsert_photos(PhotoUpdate(str(p), 1, 1, caption="a kite over the dunes", source="model", model="m1",
                                      score=-1.0) for p in (odd, plain))
    code = "from photocap.cli import cli; cli()"
    search = subprocess.run([sys.executable, "-c", code, "search", "kite", "--mode", "words", "--db", str(db),
                             "--print0"], capture_output=True, check=True)
    assert sorted(search.stdout.split(b"\0")) == sorted([b"", os.fsencode(odd), os.fsencode(plain)])
    # each path arrives whole: stat would fail on "two" or "lines.jpg" split from the odd name
    sizes = subprocess.run(["xargs", "-0", "stat", "--printf", "%s\n", "--"], input=search.stdout,
                           capture_output=True, check=True)
    assert sizes.stdout == b"1\n1\n"
    r = run("search", "kite", "--mode", "words", "--db", str(db), "--paths-only")
    assert sorted(r.stdout.splitlines()) == sorted([str(photos / "two\\nlines.jpg"), str(plain)])
    assert "--print0" in r.stderr
    r = run("search", "kite", "--mode", "words", "--db", str(db))
    assert str(photos / "two\\nlines.jpg") in r.stdout.splitlines()
    assert run("search", "--help").output.count("--print0 | xargs -0") == 1
