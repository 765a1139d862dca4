"""Full-text search: stemming, prefixes, ranking, snippets, and hostile query strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from photocap.index.query import fts_query
from photocap.index.store import CaptionIndex
from photocap.records import PhotoUpdate

CAPTIONS = {
    "dog.jpg": "a dog runs on the beach",
    "dogs.jpg": "two dogs playing with a ball in the park",
    "cat.jpg": "a cat sleeping on a red sofa",
    "car.jpg": "a red car parked near a building",
    "bike.jpg": "a man riding a bike down a hill",
    "quote.jpg": 'a sign that says "stop" near a road',
    "kid.jpg": "children running through a sprinkler",
}

HOSTILE = [
    "", " ", '"', '""', '"unbalanced', "dog\"", "'", "dog'; DROP TABLE photos; --", "AND", "OR", "NOT",
    "dog AND", "OR dog", "NOT dog", "dog NOT", "NEAR(dog cat)", "NEAR", "dog NEAR/2 cat", "*", "dog*", "*dog",
    "**", "caption:dog", ":", "^dog", "^", "(", ")", "(dog", "dog)", "((dog OR cat)", "{dog cat}", "[dog]",
    "dog + cat", "-", "--", "-dog", "dog -", "a/b\\c", "%", "_", "\x00", "dog\x00cat", "\n\t", "🐶 dog",
    "ÉTÉ", "rowid:1", "captions_fts:x", "bm25(", "dog OR OR cat", "AND AND AND", "\"dog\" \"cat",
    "x" * 5000, "dog " * 300,
]


@pytest.fixture
def index(tmp_path: Path):
    with CaptionIndex.open(tmp_path / "i.db") as idx:
        idx.upsert_photos(
            PhotoUpdate(str(tmp_path / name), 1, 1, caption=text, source="model", model="m", score=-1.0)
            for name, text in CAPTIONS.items()
        )
        yield idx


def found(index: CaptionIndex, query: str) -> set[str]:
    return {Path(h.record.path).name for h in index.search(query)}


def test_stemming_finds_word_forms(index: CaptionIndex) -> None:
    assert found(index, "dogs running") == {"dog.jpg"}  # "a dog runs"
    assert "kid.jpg" in found(index, "run")
    assert found(index, "sleeps") == {"cat.jpg"}
    assert found(index, "dog") >= {"dog.jpg", "dogs.jpg"}


def test_prefix_matching(index: CaptionIndex) -> None:
    assert found(index, "build") == {"car.jpg"}  # last word is a prefix while typing
    assert found(index, "sprink") == {"kid.jpg"}
    assert found(index, "bu*") == {"car.jpg"}  # explicit star
    assert found(index, "sprink ") == set()  # a finished word is a whole word


def test_whole_word_first_then_prefix(index: CaptionIndex, tmp_path: Path) -> None:
    index.upsert_photos([PhotoUpdate(str(tmp_path / "ball2.jpg"), 1, 1, caption="a ballerina dancing",
                                     source="model")])
    assert found(index, "ball") == {"dogs.jpg"}  # "ball" is a word: no expansion to "ballerina"
    assert found(index, "baller") == {"ball2.jpg"}  # not a word: expanded
    assert found(index, "ball*") == {"dogs.jpg", "ball2.jpg"}  # explicit star always expands
    assert index.count_matches("baller") == 1


def test_phrases_or_and_exclusion(index: CaptionIndex) -> None:
    assert found(index, '"red car"') == {"car.jpg"}
    assert found(index, '"car red"') == set()
    assert found(index, "cat OR bike") == {"cat.jpg", "bike.jpg"}
    assert found(index, "red -car") == {"cat.jpg"}
    assert found(index, "red NOT sofa") == {"car.jpg"}
    assert found(index, "red AND car") == {"car.jpg"}


def test_ranking_and_snippet(index: CaptionIndex, tmp_path: Path) -> None:
    index.upsert_photos([PhotoUpdate(str(tmp_path / "many.jpg"), 1, 1, source="model",
                                     caption="red red red apples on a red plate")])
    hits = index.search("red")
    assert Path(hits[0].record.path).name == "many.jpg"
    assert [h.rank for h in hits] == sorted(h.rank for h in hits)
    assert "[red]" in hits[0].snippet
    html = index.search("sofa", highlight=("<b>", "</b>"))
    assert html[0].snippet == "a cat sleeping on a red <b>sofa</b>"
    assert index.count_matches("red") == 3


def test_limit_offset_and_counts(index: CaptionIndex) -> None:
    all_hits = index.search("a", limit=100)
    assert len(all_hits) == index.count_matches("a") == len(CAPTIONS)
    page1, page2 = index.search("a", limit=3), index.search("a", limit=3, offset=3)
    assert [h.record.id for h in page1 + page2] == [h.record.id for h in all_hits[:6]]
    assert index.search("dog", limit=0) == []


def test_caption_updates_follow_fts(index: CaptionIndex, tmp_path: Path) -> None:
    index.set_user_caption(tmp_path / "dog.jpg", "a puppy on sand")
    assert found(index, "puppy") == {"dog.jpg"}
    assert "dog.jpg" not in found(index, "beach")
    index.delete([tmp_path / "dog.jpg"])
    assert found(index, "puppy") == set()


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_raise(index: CaptionIndex, query: str) -> None:
    hits = index.search(query)
    assert index.count_matches(query) >= len(hits) >= 0


def test_quotes_and_operators_are_words(index: CaptionIndex) -> None:
    assert found(index, '"stop') == {"quote.jpg"}  # unbalanced quote: the word still counts
    assert found(index, "NEAR") == {"car.jpg", "quote.jpg"}  # matches the word "near"
    assert found(index, "caption:dog") == set()  # no column filter syntax: both are words


def test_fts_query_shapes() -> None:
    assert fts_query("") is None and fts_query('"(*:^') is None
    assert fts_query("dogs running") == '"dogs" "running"*'
    assert fts_query("a b ") == '"b"'  # common words go when others remain
    assert fts_query("a dog on the beach") == '"dog" "beach"*'
    assert fts_query("the") == '"the"*' and fts_query("the", prefix_last=False) == '"the"'
    assert fts_query("dog b") == '"dog"'  # a word still being typed, too short to expand
    assert fts_query("cat OR bike") == '("cat") OR ("bike"*)'
    assert fts_query("x OR y") == '("x") OR ("y")'  # too short to expand
    assert fts_query("dog -cat") == '"dog" NOT "cat"'
    assert fts_query("-cat") is None  # FTS5 has no pure negation
