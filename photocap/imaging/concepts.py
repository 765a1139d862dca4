"""ImageNet classes -> plain concept words: what the encoder's own classifier says a photo shows.

The table (``imagenet_concepts.tsv`` beside this module) maps each of the 1000 ImageNet-1k
classes to the word a caption would use ("Labrador retriever" -> dog, "espresso" -> coffee,
"washbasin" -> sink), its plural, one of :data:`GROUPS` (the caption model learns one
embedding per group, so a word it never saw in training still arrives as "some food" or
"some vehicle"), broader words a search should also match (dog -> animal, pet) and aliases
(the breed or species name itself).

Many classes share a word (120 breeds are "dog"), so a photo's concepts are *words*, each
scored by the summed probability of its classes: a dog the classifier cannot place among
the breeds is still a confident "dog".

A model file carries the :class:`ConceptSet` it was trained with (words, plurals, groups
and the class -> word map) in its header, so a later edit of the table never shifts the
words under a trained model. Pure Python: nothing here imports torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

# The caption model's group embedding has one row per entry, in this order: append only.
GROUPS = (
    "dog", "cat", "bird", "mammal", "sea_animal", "reptile", "insect", "food", "fruit_veg", "drink",
    "road_vehicle", "rail_vehicle", "boat", "aircraft", "furniture", "appliance", "electronics",
    "kitchenware", "container", "clothing", "accessory", "sports", "instrument", "tool", "toy",
    "building", "place", "landscape", "plant", "object",
)
NUM_CLASSES = 1000
TABLE_FILE = "imagenet_concepts.tsv"
_COLUMNS = ("index", "imagenet", "word", "plural", "group", "broader", "aliases")


@dataclass(frozen=True)
class ConceptWord:
    """One concept word: how a caption writes it, its group, and what a search should also match."""

    word: str
    plural: str
    group: str
    broader: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def terms(self) -> tuple[str, ...]:
        """Every word a search for this concept may use: the word, its plural, aliases, broader words."""
        seen: dict[str, None] = {}
        for term in (self.word, self.plural, *self.aliases, *self.broader):
            seen.setdefault(term, None)
        return tuple(seen)


@dataclass(frozen=True)
class ConceptSet:
    """The concept words a model knows and which ImageNet class maps to which word."""

    words: tuple[ConceptWord, ...]
    class_word: tuple[int, ...]  # (1000,) class index -> index into ``words``
    version: str  # digest of what defines the set (words, plurals, groups, class map)

    def __post_init__(self) -> None:
        if len(self.class_word) != NUM_CLASSES:
            raise ValueError(f"a concept set maps {NUM_CLASSES} classes, not {len(self.class_word)}")
        if not self.words or not all(0 <= i < len(self.words) for i in self.class_word):
            raise ValueError("a concept set's class map points outside its word list")
        for w in self.words:
            if w.group not in GROUPS:
                raise ValueError(f"concept {w.word!r} has unknown group {w.group!r}")
            if not w.word or not w.plural:
                raise ValueError("concept words and plurals must not be empty")

    def __len__(self) -> int:
        return len(self.words)

    def group_ids(self) -> list[int]:
        """Per word, its row in :data:`GROUPS`."""
        return [GROUPS.index(w.group) for w in self.words]

    def index_of(self, word: str) -> int | None:
        return next((i for i, w in enumerate(self.words) if w.word == word), None)

    def to_dict(self) -> dict[str, Any]:
        """What a model file's header stores (search terms are not: they may improve without retraining)."""
        return {"version": self.version, "class_word": list(self.class_word),
                "words": [[w.word, w.plural, w.group] for w in self.words]}

    @classmethod
    def from_dict(cls, data: Any) -> "ConceptSet":
        """Rebuild from a header; broader words and aliases come from this photocap's table."""
        if not isinstance(data, dict):
            raise ValueError("the concept set must be a JSON object")
        words, class_word = data.get("words"), data.get("class_word")
        if not isinstance(words, list) or not all(
                isinstance(w, list) and len(w) == 3 and all(isinstance(x, str) for x in w) for w in words):
            raise ValueError("concept words must be a list of [word, plural, group]")
        if not isinstance(class_word, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                       for i in class_word):
            raise ValueError("the concept class map must be a list of integers")
        known = {w.word: w for w in bundled_concepts().words}
        rebuilt = []
        for word, plural, group in words:
            extra = known.get(word)
            rebuilt.append(ConceptWord(word, plural, group, extra.broader if extra else (),
                                       extra.aliases if extra else ()))
        return cls(tuple(rebuilt), tuple(class_word), str(data.get("version", "")))


def _split_list(field: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in field.split(",") if part.strip())


def parse_table(text: str) -> ConceptSet:
    """The TSV table -> a :class:`ConceptSet` (words in order of their first class)."""
    lines = text.splitlines()
    if not lines or tuple(lines[0].split("\t")) != _COLUMNS:
        raise ValueError(f"concept table header must be: {' '.join(_COLUMNS)}")
    words: list[ConceptWord] = []
    where: dict[str, int] = {}
    class_word: list[int] = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(_COLUMNS):
            raise ValueError(f"concept table line {number}: {len(cells)} columns, not {len(_COLUMNS)}")
        index, _imagenet, word, plural, group, broader, aliases = cells
        if int(index) != len(class_word):
            raise ValueError(f"concept table line {number}: class {index} out of order")
        entry = ConceptWord(word, plural, group, _split_list(broader), _split_list(aliases))
        if word not in where:
            where[word] = len(words)
            words.append(entry)
        else:
            first = words[where[word]]
            if (first.plural, first.group) != (plural, group):
                raise ValueError(f"concept table line {number}: {word!r} has another plural or group than before")
            merged = ConceptWord(word, plural, group, tuple(dict.fromkeys(first.broader + entry.broader)),
                                 tuple(dict.fromkeys(first.aliases + entry.aliases)))
            words[where[word]] = merged
        class_word.append(where[word])
    defining = "\n".join(f"{w.word}\t{w.plural}\t{w.group}" for w in words) + "\n" + ",".join(map(str, class_word))
    version = hashlib.sha1(defining.encode()).hexdigest()[:12]
    return ConceptSet(tuple(words), tuple(class_word), version)


@lru_cache(maxsize=1)
def bundled_concepts() -> ConceptSet:
    """The table shipped with this photocap (read once per process, on first use)."""
    text = resources.files("photocap.imaging").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return parse_table(text)


def with_article(article: str, word: str) -> str:
    """``a``/``an`` as the word after it needs ("a elephant" -> "an elephant", "an dog" -> "a dog")."""
    if article not in ("a", "an"):
        return article
    return "an" if _vowel_sound(word) else "a"


_CONSONANT_SOUND = ("uni", "use", "usu", "ute", "uto", "eu", "one", "once", "ukulele")
_VOWEL_SOUND = ("hour", "honest", "honor", "honour", "heir")


def _vowel_sound(word: str) -> bool:
    w = word.lower()
    if w.startswith(_VOWEL_SOUND):
        return True
    if w.startswith(_CONSONANT_SOUND):
        return False
    return w[:1] in "aeiou"
