"""Caption statistics beside the n-gram metrics: variety, repeats, and naming the main object."""

from __future__ import annotations

import json

import pytest

from photocap.errors import DatasetError
from photocap.training.captionstats import (
    caption_stats,
    load_largest_objects,
    load_objects,
    names_object,
    plural,
    repeats_phrase,
)


def test_repeated_phrases_are_found():
    assert repeats_phrase("a man in a black jacket is wearing a black jacket")
    assert not repeats_phrase("a man in a black jacket is wearing a black hat")
    assert not repeats_phrase("a dog")


def test_objects_are_named_by_synonyms_and_plurals_as_whole_words():
    assert names_object("two elephants walk by the water", "elephant")
    assert names_object("A cat sleeps on a sofa.", "couch")
    assert names_object("a plate of food on a table", "dining table")
    assert names_object("some knives on a board", "knife")
    assert not names_object("a man in a busy street", "bus")  # "busy" is not a bus
    assert not names_object("a dog on the grass", "cat")
    assert [plural(w) for w in ("bus", "knife", "sheep", "teddy bear", "pony")] == \
        ["buses", "knives", "sheep", "teddy bears", "ponies"]


def test_stats_count_variety_repeats_named_objects_and_invented_people():
    predictions = {"a.jpg": "a dog runs on the grass", "b.jpg": "a dog runs on the grass",
                   "c.jpg": "a man in a red shirt is wearing a red shirt", "d.jpg": "a pizza on a table",
                   "e.jpg": "a young boy is sitting on a cat", "f.jpg": "two women are sitting on a pizza"}
    objects = {"a.jpg": ("dog",), "b.jpg": ("cat", "person"), "c.jpg": ("person",), "d.jpg": ("pizza", "dining table"),
               "e.jpg": ("cat",), "f.jpg": ("dining table", "pizza", "person")}
    stats = caption_stats(predictions, objects)
    assert (stats.captions, stats.distinct, stats.repeats) == (6, 5, 1)
    assert stats.words_used == len(set("a dog runs on the grass man in red shirt is wearing pizza table young boy "
                                       "sitting cat two women are".split()))
    assert (stats.objects_named, stats.objects_total, stats.nonperson_named, stats.nonperson_total) == (4, 6, 3, 5)
    # a, d and e have no person; only e's caption names one anyway (f's women are in the photo)
    assert (stats.people_invented, stats.people_absent) == (1, 3)
    assert (stats.people_named, stats.people_largest) == (1, 1)  # c's largest object is a person, and it says so
    quiet = caption_stats({**predictions, "c.jpg": "a red shirt on a hanger"}, objects)
    assert (quiet.people_named, quiet.people_largest) == (0, 1)
    assert caption_stats(predictions).objects_total is None and caption_stats(predictions).people_invented is None


def test_object_annotations_in_both_formats(tmp_path):
    simple = tmp_path / "objects.json"
    simple.write_text(json.dumps({"1.jpg": [["pizza", 900.0], ["person", 100.0]], "2.jpg": [["bus", 5.0]], "3.jpg": []}))
    assert load_objects(simple) == {"1.jpg": ("pizza", "person"), "2.jpg": ("bus",)}
    assert load_largest_objects(simple) == {"1.jpg": "pizza", "2.jpg": "bus"}
    assert load_largest_objects(simple, ["2.jpg"]) == {"2.jpg": "bus"}
    coco = tmp_path / "instances_val.json"
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "horse"}],
        "annotations": [{"image_id": 1, "category_id": 1, "area": 40.0}, {"image_id": 1, "category_id": 2, "area": 30.0},
                        {"image_id": 1, "category_id": 2, "area": 30.0}],
    }))
    assert load_largest_objects(coco) == {"1.jpg": "horse"}  # two horses outweigh one person
    assert load_objects(coco) == {"1.jpg": ("horse", "person")}


def test_unreadable_object_annotations_are_a_dataset_error(tmp_path):
    bad = tmp_path / "objects.json"
    bad.write_text(json.dumps({"1.jpg": [["pizza", "big"]]}))
    with pytest.raises(DatasetError, match="unreadable object annotations"):
        load_objects(bad)
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg"}], "categories": [],
                               "annotations": [{"image_id": 1, "category_id": 7, "area": 3.0}]}))
    with pytest.raises(DatasetError, match="unreadable object annotations"):  # category 7 is not listed
        load_objects(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="not an objects.json"):
        load_objects(bad)
    with pytest.raises(DatasetError, match="cannot read"):
        load_objects(tmp_path / "missing.json")
