"""Caption statistics beside the n-gram metrics: variety, repeats, and naming the main object."""

from __future__ import annotations

import json

from photocap.training.captionstats import caption_stats, load_largest_objects, names_object, plural, repeats_phrase


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


def test_stats_count_variety_repeats_and_named_objects():
    predictions = {"a.jpg": "a dog runs on the grass", "b.jpg": "a dog runs on the grass",
                   "c.jpg": "a man in a red shirt is wearing a red shirt", "d.jpg": "a pizza on a table"}
    largest = {"a.jpg": "dog", "b.jpg": "cat", "c.jpg": "person", "d.jpg": "pizza"}
    stats = caption_stats(predictions, largest)
    assert (stats.captions, stats.distinct, stats.repeats) == (4, 3, 1)
    assert stats.words_used == len(set("a dog runs on the grass man in red shirt is wearing pizza table".split()))
    assert (stats.objects_named, stats.objects_total, stats.nonperson_named, stats.nonperson_total) == (3, 4, 2, 3)
    assert caption_stats(predictions).objects_total is None


def test_object_annotations_in_both_formats(tmp_path):
    simple = tmp_path / "objects.json"
    simple.write_text(json.dumps({"1.jpg": [["pizza", 900.0], ["person", 100.0]], "2.jpg": [["bus", 5.0]]}))
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
