"""What the n-gram metrics miss: how varied a model's captions are, whether they repeat
themselves, and whether they name the main object of the photo.

- ``distinct``: how many different captions a set of photos gets (Flickr8k-trained models
  collapse onto a few templates: "a dog runs through the grass");
- ``words_used``: how many different words they use;
- ``repeats``: captions that repeat a phrase of three or more words ("a man in a black
  jacket is wearing a black jacket");
- ``object_mention``: with object annotations (COCO instances, or ``objects.json``: file
  name -> ``[[category, area], ...]`` largest first), how often a caption names the photo's
  largest object, by the category's name or a common synonym ("couch" or "sofa"), singular or
  plural; reported for all photos and for those whose largest object is not a person;
- ``people_invented``: with object annotations, photos with no person annotated whose caption
  names one anyway ("a young boy is sitting on a cat"): the object hallucination of CHAIR
  (Rohrbach et al. 2018) for the class a Flickr8k-trained model invents most; and its other side,
  ``people_named``: photos whose largest object is a person whose caption says so.

Pure Python; nothing here imports torch.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from photocap.errors import DatasetError
from photocap.decoding.vocab import tokenize

# COCO's 80 categories -> the words a caption may name them by (singular; plurals are derived).
COCO_NAMES: dict[str, tuple[str, ...]] = {
    "person": ("person", "people", "man", "men", "woman", "women", "boy", "girl", "child", "children", "kid",
               "player", "guy", "lady", "skier", "surfer", "skateboarder", "rider", "baby", "snowboarder"),
    "bicycle": ("bicycle", "bike", "cyclist"), "car": ("car", "taxi", "cab", "suv", "vehicle"),
    "motorcycle": ("motorcycle", "motorbike", "moped", "scooter", "dirt bike"),
    "airplane": ("airplane", "plane", "jet", "aircraft", "airliner"), "bus": ("bus",),
    "train": ("train", "tram", "trolley", "streetcar", "locomotive"), "truck": ("truck", "pickup"),
    "boat": ("boat", "ship", "sailboat", "canoe", "kayak", "yacht", "ferry"),
    "traffic light": ("traffic light", "stoplight", "traffic signal"), "fire hydrant": ("fire hydrant", "hydrant"),
    "stop sign": ("stop sign",), "parking meter": ("parking meter", "meter"), "bench": ("bench",),
    "bird": ("bird", "pigeon", "seagull", "gull", "duck", "goose", "parrot", "sparrow", "finch", "owl", "swan"),
    "cat": ("cat", "kitten", "kitty"), "dog": ("dog", "puppy", "pup"), "horse": ("horse", "pony", "foal"),
    "sheep": ("sheep", "lamb", "ram"), "cow": ("cow", "cattle", "bull", "calf", "ox"),
    "elephant": ("elephant",), "bear": ("bear", "panda", "polar bear", "teddy bear"), "zebra": ("zebra",),
    "giraffe": ("giraffe",), "backpack": ("backpack",), "umbrella": ("umbrella", "parasol"),
    "handbag": ("handbag", "purse", "bag"), "tie": ("tie", "necktie"), "suitcase": ("suitcase", "luggage"),
    "frisbee": ("frisbee",), "skis": ("ski", "skis"), "snowboard": ("snowboard",),
    "sports ball": ("ball", "football", "soccer ball", "baseball", "tennis ball", "basketball"),
    "kite": ("kite",), "baseball bat": ("bat", "baseball bat"), "baseball glove": ("glove", "mitt"),
    "skateboard": ("skateboard",), "surfboard": ("surfboard", "board"),
    "tennis racket": ("racket", "racquet", "tennis racket"), "bottle": ("bottle",),
    "wine glass": ("wine glass", "glass"), "cup": ("cup", "mug"), "fork": ("fork",), "knife": ("knife",),
    "spoon": ("spoon",), "bowl": ("bowl",), "banana": ("banana",), "apple": ("apple",),
    "sandwich": ("sandwich", "burger", "hamburger", "sub"), "orange": ("orange",),
    "broccoli": ("broccoli",), "carrot": ("carrot",), "hot dog": ("hot dog", "hotdog"), "pizza": ("pizza",),
    "donut": ("donut", "doughnut"), "cake": ("cake", "cupcake"), "chair": ("chair", "seat", "stool"),
    "couch": ("couch", "sofa"), "potted plant": ("plant", "potted plant", "houseplant", "flower"),
    "bed": ("bed",), "dining table": ("table", "dining table", "desk"), "toilet": ("toilet",),
    "tv": ("tv", "television", "monitor", "screen"), "laptop": ("laptop", "computer", "notebook"),
    "mouse": ("mouse",), "remote": ("remote", "controller", "remote control"), "keyboard": ("keyboard",),
    "cell phone": ("phone", "cellphone", "cell phone", "smartphone", "telephone"),
    "microwave": ("microwave",), "oven": ("oven", "stove"), "toaster": ("toaster",), "sink": ("sink",),
    "refrigerator": ("refrigerator", "fridge"), "book": ("book",), "clock": ("clock",), "vase": ("vase",),
    "scissors": ("scissors",), "teddy bear": ("teddy bear", "teddy", "stuffed animal", "bear"),
    "hair drier": ("hair dryer", "hair drier", "dryer", "blow dryer"), "toothbrush": ("toothbrush", "tooth brush"),
}
_IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
              "knife": "knives", "sheep": "sheep", "fish": "fish", "calf": "calves", "goose": "geese",
              "foal": "foals", "ox": "oxen", "skis": "skis", "scissors": "scissors", "luggage": "luggage",
              "cattle": "cattle", "broccoli": "broccoli"}


def plural(word: str) -> str:
    """English plural of a noun (the last word of a phrase), good enough for the names above."""
    *head, last = word.split(" ")
    if last in _IRREGULAR:
        out = _IRREGULAR[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        out = last + "es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        out = last[:-1] + "ies"
    else:
        out = last + "s"
    return " ".join([*head, out])


@dataclass(frozen=True)
class CaptionStats:
    captions: int
    distinct: int  # different captions
    words_used: int  # different words over all captions
    repeats: int  # captions repeating a phrase of ``REPEAT_N`` or more words
    objects_named: int | None = None  # photos whose caption names their largest object (None: no annotations)
    objects_total: int | None = None  # photos with annotations
    nonperson_named: int | None = None  # the same, for photos whose largest object is not a person
    nonperson_total: int | None = None
    people_invented: int | None = None  # photos with no person annotated whose caption names one
    people_absent: int | None = None  # annotated photos with no person
    people_named: int | None = None  # photos whose largest object is a person whose caption names one
    people_largest: int | None = None  # photos whose largest object is a person

    def to_dict(self) -> dict[str, int | None]:
        return asdict(self)


REPEAT_N = 3


def repeats_phrase(caption: str, n: int = REPEAT_N) -> bool:
    """Whether ``caption`` holds the same n-word phrase twice."""
    tokens = tokenize(caption)
    seen = set()
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i : i + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False


def names_object(caption: str, category: str) -> bool:
    """Whether ``caption`` names COCO ``category`` (or one of its synonyms), singular or plural."""
    padded = f" {' '.join(tokenize(caption))} "
    names = COCO_NAMES.get(category, (category,))
    return any(f" {form} " in padded for name in names for form in {name, plural(name)})


def caption_stats(predictions: Mapping[str, str],
                  objects: Mapping[str, Sequence[str]] | None = None) -> CaptionStats:
    """Statistics of ``predictions`` (key -> caption); ``objects``: key -> the COCO categories
    annotated in that photo, largest first (as :func:`load_objects` gives them)."""
    texts = list(predictions.values())
    words = {t for text in texts for t in tokenize(text)}
    stats = dict(captions=len(texts), distinct=len(set(texts)), words_used=len(words),
                 repeats=sum(repeats_phrase(t) for t in texts))
    if objects:
        keys = [k for k in predictions if objects.get(k)]
        named = {k for k in keys if names_object(predictions[k], objects[k][0])}
        others = [k for k in keys if objects[k][0] != "person"]
        absent = [k for k in keys if "person" not in objects[k]]
        stats.update(objects_named=len(named), objects_total=len(keys),
                     nonperson_named=len(named.intersection(others)), nonperson_total=len(others),
                     people_invented=sum(names_object(predictions[k], "person") for k in absent),
                     people_absent=len(absent),
                     people_named=sum(names_object(predictions[k], "person") for k in keys
                                      if objects[k][0] == "person"),
                     people_largest=len(keys) - len(others))
    return CaptionStats(**stats)


def load_largest_objects(path: Path, keys: Iterable[str] = ()) -> dict[str, str]:
    """Largest annotated object per image key (see :func:`load_objects`)."""
    return {k: v[0] for k, v in load_objects(path, keys).items()}


def load_objects(path: Path, keys: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """The COCO categories annotated in each image, largest total area first, from ``objects.json``
    (file name -> ``[[category, area], ...]``) or a COCO instances JSON (``instances_*.json``).
    Keys are the file names, as dataset keys are; images without annotations are left out."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read object annotations {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: not an objects.json or a COCO instances file")
    area: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    try:
        if "annotations" in data and "categories" in data:
            names = {c["id"]: c["name"] for c in data["categories"]}
            files = {im["id"]: im["file_name"] for im in data.get("images", [])}
            for ann in data["annotations"]:
                if ann["image_id"] in files:
                    area[files[ann["image_id"]]][names[ann["category_id"]]] += float(ann.get("area", 0.0))
        else:
            for name, objects in data.items():
                for obj in objects if isinstance(objects, list) else ():
                    if isinstance(obj, Sequence) and not isinstance(obj, str) and obj:
                        area[name][str(obj[0])] += float(obj[1]) if len(obj) > 1 else 0.0
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable object annotations ({type(exc).__name__}: {exc})") from exc
    wanted = set(keys)
    return {k: tuple(sorted(by_cat, key=lambda c: -by_cat[c])) for k, by_cat in area.items()
            if by_cat and (not wanted or k in wanted)}
