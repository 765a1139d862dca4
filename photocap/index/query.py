"""The search-query parser: free user text -> a safe FTS5 MATCH expression, and its parts.

Pure (no database): every word is emitted as a quoted FTS5 string, so no input raises an SQL
error. Supported on purpose: ``"exact phrase"``, ``word*`` (prefix), ``-word`` / ``NOT word``
(exclude) and ``OR``. A query over :data:`MAX_QUERY_CHARS` characters or :data:`MAX_QUERY_TERMS`
distinct words is refused with a QueryError, since FTS5's cost grows with every term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from photocap.errors import QueryError

MIN_PREFIX_LEN = 3  # an unstarred last word is prefix-matched from this length on
# A search is a few words; these bound what FTS5 is asked to do with pasted text (repeated words
# are merged first, so only distinct ones count). 64 OR'ed words take about 50 ms.
MAX_QUERY_CHARS = 10_000
MAX_QUERY_TERMS = 64
# Words too common in captions to narrow a search; dropped from a query that has other words.
STOPWORDS = frozenset(
    "a an the of on in at to with and is are its it this that by for from near into".split()
)

# One lexical item of a search string: a "quoted phrase", or a word (optionally
# -negated at the start of a word, optionally ending in *). Everything else
# (operators' punctuation, colons, carets, parentheses, a lone quote) is dropped.
_QUERY_TOKEN = re.compile(r'"(?P<phrase>[^"]*)"|(?P<neg>(?:^|(?<=\s))-)?(?P<word>\w+)(?P<star>\*)?')
_WORD = re.compile(r"\w+")


def fts_query(text: str, *, prefix_last: bool = True) -> str | None:
    """Turn free user text into a safe FTS5 MATCH expression, or ``None`` if it has no words.

    Words are ANDed; every word is emitted as a quoted FTS5 string, so nothing
    the user types is parsed as FTS5 syntax. Supported on purpose: ``"exact
    phrase"``, ``word*`` (prefix), ``-word`` (exclude), and ``OR`` between words
    or phrases. With ``prefix_last`` the last plain word is prefix-matched when
    it has at least three letters (search as you type). Common words ("a",
    "the", "on" ...) are dropped when other words remain. Stemming applies to
    every word.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"The search is {len(text):,} characters long; photocap searches at most "
            f"{MAX_QUERY_CHARS:,}. Use a few words."
        )
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    pending_not = False
    last_word_slot: tuple[list[str], int] | None = None
    for m in _QUERY_TOKEN.finditer(text):
        phrase, word = m.group("phrase"), m.group("word")
        if word is not None and not m.group("neg") and not m.group("star"):
            if word == "OR":
                if groups[-1][0] or groups[-1][1]:
                    groups.append(([], []))
                continue
            if word == "AND":
                continue
            if word == "NOT":
                pending_not = True
                continue
        if phrase is not None:
            words = _WORD.findall(phrase)
            if not words:
                continue
            term = '"' + " ".join(words).lower() + '"'
            is_plain_word = False
        else:
            term = f'"{word.lower()}"' + ("*" if m.group("star") else "")
            is_plain_word = not m.group("star")
        positive, negative = groups[-1]
        if m.group("neg") or pending_not:
            negative.append(term)
            pending_not = False
            last_word_slot = None
        else:
            positive.append(term)
            last_word_slot = (positive, len(positive) - 1) if is_plain_word else None
    if last_word_slot is not None and not text[-1:].isspace():
        terms, i = last_word_slot
        if len(terms[i]) - 2 >= MIN_PREFIX_LEN:
            if prefix_last:
                terms[i] += "*"
        elif len(terms) > 1 and _bare(terms[i]) not in STOPWORDS:
            terms[i] = ""  # a word still being typed, too short to expand: ignore it for now
    parts: list[str] = []
    terms = 0
    for positive, negative in groups:
        positive[:] = dict.fromkeys(t for t in positive if t)  # "dog dog dog": one term, not three
        positive[:] = [t for t in positive if not (t.endswith("*") and t[:-1] in positive)]  # dog dog*
        negative[:] = dict.fromkeys(negative)
        content = [t for t in positive if _bare(t) not in STOPWORDS]
        if content:
            positive[:] = content  # "a dog on the beach" -> dog beach (phrases keep every word)
        if not positive:
            continue  # FTS5 has no pure negation
        expr = " ".join(positive)
        if negative:
            expr += " NOT " + (negative[0] if len(negative) == 1 else "(" + " OR ".join(negative) + ")")
        if expr not in parts:
            parts.append(expr)
            terms += sum(1 + t.count(" ") for t in (*positive, *negative))  # a phrase: its words
    if terms > MAX_QUERY_TERMS:
        raise QueryError(
            f"The search has {terms} words to match (repeats count once, a phrase each of its "
            f"words); photocap searches at most {MAX_QUERY_TERMS}. Use fewer words."
        )
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " OR ".join(f"({p})" for p in parts)


@dataclass(frozen=True)
class QueryParts:
    """What a search string says besides its words' meaning: for search by meaning (see
    :func:`query_parts`)."""

    text: str  # the words and phrases' words to embed, operators and excluded words left out
    phrases: tuple[str, ...] = ()  # "quoted phrases", as FTS5 strings
    excluded: tuple[str, ...] = ()  # -word / NOT word, as FTS5 strings (prefix-starred if typed so)
    has_or: bool = False  # alternatives: a photo needs any one of the phrases, not all


def query_parts(text: str) -> QueryParts:
    """Split user text as :func:`fts_query` reads it: the meaning to embed, phrases, exclusions."""
    if len(text) > MAX_QUERY_CHARS:
        fts_query(text)  # raises the QueryError
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    has_or = pending_not = False
    for m in _QUERY_TOKEN.finditer(text):
        phrase, word = m.group("phrase"), m.group("word")
        if word is not None and not m.group("neg") and not m.group("star") and word in ("OR", "AND", "NOT"):
            has_or |= word == "OR"
            pending_not = word == "NOT"
            continue
        if phrase is not None:
            ws = _WORD.findall(phrase)
            if not ws:
                continue
            term = '"' + " ".join(ws).lower() + '"'
        else:
            ws = [word]
            term = f'"{word.lower()}"' + ("*" if m.group("star") else "")
        if m.group("neg") or pending_not:
            excluded.append(term)
            pending_not = False
            continue
        words.extend(ws)
        if phrase is not None:
            phrases.append(term)
    return QueryParts(" ".join(words), tuple(dict.fromkeys(phrases)), tuple(dict.fromkeys(excluded)), has_or)


def _bare(term: str) -> str:
    return term.rstrip("*").strip('"').lower()

