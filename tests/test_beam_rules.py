"""Beam search's rules on a scripted decoder (the same next-word distribution for every
beam at step t): no repeated phrases, at most one copy of a concept, and constrained
decoding that must name a word."""

from __future__ import annotations

import torch

from photocap.model.beam import beam_search
from photocap.model.decoders import Decoder

WORDS = ["<pad>", "<start>", "<end>", "<unk>", "a", "man", "in", "black", "jacket", "is", "wearing", "hat", "ball"]
ID = {w: i for i, w in enumerate(WORDS)}
# The likeliest caption repeats itself, as Flickr8k models' captions do; each step has a runner-up.
SCRIPT = [("a", "the"), ("man", "boy"), ("in", "is"), ("a", "the"), ("black", "red"), ("jacket", "hat"),
          ("is", "<end>"), ("wearing", "with"), ("a", "the"), ("black", "red"), ("jacket", "hat", 3.5),
          ("<end>", "is")]
WORDS += sorted({w for step in SCRIPT for w in step[:2]} - set(WORDS))
ID = {w: i for i, w in enumerate(WORDS)}


class Scripted(Decoder):
    """Step t's logits: 5 for SCRIPT[t]'s first word, 3 for its runner-up (or as given), 0 for "<end>" (after
    the first word), -3 for "ball", -10 for the rest."""

    def __init__(self) -> None:
        super().__init__()
        rows = torch.full((len(SCRIPT) + 1, len(WORDS)), -10.0)
        rows[:, ID["<end>"]], rows[:, ID["ball"]] = 0.0, -3.0
        rows[0, ID["<end>"]] = -10.0  # no empty caption
        for t, (best, second, *runner_up) in enumerate(SCRIPT):
            rows[t, ID[second]], rows[t, ID[best]] = (runner_up or [3.0])[0], 5.0
        self.rows = rows

    def init_state(self, feats, concepts=None):
        return {"t": torch.zeros(feats.size(0), dtype=torch.long)}

    def step(self, tokens, state):
        t = state["t"].clamp(max=len(SCRIPT))
        return self.rows[t], {"t": state["t"] + 1}


def _search(n=1, banned=(), **kwargs):
    """Beams ranked by log-probability per word (length penalty 1), as the bundled model's are."""
    feats = torch.zeros(n, 4, 8)
    hyps = beam_search(Scripted(), feats, start_id=ID["<start>"], end_id=ID["<end>"],
                       banned_ids=(ID["<pad>"], ID["<start>"], ID["<unk>"], *banned), beam_size=3, max_len=16,
                       length_penalty=1.0, **kwargs)
    return [" ".join(WORDS[i] for i in h.tokens) for h in hyps]


def _repeats(text, n=3):
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def test_without_blocking_the_caption_repeats_itself():
    (text,) = _search()
    assert text == "a man in a black jacket is wearing a black jacket" and _repeats(text)


def test_no_caption_repeats_a_three_word_phrase():
    (text,) = _search(no_repeat_ngram=3)
    assert text == "a man in a black jacket is wearing a black hat"
    assert not _repeats(text)


def test_once_groups_are_emitted_at_most_once():
    (text,) = _search(once=((ID["black"], ID["red"]),))
    assert text.split().count("black") + text.split().count("red") == 1


def test_constrained_search_names_the_required_word_and_leaves_other_rows_alone():
    free, forced = _search(n=2, no_repeat_ngram=3, required=[[], [ID["ball"]]])
    assert free == _search(no_repeat_ngram=3)[0]
    assert "ball" not in free.split() and "ball" in forced.split()


def test_an_impossible_constraint_falls_back_to_the_best_caption():
    (text,) = _search(no_repeat_ngram=3, required=[[ID["ball"]]], banned=(ID["ball"],))
    assert text == _search(no_repeat_ngram=3)[0]


def test_a_bonus_weighs_the_required_word_against_the_best_caption_without_it():
    plain = _search(no_repeat_ngram=3)[0]
    forced = _search(no_repeat_ngram=3, required=[[ID["ball"]]])[0]
    assert "ball" in forced.split() and forced != plain
    assert _search(no_repeat_ngram=3, required=[[ID["ball"]]], required_bonus=[0.01])[0] == plain  # not worth it
    assert _search(no_repeat_ngram=3, required=[[ID["ball"]]], required_bonus=[5.0])[0] == forced


def test_an_id_that_writes_the_same_word_counts_as_that_word_for_repeats():
    """A copied concept "black" (id 99 here) followed by "jacket" repeats "a black jacket" too."""
    from photocap.decoding.beam import blocked as _blocked

    history = [ID["a"], ID["black"], ID["jacket"], ID["is"], ID["wearing"], ID["a"], ID["black"]]
    assert _blocked(history, 3, ()) == {ID["jacket"]}
    copied = [ID["a"], 99, ID["jacket"], ID["is"], ID["wearing"], ID["a"], ID["black"]]
    assert _blocked(copied, 3, ()) == set()
    assert _blocked(copied, 3, (), {99: (ID["black"],)}) == {ID["jacket"]}
    assert _blocked(copied[:-1] + [99], 3, (), {99: (ID["black"],)}) == {ID["jacket"]}


def test_a_copied_phrase_counts_as_its_words_for_repeats():
    """A copied concept "black jacket" (id 99) then "is wearing a black": "jacket" would repeat it."""
    from photocap.decoding.beam import blocked as _blocked

    phrase = {99: (ID["black"], ID["jacket"]), 100: (ID["jacket"], -1)}
    history = [ID["a"], 99, ID["is"], ID["wearing"], ID["a"], ID["black"]]
    assert _blocked(history, 3, (), phrase) == {ID["jacket"], 100}  # and the copy that starts with it
    assert _blocked(history, 3, ()) == set()  # read as one id, nothing repeats


def test_no_word_twice_in_a_row():
    """ "a yellow yellow mailbox", or a copied "baseball player" then "player", is never written."""
    from photocap.decoding.beam import stutter

    assert stutter([]) == set()
    assert stutter([ID["a"], ID["black"]]) == {ID["black"]}
    phrase = {99: (ID["black"], ID["jacket"]), 100: (ID["jacket"],), 101: (ID["hat"],)}
    assert stutter([ID["a"], 99], phrase) == {ID["jacket"], 100}
    assert stutter([ID["a"], ID["black"]], phrase) == {ID["black"], 99}
    # nor on both sides of a joiner ("a black and black jacket"), here "with" standing in for "and"
    joiners = frozenset({ID["with"]})
    assert stutter([ID["a"], ID["black"], ID["with"]], joiners=joiners) == {ID["with"], ID["black"]}
    assert stutter([ID["a"], 99, ID["with"]], phrase, joiners) == {ID["with"], ID["jacket"], 100}
    assert stutter([ID["a"], ID["black"], ID["is"]], joiners=joiners) == {ID["is"]}


def test_the_search_does_not_stutter():
    """A decoder whose likeliest second word is the first again: "a a man ..." only without the rule."""
    decoder = Scripted()
    decoder.rows[1, ID["a"]] = 6.0
    feats = torch.zeros(1, 4, 8)

    def first_words(ngram):
        hyp = beam_search(decoder, feats, start_id=ID["<start>"], end_id=ID["<end>"],
                          banned_ids=(ID["<pad>"], ID["<start>"], ID["<unk>"]), beam_size=3, max_len=16,
                          length_penalty=1.0, no_repeat_ngram=ngram)[0]
        return [WORDS[i] for i in hyp.tokens][:2]

    assert first_words(0) == ["a", "a"]
    assert first_words(3) == ["a", "man"]


class Counting(Scripted):
    """Scripted, recording how many rows the decoder ran at each step."""

    def __init__(self) -> None:
        super().__init__()
        self.rows_run: list[int] = []

    def step(self, tokens, state):
        self.rows_run.append(tokens.size(0))
        return super().step(tokens, state)


def test_only_constrained_images_carry_the_second_bank_of_beams():
    decoder = Counting()
    required, bonus = [[], [ID["ball"]], [], [ID["ball"]]], [0.0, 0.01, 0.0, 5.0]
    hyps = beam_search(decoder, torch.zeros(4, 4, 8), start_id=ID["<start>"], end_id=ID["<end>"],
                       banned_ids=(ID["<pad>"], ID["<start>"], ID["<unk>"]), beam_size=3, max_len=16,
                       length_penalty=1.0, no_repeat_ngram=3, required=required, required_bonus=bonus)
    texts = [" ".join(WORDS[i] for i in h.tokens) for h in hyps]
    # Each image's caption is the one it gets when searched alone (the bonus its own) ...
    assert texts[0] == texts[2] == texts[1] == _search(no_repeat_ngram=3)[0]
    assert texts[3] == _search(no_repeat_ngram=3, required=[[ID["ball"]]], required_bonus=[5.0])[0]
    # ... and the free images ran 3 rows each, the constrained two banks of 3: never 4 x 6 rows at once.
    assert max(decoder.rows_run) == 2 * 6


def test_a_caption_never_says_white_and_white():
    """The decoding rules every front end uses (``decoding.captions.decode``) pass "and" and "or" as
    joiners: a decoder whose likeliest caption is "a white and white dog" says "a white and black dog"."""
    from photocap.decoding.captions import PhotoConcepts, decode
    from photocap.decoding.config import ModelConfig
    from photocap.decoding.vocab import Vocabulary
    from photocap.model.beam import TorchSteps

    vocab = Vocabulary.build(["a white and black dog"], min_freq=1)
    script = [("a", "dog"), ("white", "black"), ("and", "dog"), ("white", "black"), ("dog", "a"), ("<end>", "a")]

    class Likeliest(Decoder):
        def __init__(self):
            super().__init__()
            self.rows = torch.full((len(script) + 1, len(vocab)), -10.0)
            for t, (best, second) in enumerate(script):
                self.rows[t, vocab.stoi[second]], self.rows[t, vocab.stoi[best]] = 3.0, 5.0

        def init_state(self, feats, concepts=None):
            return {"t": torch.zeros(feats.size(0), dtype=torch.long)}

        def step(self, tokens, state):
            return self.rows[state["t"].clamp(max=len(script))], {"t": state["t"] + 1}

    cfg = ModelConfig(arch="transformer", no_repeat_ngram=3, beam_size=3, length_penalty=1.0)
    steps = TorchSteps(Likeliest(), torch.zeros(1, 4, 8))
    assert decode(steps, [PhotoConcepts()], cfg, vocab)[0].text == "a white and black dog"
    cfg.no_repeat_ngram = 0  # the rules off: the decoder's own likeliest caption
    steps = TorchSteps(Likeliest(), torch.zeros(1, 4, 8))
    assert decode(steps, [PhotoConcepts()], cfg, vocab)[0].text == "a white and white dog"
