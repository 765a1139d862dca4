"""Concepts in the index: kept per photo by a migration, searchable, listed, shown in the GUI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from photocap.cli import cli
from photocap.index.migrations import MIGRATIONS, migrate
from photocap.index.store import CaptionIndex
from photocap.library.concepts import SEARCH_MIN_SCORE, search_terms, with_concepts
from photocap.records import CaptionSource, Concept, MatchedBy, PhotoUpdate

ELEPHANT = (Concept("elephant", 0.93), Concept("ship", 0.02))


def _photo(index, path, caption, concepts=None, source=CaptionSource.MODEL):
    update = PhotoUpdate(str(path), 1, 1, caption=caption, source=source, model="m1")
    if concepts is not None:
        update = with_concepts(update, concepts, "m1")
    index.upsert_photos([update])


def test_search_terms_are_the_confident_concepts_with_their_other_names():
    terms = search_terms([Concept("dog", 0.8), Concept("frisbee", SEARCH_MIN_SCORE - 0.01)]).split()
    assert {"dog", "dogs", "animal", "pet", "retriever", "labrador"} <= set(terms)
    assert "frisbee" not in terms
    assert search_terms([Concept("frisbee", 0.1)]) is None


def test_a_concept_finds_the_photo_its_caption_missed(tmp_path):
    with CaptionIndex.open(tmp_path / "i.db") as index:
        _photo(index, "/p/elephant.jpg", "a group of people are walking on the beach", ELEPHANT)
        _photo(index, "/p/beach.jpg", "two children play on the beach", (Concept("beach", 0.7),))
        _photo(index, "/p/old.jpg", "an elephant in the zoo")  # indexed by a model without concepts
        (hit,) = index.search("animal")  # a broader word of "elephant"
        assert hit.record.path == "/p/elephant.jpg" and hit.matched_by == (MatchedBy.CONCEPTS,)
        assert hit.snippet == "a group of people are walking on the beach" and hit.concepts == ELEPHANT
        hits = index.search("elephants")
        assert [h.record.path for h in hits] == ["/p/old.jpg", "/p/elephant.jpg"]  # the caption's words first
        assert [h.matched_by for h in hits] == [(MatchedBy.WORDS,), (MatchedBy.CONCEPTS,)]
        assert not index.search("ship")  # 2 %: kept, shown, not searchable
        assert index.concepts("/p/elephant.jpg") == ELEPHANT
        assert index.get("/p/elephant.jpg").concepts_model == "m1"
        assert index.stats()["with_concepts"] == 2


def test_concepts_stay_with_a_persons_caption_and_go_with_the_photo(tmp_path):
    with CaptionIndex.open(tmp_path / "i.db") as index:
        _photo(index, "/p/a.jpg", "a dog", (Concept("elephant", 0.9),))
        index.set_user_caption("/p/a.jpg", "Dumbo at the circus")
        assert index.concepts("/p/a.jpg") == (Concept("elephant", 0.9),)
        index.upsert_photos([PhotoUpdate("/p/a.jpg", 2, 2)])  # facts only: concepts kept
        assert [h.record.path for h in index.search("elephant")] == ["/p/a.jpg"]
        index.upsert_photos([with_concepts(PhotoUpdate("/p/a.jpg", 2, 2), (Concept("horse", 0.8),), "m2")])
        assert index.concepts("/p/a.jpg") == (Concept("horse", 0.8),) and not index.search("elephant")
        index.delete(["/p/a.jpg"])
        assert index.connection.execute("SELECT count(*) FROM photo_concepts").fetchone()[0] == 0
        assert not index.search("horse")


def test_an_index_from_before_concepts_migrates_and_keeps_searching(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    before = [name for name, _ in MIGRATIONS].index("m005_photo_concepts")
    migrate(conn, MIGRATIONS[:before])
    conn.execute("INSERT INTO photos (path, size, mtime_ns, caption, source, indexed_at) "
                 "VALUES ('/p/a.jpg', 1, 1, 'two dogs running on sand', 'model', 'now')")
    conn.close()
    with CaptionIndex.open(db) as index:
        assert [h.record.path for h in index.search("dog runs")] == ["/p/a.jpg"]
        assert index.get("/p/a.jpg").concepts_model is None and index.concepts("/p/a.jpg") == ()
        _photo(index, "/p/a.jpg", "two dogs running on sand", (Concept("dog", 0.9),))
        assert index.search("pet")[0].matched_by == (MatchedBy.CONCEPTS,)


def test_index_stores_the_models_concepts_and_search_and_caption_list_them(tmp_path, photo_dir,
                                                                           tiny_concept_model_path):
    db = tmp_path / "index.db"
    runner = CliRunner()
    shutil.copy2(photo_dir / "chelsea.jpg", photo_dir / "chelsea-copy.jpg")
    result = runner.invoke(cli, ["index", str(photo_dir), "--db", str(db), "--model", str(tiny_concept_model_path)])
    assert result.exit_code == 0, result.output
    with CaptionIndex.open(db) as index:
        cat = index.concepts(photo_dir / "chelsea.jpg")
        assert cat[0].word == "cat" and cat[0].score > 0.9
        assert index.concepts(photo_dir / "chelsea-copy.jpg") == cat  # a copy gets the original's concepts
        assert index.concepts(photo_dir / "coffee.jpg")[0].word == "coffee"

    result = runner.invoke(cli, ["search", "pet", "--db", str(db), "--json"])  # no caption says "pet"
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert {Path(h["path"]).name for h in hits} == {"chelsea.jpg", "chelsea-copy.jpg"}
    # not by the caption's words: by the concepts (and, searching by meaning too, by what "pet" means)
    assert all(h["matched_by"][0] == "concepts" and "words" not in h["matched_by"]
               and h["concepts"][0]["word"] == "cat" for h in hits)
    result = runner.invoke(cli, ["search", "pet", "--db", str(db)])
    assert "(sees: cat" in result.output

    result = runner.invoke(cli, ["caption", str(photo_dir / "coffee.jpg"), "--model", str(tiny_concept_model_path),
                                 "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["concepts"][0]["word"] == "coffee" and 0 < row["concepts"][0]["score"] <= 1
    result = runner.invoke(cli, ["caption", str(photo_dir / "coffee.jpg"), "--model", str(tiny_concept_model_path),
                                 "--concepts"])
    assert result.output.strip().split("\t")[2].startswith("coffee ")
