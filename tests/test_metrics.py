"""Caption metrics on hand-made captions with known values."""

from __future__ import annotations

import math
import shutil
import warnings

import pytest

from photocap.training import metrics
from photocap.training.metrics import CiderD, JavaNotFoundError, score_captions, simple_tokenize

REFS = {
    "1": ["a dog runs on the grass .", "A brown dog is running on grass"],
    "2": ["Two children play in the snow .", "kids playing in snow"],
    "3": ["A man rides a red bike down the street .", "a cyclist on a street"],
    "4": ["A woman in a hat sits on a bench .", "a lady sitting on a park bench"],
}


def test_simple_tokenize_matches_ptb_conventions() -> None:
    assert simple_tokenize("A dog's ball, isn't it?  T-shirt 5.5 ...") == [
        "a", "dog", "'s", "ball", "is", "n't", "it", "t-shirt", "5.5"]
    assert simple_tokenize("") == []


def test_bleu_by_hand() -> None:
    scores = score_captions({"x": "the cat sat on the mat"}, {"x": ["the cat is on the mat"]},
                            metrics=["BLEU"], tokenize="simple")
    # unigrams: the x2, cat, on, mat match of 6 -> 5/6; bigrams 3/5; lengths equal (BP = 1).
    assert scores["BLEU-1"] == pytest.approx(5 / 6, abs=1e-6)
    assert scores["BLEU-2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5), abs=1e-6)
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"}


def test_identical_captions_score_perfectly_without_java(capsys: pytest.CaptureFixture[str]) -> None:
    predictions = {k: refs[0] for k, refs in REFS.items()}
    references = {k: [refs[0]] for k, refs in REFS.items()}
    scores = score_captions(predictions, references, metrics=("BLEU", "ROUGE-L", "CIDEr"),
                            tokenize="simple")
    assert scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(1.0)
    assert scores["CIDEr"] == pytest.approx(10.0)
    assert capsys.readouterr().out == ""  # pycocoevalcap's prints are swallowed


def test_unrelated_captions_score_low() -> None:
    predictions = {"1": "a red bike", "2": "a lady on a bench", "3": "dog on grass",
                   "4": "children in snow"}
    scores = score_captions(predictions, REFS, metrics=("BLEU", "CIDEr"), tokenize="simple")
    good = score_captions({k: v[0] for k, v in REFS.items()},
                          {k: v[1:] for k, v in REFS.items()}, metrics=("CIDEr",),
                          tokenize="simple")
    assert scores["CIDEr"] < 0.5 < good["CIDEr"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no references"):
        score_captions({"x": "a"}, {"y": ["a"]}, tokenize="simple", metrics=["BLEU"])
    with pytest.raises(ValueError, match="Unknown metric"):
        score_captions({"x": "a"}, {"x": ["a"]}, metrics=["SPICE"])
    with pytest.raises(ValueError, match="tokenize"):
        score_captions({"x": "a"}, {"x": ["a"]}, tokenize="nltk")


def test_missing_java_is_a_clear_error_or_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    with pytest.raises(JavaNotFoundError, match="default-jre-headless"):
        score_captions({"1": "a dog"}, REFS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = score_captions({k: v[0] for k, v in REFS.items()}, REFS, java_optional=True)
    messages = " ".join(str(w.message) for w in caught)
    assert "METEOR skipped" in messages and "simple tokenizer" in messages
    assert "METEOR" not in scores and "CIDEr" in scores


@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java")
def test_standard_evaluation_with_java(capsys: pytest.CaptureFixture[str]) -> None:
    """The one Java test: PTB tokenizer and METEOR, all standard metrics."""
    predictions = {k: v[0] for k, v in REFS.items()}
    predictions["4"] = ""  # an empty prediction must not break METEOR's protocol
    scores = score_captions(predictions, REFS)
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    assert 0.5 < scores["METEOR"] <= 1.0
    assert scores["BLEU-1"] > 0.7
    assert capsys.readouterr().out == ""
    simple = score_captions(predictions, REFS, metrics=("BLEU", "CIDEr"), tokenize="simple")
    for key in simple:  # the simple tokenizer agrees with PTB on these captions
        assert simple[key] == pytest.approx(scores[key], abs=1e-9)


# --------------------------------------------------------------------------- CiderD


def test_cider_d_by_hand_unigrams() -> None:
    cider = CiderD({"k1": ["a b"], "k2": ["c d"]}, n=1)
    # two documents, every word in one: idf = ln 2 for all, so cosines decide.
    got = cider.score(["k1", "k1", "k1", "k1"], ["a b", "a c", "a", "a a"])
    assert got[0] == pytest.approx(10.0)
    assert got[1] == pytest.approx(5.0)
    # pycocoevalcap measures length in bigrams, so with n=1 the length penalty is inert.
    assert got[2] == pytest.approx(10 / math.sqrt(2))
    assert got[3] == pytest.approx(10 / (2 * math.sqrt(2)))  # clipped: not 10/sqrt(2)


def test_cider_d_agrees_with_pycocoevalcap_on_the_same_documents() -> None:
    from pycocoevalcap.cider.cider import Cider

    gts = {k: [" ".join(simple_tokenize(r)) for r in v] for k, v in REFS.items()}
    candidates = {"1": "a dog runs on grass", "2": "two kids play in the snow",
                  "3": "a man on a bike", "4": "a man sits on a bench"}
    res = {k: [" ".join(simple_tokenize(c))] for k, c in candidates.items()}
    mean, per_image = Cider().compute_score(gts, res)
    keys = list(res)
    ours = CiderD(REFS).score(keys, [candidates[k] for k in keys])
    assert ours == pytest.approx(list(per_image), abs=1e-9)
    tokens = CiderD({k: [r.split() for r in v] for k, v in gts.items()})
    assert tokens.score(keys, [res[k][0].split() for k in keys]) == pytest.approx(ours)
    assert sum(ours) / len(ours) == pytest.approx(mean)


def test_cider_d_with_fixed_document_frequencies() -> None:
    cider = CiderD(REFS)
    exact, close, longer, unrelated = cider.score(
        ["1"] * 4,
        ["a dog runs on the grass", "a dog runs on grass",
         "a dog runs on the grass and the dog runs on the grass again and again",
         "children in the snow"])
    assert exact > close > unrelated
    assert exact > longer
    assert cider.score([], []) == []
    with pytest.raises(KeyError, match="no references"):
        cider.score(["nope"], ["a dog"])
    with pytest.raises(ValueError):
        cider.score(["1", "2"], ["a dog"])


def test_best_other_says_how_well_a_caption_would_describe_the_other_photos() -> None:
    cider = CiderD(REFS)
    generic, specific = "a dog runs on the grass", "a dog runs on the grass ."
    own = cider.score(["1"], [specific])[0]
    assert cider.best_other([specific], [["1"]]) == [own]  # against its own photo: its own score
    fits_others = cider.best_other(["a man rides a red bike down the street", "kids playing in snow"],
                                   [["1", "2", "4"], ["1", "3", "4"]])
    assert fits_others[0] < 0.5 * cider.score(["3"], ["a man rides a red bike down the street"])[0]
    assert fits_others[1] < 0.5 * cider.score(["2"], ["kids playing in snow"])[0]
    assert cider.best_other([generic], [[]]) == [0.0]
