"""Dataset readers on small generated datasets in every layout, broken rows included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photocap.errors import DatasetError
from photocap.training.datasets import CaptionedImage, DatasetSplits, load_dataset

FLICKR8K = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flickr8k"


def make_images(folder: Path, names: list[str]) -> None:
    """Placeholder image files: the readers only check existence, never decode."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff not decoded")


def by_key(items: list[CaptionedImage]) -> dict[str, tuple[str, ...]]:
    return {item.key: item.captions for item in items}


def all_keys(splits: DatasetSplits) -> list[str]:
    return [i.key for i in splits.train + splits.dev + splits.test]


# --------------------------------------------------------------------------- flickr8k kaggle


@pytest.fixture
def kaggle(tmp_path: Path) -> Path:
    root = tmp_path / "flickr8k"
    make_images(root / "Images", ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "unsplit.jpg"])
    rows = (
        b"image,caption\n"
        b"a.jpg,A dog runs .\n"
        b'a.jpg,"A dog, brown, runs ."\n'
        b"a.jpg,A dog runs .\n"                 # same text by another annotator: kept
        b"b.jpg,  A   cat sleeps .  \n"
        b"b.jpg,\n"                             # empty caption
        b"c.jpg,A child \xe9 plays .\n"         # Latin-1 byte: not UTF-8
        b"c.jpg,A child plays .\n"
        b"d.jpg,Caf\xc3\xa9 on a street .\n"    # valid UTF-8 kept
        b"ghost.jpg,A caption for no image .\n"  # image does not exist
        b"garbled-row-without-comma\n"          # short row
        b"e.jpg,A red car .\n"
        b"unsplit.jpg,In no split .\n"
    )
    (root / "captions.txt").write_bytes(rows)
    (root / "Flickr_8k.trainImages.txt").write_text("a.jpg\nb.jpg\nc.jpg\nghost.jpg\nnocaps.jpg\n")
    (root / "Flickr_8k.devImages.txt").write_text("d.jpg\ne.jpg\n")
    return root


def test_kaggle_layout_official_splits_and_bad_rows(kaggle: Path) -> None:
    splits = load_dataset("flickr8k", kaggle)
    assert "kaggle layout" in splits.source and "official splits" in splits.source
    assert by_key(splits.train) == {
        "a.jpg": ("A dog runs .", "A dog, brown, runs .", "A dog runs ."),
        "b.jpg": ("A cat sleeps .",),
        "c.jpg": ("A child plays .",),
    }
    assert by_key(splits.dev) == {"d.jpg": ("Café on a street .",), "e.jpg": ("A red car .",)}
    assert splits.test == []  # no test split file: fine, empty
    assert "unsplit.jpg" not in all_keys(splits)  # images in no split are left out
    assert splits.train[0].image == kaggle / "Images" / "a.jpg"
    assert splits.train[0].image.is_absolute()

    p = splits.problems
    assert p.empty_captions == 1
    assert p.unreadable_rows == 2  # the non-UTF-8 row and the garbled row
    assert p.missing_images == 2  # ghost.jpg (captioned) and nocaps.jpg (split file only)
    assert p.captions_without_image == 1
    assert p.duplicate_rows == 0
    assert any("UTF-8" in e for e in p.examples)
    assert any("ghost.jpg" in e for e in p.examples)
    assert "empty caption" in p.summary()


def test_kaggle_split_files_in_subfolder_and_captions_file_path(kaggle: Path) -> None:
    text_dir = kaggle / "Flickr8k_text"
    text_dir.mkdir()
    for name in ("Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt"):
        (kaggle / name).rename(text_dir / name)
    (text_dir / "Flickr_8k.testImages.txt").write_text("unsplit.jpg\n")
    splits = load_dataset("flickr8k", kaggle / "captions.txt")
    assert [i.key for i in splits.test] == ["unsplit.jpg"]
    assert [i.key for i in splits.dev] == ["d.jpg", "e.jpg"]


def test_check_images_false_keeps_captions_of_missing_images(kaggle: Path) -> None:
    splits = load_dataset("flickr8k", kaggle, check_images=False)
    assert "ghost.jpg" in by_key(splits.train)
    assert splits.problems.missing_images == 0


# --------------------------------------------------------------------------- flickr8k original


@pytest.fixture
def original(tmp_path: Path) -> Path:
    root = tmp_path / "orig"
    names = [f"{i}.jpg" for i in range(6)]
    make_images(root / "Flicker8k_Dataset", names)
    lines = []
    for name in names:
        for n in range(2):
            lines.append(f"{name}#{n}\tCaption {n} of {name} .")
    lines.append("0.jpg#0\tA repeated line .")  # same name#N again: duplicate
    lines.append("this line has no tab")
    lines.append("1.jpg#2\t   ")
    lines.append("2258277193_586949ec62.jpg.1#0\tThe well-known stray line .")
    text = root / "Flickr8k_text"
    text.mkdir()
    (text / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (text / "Flickr_8k.trainImages.txt").write_text("0.jpg\n1.jpg\n2.jpg\n")
    (text / "Flickr_8k.devImages.txt").write_text("3.jpg\n")
    (text / "Flickr_8k.testImages.txt").write_text("4.jpg\n")
    return root


def test_original_layout(original: Path) -> None:
    splits = load_dataset("flickr8k", original)
    assert "original layout" in splits.source
    assert [i.key for i in splits.train] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [i.key for i in splits.dev] == ["3.jpg"]
    assert [i.key for i in splits.test] == ["4.jpg"]
    assert splits.train[0].captions == ("Caption 0 of 0.jpg .", "Caption 1 of 0.jpg .")
    assert splits.train[0].image == original / "Flicker8k_Dataset" / "0.jpg"
    p = splits.problems
    assert (p.duplicate_rows, p.unreadable_rows, p.empty_captions) == (1, 1, 1)
    assert (p.missing_images, p.captions_without_image) == (1, 1)


def test_original_layout_without_split_files_uses_seeded_split(original: Path) -> None:
    for f in (original / "Flickr8k_text").glob("Flickr_8k.*"):
        f.unlink()
    splits = load_dataset("flickr8k", original, dev_fraction=0.2, test_fraction=0.2)
    assert "seeded split" in splits.source
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (4, 1, 1)
    assert sorted(all_keys(splits)) == [f"{i}.jpg" for i in range(6)]


# --------------------------------------------------------------------------- seeded split


def _folder(tmp_path: Path, n: int, order: list[int] | None = None) -> Path:
    folder = tmp_path / "photos"
    names = [f"img{i:02d}.jpg" for i in range(n)]
    make_images(folder, names)
    rows = ["image,caption"] + [f"{names[i]},photo number {i}" for i in (order or range(n))]
    (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_seeded_split_is_deterministic_and_order_independent(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 20)
    first = load_dataset("folder", folder, seed=3, dev_fraction=0.25, test_fraction=0.1)
    again = load_dataset("folder", folder, seed=3, dev_fraction=0.25, test_fraction=0.1)
    assert first == again
    assert (len(first.train), len(first.dev), len(first.test)) == (13, 5, 2)
    reordered = _folder(tmp_path / "b", 20, order=list(reversed(range(20))))
    other = load_dataset("folder", reordered, seed=3, dev_fraction=0.25, test_fraction=0.1)
    assert [i.key for i in other.dev] == [i.key for i in first.dev]
    different = load_dataset("folder", folder, seed=4, dev_fraction=0.25, test_fraction=0.1)
    assert [i.key for i in different.dev] != [i.key for i in first.dev]


def test_seeded_split_gives_tiny_datasets_a_dev_image(tmp_path: Path) -> None:
    splits = load_dataset("folder", _folder(tmp_path, 3), dev_fraction=0.1)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (2, 1, 0)


# --------------------------------------------------------------------------- folder


def test_folder_kind_rows_and_problems(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    make_images(folder, ["x.jpg", "trip/y.png"])
    (folder / "captions.csv").write_bytes(
        b"\xef\xbb\xbfImage,Caption\n"           # BOM and capitalised header
        b"x.jpg,My cat on the sofa\n"
        b"x.jpg,\"A cat, asleep\"\n"
        b"x.jpg,My cat on the sofa\n"            # duplicate row: dropped
        b"trip/y.png,Beach at sunset, with clouds\n"  # unquoted comma: kept whole
        b"./trip/y.png,Another one\n"
        b"gone.jpg,Deleted photo\n"
        b",no image named\n"
    )
    splits = load_dataset("folder", folder, dev_fraction=0.0)
    assert by_key(splits.train) == {
        "x.jpg": ("My cat on the sofa", "A cat, asleep"),
        "trip/y.png": ("Beach at sunset, with clouds", "Another one"),
    }
    p = splits.problems
    assert (p.duplicate_rows, p.missing_images, p.unreadable_rows) == (1, 1, 1)


def test_folder_kind_with_headerless_captions_file(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    make_images(folder, ["x.jpg", "y.jpg"])
    captions = tmp_path / "elsewhere.csv"
    captions.write_text("x.jpg,one\ny.jpg,two\n")
    splits = load_dataset("folder", folder, captions_file=captions, dev_fraction=0.0)
    assert by_key(splits.train) == {"x.jpg": ("one",), "y.jpg": ("two",)}


# --------------------------------------------------------------------------- coco


def _coco_json(path: Path, images: list[tuple[int, str]], anns: list[tuple[int, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "info": {},
        "images": [{"id": i, "file_name": f, "width": 1, "height": 1} for i, f in images],
        "annotations": [{"id": n, "image_id": i, "caption": c} for n, (i, c) in enumerate(anns)],
    }))


def test_coco_folder_with_train_and_val(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    make_images(root / "train2014", ["t1.jpg", "t2.jpg"])
    make_images(root / "val2014", ["v1.jpg"])
    _coco_json(root / "annotations" / "captions_train2014.json",
               [(1, "t1.jpg"), (2, "t2.jpg"), (3, "t3_missing.jpg"), (4, "t4_nocaps.jpg")],
               [(1, "A train ."), (1, "A red train ."), (2, ""), (2, "A bus ."),
                (3, "Gone ."), (99, "No such image id ."), (2, None)])
    _coco_json(root / "annotations" / "captions_val2014.json",
               [(10, "v1.jpg")], [(10, "A plane .")])
    splits = load_dataset("coco", root)
    assert by_key(splits.train) == {"t1.jpg": ("A train .", "A red train ."), "t2.jpg": ("A bus .",)}
    assert by_key(splits.dev) == {"v1.jpg": ("A plane .",)}
    assert splits.dev[0].image == root / "val2014" / "v1.jpg"
    assert splits.test == []
    p = splits.problems
    assert (p.empty_captions, p.missing_images, p.unreadable_rows) == (1, 1, 1)
    assert p.captions_without_image == 2  # id 99, and the caption of the missing image
    assert p.images_without_captions == 1


def test_coco_single_json_with_images_beside_it(tmp_path: Path) -> None:
    root = tmp_path / "c"
    names = [f"{i}.jpg" for i in range(10)]
    make_images(root, names)
    _coco_json(root / "captions_mine.json", list(enumerate(names)),
               [(i, f"caption {i}") for i in range(10)])
    splits = load_dataset("coco", root / "captions_mine.json", dev_fraction=0.2)
    assert (len(splits.train), len(splits.dev)) == (8, 2)
    assert "seeded split" in splits.source


def test_karpathy_split_file(tmp_path: Path) -> None:
    root = tmp_path / "k"
    make_images(root / "Images", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    data = {"dataset": "flickr8k", "images": [
        {"filename": f, "split": s, "sentences": [{"raw": f"{f} raw", "tokens": ["x"]}]}
        for f, s in [("a.jpg", "train"), ("b.jpg", "restval"), ("c.jpg", "val"), ("d.jpg", "test")]
    ]}
    (root / "dataset_flickr8k.json").write_text(json.dumps(data))
    splits = load_dataset("flickr8k", root / "dataset_flickr8k.json")
    assert [i.key for i in splits.train] == ["a.jpg", "b.jpg"]
    assert [i.key for i in splits.dev] == ["c.jpg"]
    assert splits.test[0].captions == ("d.jpg raw",)
    coco = load_dataset("coco", root / "dataset_flickr8k.json")
    assert len(coco.train) == 2


# --------------------------------------------------------------------------- errors


def test_unrecognised_or_empty_datasets_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="Unknown dataset kind"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("folder", tmp_path / "nope")
    with pytest.raises(DatasetError, match="captions.txt"):
        load_dataset("flickr8k", tmp_path)
    with pytest.raises(DatasetError, match="captions.csv"):
        load_dataset("folder", tmp_path)
    with pytest.raises(DatasetError, match="annotations/captions_"):
        load_dataset("coco", tmp_path)
    with pytest.raises(DatasetError, match="photocap train --data index FOLDER"):
        load_dataset("index", tmp_path)
    with pytest.raises(DatasetError, match="dev_fraction"):
        load_dataset("folder", tmp_path, dev_fraction=0.7, test_fraction=0.4)


def test_nothing_usable_names_the_problems(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "captions.csv").write_text("image,caption\nmissing.jpg,a caption\nx.jpg,\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset("folder", folder)
    message = str(caught.value)
    assert "No usable captioned images" in message and "missing.jpg" in message


def test_csv_without_recognisable_columns(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_images(folder, ["x.jpg"])
    (folder / "captions.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(DatasetError, match="image,caption"):
        load_dataset("folder", folder)


@pytest.mark.skipif(not (FLICKR8K / "captions.txt").is_file(), reason="shared Flickr8k not here")
def test_real_flickr8k_splits() -> None:
    splits = load_dataset("flickr8k", FLICKR8K)
    assert (len(splits.train), len(splits.dev), len(splits.test)) == (6000, 1000, 0)
    assert all(len(i.captions) == 5 for i in splits.train + splits.dev)
    assert splits.problems.total == 0
