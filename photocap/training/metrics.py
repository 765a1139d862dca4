"""Caption metrics: the standard COCO caption evaluation, and a fast CIDEr-D reward.

:func:`score_captions` wraps pycocoevalcap (BLEU-1..4, METEOR, ROUGE-L, CIDEr on
its usual scale: BLEU/METEOR/ROUGE-L in 0..1, CIDEr roughly 0..10). Its prints
are swallowed so ``--json`` output stays clean. SPICE is never used (it
downloads models).

Java: ``tokenize="ptb"`` (Stanford PTBTokenizer, the standard) and METEOR run
Java. Without Java they raise :class:`JavaNotFoundError` naming the package to
install, unless ``java_optional=True``: then METEOR is skipped and the simple
tokenizer is used, each with a :class:`RuntimeWarning`. ``tokenize="simple"``
with BLEU/ROUGE-L/CIDEr needs no Java at all (per-epoch validation).

:class:`CiderD` scores many candidates quickly against references whose
document frequencies were computed once (e.g. over the training set), as a
reward for self-critical sequence training.

No torch here; pycocoevalcap is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import re
import shutil
import subprocess
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from photocap.errors import PhotocapError

__all__ = ["CiderD", "JavaNotFoundError", "METRICS", "score_captions", "simple_tokenize"]

METRICS = ("BLEU", "METEOR", "ROUGE-L", "CIDEr")
_JAVA_HINT = (
    "Java is needed for {what} (the standard COCO caption evaluation runs Java tools). "
    "Install a Java runtime, e.g. 'sudo apt install default-jre-headless', or score "
    "without it: tokenize='simple' and no METEOR."
)


class JavaNotFoundError(PhotocapError):
    """A metric or tokenizer that needs Java was asked for, and Java is not installed."""


# --------------------------------------------------------------------------- tokenizers

_CLITIC_NT = re.compile(r"(\w)n't\b")
_CLITIC = re.compile(r"(\w)'(s|re|ve|ll|d|m)\b")
_TOKEN = re.compile(r"n't|'\w+|\w+(?:[-.]\w+)*")


def simple_tokenize(text: str) -> list[str]:
    """Lowercase words without punctuation, close to pycocoevalcap's PTB tokenizer.

    Like PTB it splits clitics (``"dog's"`` -> ``dog 's``, ``"don't"`` -> ``do n't``)
    and keeps hyphenated words and decimals whole; punctuation tokens are dropped.
    Pure Python, no Java.
    """
    text = _CLITIC.sub(r"\1 '\2", _CLITIC_NT.sub(r"\1 n't", text.lower()))
    return _TOKEN.findall(text)


_PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", "-lrb-", "-rrb-", "-lcb-", "-rcb-",
     ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)


def _package_file(*parts: str) -> Path:
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise PhotocapError(
            "Caption metrics need pycocoevalcap: pip install 'photocap[eval]' (or pycocoevalcap)."
        )
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _require_java(what: str) -> str:
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(_JAVA_HINT.format(what=what))
    return java


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Tokenize like pycocoevalcap's PTBTokenizer (Java), one call for all ``texts``.

    Returns space-joined lowercase tokens with punctuation removed. Unlike the
    pycocoevalcap wrapper it writes its temporary file outside site-packages,
    reads and writes UTF-8, and keeps empty strings empty.
    """
    java = _require_java("the PTB tokenizer")
    jar = _package_file("tokenizer", "stanford-corenlp-3.4.1.jar")
    lines = [" ".join(t.split()) for t in texts]
    todo = [i for i, line in enumerate(lines) if line]
    out = [""] * len(lines)
    if not todo:
        return out
    with tempfile.TemporaryDirectory(prefix="photocap-ptb-") as tmp:
        source = Path(tmp, "sentences.txt")
        source.write_text("\n".join(lines[i] for i in todo), encoding="utf-8")
        cmd = [java, "-Dfile.encoding=UTF-8", "-cp", str(jar),
               "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
               "-encoding", "utf-8", str(source)]
        result = subprocess.run(cmd, capture_output=True, check=False)
    if result.returncode != 0:
        raise PhotocapError(
            "The PTB tokenizer (Java) failed: "
            + result.stderr.decode("utf-8", "replace").strip()[-500:]
        )
    tokenized = result.stdout.decode("utf-8", "replace").split("\n")
    if len(tokenized) < len(todo):
        raise PhotocapError(
            f"The PTB tokenizer returned {len(tokenized)} lines for {len(todo)} sentences."
        )
    for i, line in zip(todo, tokenized):
        out[i] = " ".join(w for w in line.split() if w not in _PTB_PUNCTUATION)
    return out


# --------------------------------------------------------------------------- score_captions


def score_captions(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    *,
    metrics: Iterable[str] = METRICS,
    tokenize: str = "ptb",
    java_optional: bool = False,
) -> dict[str, float]:
    """Corpus scores of ``predictions`` (key -> caption) against ``references`` (key -> captions).

    Scores the keys of ``predictions``; each must have at least one reference.
    ``metrics`` picks from ``"BLEU"`` (gives ``BLEU-1``..``BLEU-4``), ``"METEOR"``,
    ``"ROUGE-L"`` and ``"CIDEr"`` (pycocoevalcap's CIDEr, which is CIDEr-D with
    document frequencies over the evaluated references). ``tokenize`` is ``"ptb"``
    (standard, Java) or ``"simple"`` (:func:`simple_tokenize`, pure Python).
    Raises :class:`JavaNotFoundError` when Java is needed and missing, unless
    ``java_optional`` (then METEOR is skipped and ``"simple"`` used, with a warning).
    """
    wanted = _normalise_metrics(metrics)
    if tokenize not in ("ptb", "simple"):
        raise ValueError(f"tokenize must be 'ptb' or 'simple', not {tokenize!r}")
    keys = list(predictions)
    if not keys:
        raise ValueError("score_captions needs at least one prediction")
    missing = [k for k in keys if not references.get(k)]
    if missing:
        raise ValueError(f"{len(missing)} predictions have no references, e.g. {missing[0]!r}")

    if shutil.which("java") is None and (tokenize == "ptb" or "METEOR" in wanted):
        if not java_optional:
            what = "METEOR" if tokenize != "ptb" else "the PTB tokenizer"
            raise JavaNotFoundError(_JAVA_HINT.format(what=what))
        if "METEOR" in wanted:
            warnings.warn("Java not found: METEOR skipped (install default-jre-headless).",
                          RuntimeWarning, stacklevel=2)
            wanted.remove("METEOR")
        if tokenize == "ptb":
            warnings.warn("Java not found: using the simple tokenizer instead of PTB; scores "
                          "may differ slightly from the standard ones.", RuntimeWarning,
                          stacklevel=2)
            tokenize = "simple"

    res, gts = _tokenized(keys, predictions, references, tokenize)
    return _run_scorers(wanted, gts, res)


def _normalise_metrics(metrics: Iterable[str]) -> list[str]:
    canonical = {m.upper().replace("_", "-"): m for m in METRICS}
    canonical["ROUGE"] = "ROUGE-L"
    out = []
    for metric in metrics:
        name = canonical.get(metric.upper().replace("_", "-"))
        if name is None:
            raise ValueError(f"Unknown metric {metric!r}; use some of {', '.join(METRICS)}")
        if name not in out:
            out.append(name)
    return out


def _tokenized(
    keys: list[str], predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
    tokenize: str,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(res, gts) in pycocoevalcap's shape: key -> list of space-joined token strings."""
    texts = [predictions[k] for k in keys]
    counts = []
    for k in keys:
        refs = list(references[k])
        counts.append(len(refs))
        texts.extend(refs)
    if tokenize == "ptb":
        tokens = ptb_tokenize(texts)
    else:
        tokens = [" ".join(simple_tokenize(t)) for t in texts]
    res = {k: [tokens[i]] for i, k in enumerate(keys)}
    gts: dict[str, list[str]] = {}
    at = len(keys)
    for k, n in zip(keys, counts):
        gts[k] = tokens[at:at + n]
        at += n
    return res, gts


def _run_scorers(wanted: list[str], gts: dict[str, list[str]],
                 res: dict[str, list[str]]) -> dict[str, float]:
    scores: dict[str, float] = {}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        if "BLEU" in wanted:
            from pycocoevalcap.bleu.bleu import Bleu

            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            for n, value in enumerate(bleu, start=1):
                scores[f"BLEU-{n}"] = float(value)
        if "METEOR" in wanted:
            scores["METEOR"] = _meteor(gts, res)
        if "ROUGE-L" in wanted:
            from pycocoevalcap.rouge.rouge import Rouge

            scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
        if "CIDEr" in wanted:
            from pycocoevalcap.cider.cider import Cider

            scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    """METEOR 1.5 through pycocoevalcap's wrapper; its Java process is always stopped."""
    _require_java("METEOR")
    from pycocoevalcap.meteor.meteor import Meteor

    # METEOR's stdio protocol breaks on empty hypotheses and '|||'; keep lines well formed.
    safe_res = {k: [v[0].replace("|||", " ").strip() or "."] for k, v in res.items()}
    safe_gts = {k: [r.replace("|||", " ").strip() or "." for r in v] for k, v in gts.items()}
    meteor = Meteor()
    try:
        score, _ = meteor.compute_score(safe_gts, safe_res)
    finally:
        process = meteor.meteor_p
        with contextlib.suppress(OSError, ValueError):
            process.stdin.close()
        process.kill()
        process.wait()
    return float(score)


# --------------------------------------------------------------------------- CIDEr-D reward

_Ngram = tuple[str, ...]
_Prepared = tuple[dict[_Ngram, float], list[float], int]


class CiderD:
    """CIDEr-D per candidate, with document frequencies fixed at construction.

    ``references`` maps a key to its reference captions, as strings (tokenized
    with ``tokenizer``) or as token lists (used as they are). Document frequency
    counts, for each n-gram, the keys whose references contain it, over these
    references only; IDF uses log(number of keys). Scores follow the CIDEr-D
    definition and pycocoevalcap's arithmetic exactly: tf-idf n-gram vectors for
    n = 1..4, clipped cosine similarity, Gaussian length penalty with ``sigma``
    (length counted as pycocoevalcap does: the number of bigrams, i.e. words - 1,
    so the penalty is inert when ``n=1``), averaged over n and references, times 10.
    With ``references`` equal to the evaluated set it reproduces pycocoevalcap's
    per-image ``Cider`` scores.
    """

    def __init__(
        self,
        references: Mapping[str, Sequence[str]] | Mapping[str, Sequence[Sequence[str]]],
        *,
        n: int = 4,
        sigma: float = 6.0,
        tokenizer: Callable[[str], list[str]] = simple_tokenize,
    ) -> None:
        if not references:
            raise ValueError("CiderD needs references for at least one key")
        self.n = n
        self.sigma = sigma
        self.tokenizer = tokenizer
        self._refs: dict[str, list[Counter[_Ngram]]] = {}
        df: Counter[_Ngram] = Counter()
        for key, refs in references.items():
            counted = [self._counts(ref) for ref in refs]
            self._refs[key] = counted
            df.update({g for c in counted for g in c})
        self._log_docs = math.log(float(len(self._refs)))
        self._log_df = {g: math.log(max(1.0, d)) for g, d in df.items()}
        self._prepared: dict[str, list[_Prepared]] = {}
        self._penalty_denominator = 2.0 * sigma * sigma

    def _counts(self, text: str | Sequence[str]) -> Counter[_Ngram]:
        words = self.tokenizer(text) if isinstance(text, str) else list(text)
        counts: Counter[_Ngram] = Counter()
        for k in range(1, self.n + 1):
            counts.update(tuple(words[i:i + k]) for i in range(len(words) - k + 1))
        return counts

    def _vector(self, counts: Counter[_Ngram]) -> _Prepared:
        vec: dict[_Ngram, float] = {}
        norms = [0.0] * self.n
        log_docs, log_df = self._log_docs, self._log_df
        length = 0
        for gram, tf in counts.items():
            weight = tf * (log_docs - log_df.get(gram, 0.0))
            vec[gram] = weight
            norms[len(gram) - 1] += weight * weight
            if len(gram) == 2:  # pycocoevalcap counts bigrams as "length"
                length += tf
        return vec, [math.sqrt(x) for x in norms], length

    def _references_of(self, key: str) -> list[_Prepared]:
        prepared = self._prepared.get(key)
        if prepared is None:
            try:
                counted = self._refs[key]
            except KeyError:
                raise KeyError(f"CiderD has no references for key {key!r}") from None
            prepared = [self._vector(c) for c in counted]
            self._prepared[key] = prepared
        return prepared

    def score(self, keys: Sequence[str], candidates: Sequence[str | Sequence[str]]) -> list[float]:
        """CIDEr-D of each candidate against the references of the matching key."""
        if len(keys) != len(candidates):
            raise ValueError(f"{len(keys)} keys but {len(candidates)} candidates")
        return [self._against(self._vector(self._counts(c)), self._references_of(k)) for k, c in zip(keys, candidates)]

    def best_other(self, candidates: Sequence[str | Sequence[str]], others: Sequence[Sequence[str]]) -> list[float]:
        """For each candidate, its highest CIDEr-D against the references of any key in ``others``
        (e.g. the other photos of a batch: how well it would describe them too)."""
        out = []
        for candidate, keys in zip(candidates, others):
            prepared = self._vector(self._counts(candidate))
            out.append(max((self._against(prepared, self._references_of(k)) for k in keys), default=0.0))
        return out

    def _against(self, candidate: _Prepared, refs: list[_Prepared]) -> float:
        n = self.n
        vec, norms, length = candidate
        total = 0.0
        for ref_vec, ref_norms, ref_length in refs:
            val = [0.0] * n
            for gram, weight in vec.items():
                ref_weight = ref_vec.get(gram)
                if ref_weight is not None:
                    val[len(gram) - 1] += min(weight, ref_weight) * ref_weight
            sim = 0.0
            for i in range(n):
                if norms[i] != 0.0 and ref_norms[i] != 0.0:
                    sim += val[i] / (norms[i] * ref_norms[i])
                else:
                    sim += val[i]
            delta = float(length - ref_length)
            total += sim * math.exp(-(delta * delta) / self._penalty_denominator)
        return total / n / len(refs) * 10.0 if refs else 0.0
