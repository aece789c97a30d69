"""Text helpers shared by the model-free plugins: sentences, content words, quote checking.

Sentence splitting and content words are written by hand because they are tiny and hot (the quote
judge and the extractive debater call them thousands of times per second); fuzzy matching uses
rapidfuzz.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[A-Z0-9])")
_WORD = re.compile(r"[a-z0-9]+")
_QUOTE = re.compile(r"<quote>(.*?)</quote>", re.DOTALL)

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves one two first did said says say
    answer passage question story because though yet still even many much upon onto
    """.split()
)


def sentences(text: str) -> list[str]:
    """Split into sentences on . ! ? followed by space and a capital, digit or quote."""
    out: list[str] = []
    for para in text.split("\n"):
        para = para.strip()
        if para:
            out.extend(s.strip() for s in _SENTENCE.split(para) if s.strip())
    return out


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude suffix stripper: enough for 'discovered' to meet 'discovery' half-way."""
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "ly", "s", "y", "e"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=65536)
def content_words(text: str) -> frozenset[str]:
    """Stemmed lowercase words that carry meaning (stopwords dropped)."""
    return frozenset(stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS)


def overlap(a: str, b: str) -> int:
    return len(content_words(a) & content_words(b))


def _normalise(text: str) -> tuple[str, list[int]]:
    """Lowercase alphanumerics with single spaces, and each kept char's index in `text`."""
    out: list[str] = []
    index: list[int] = []
    space = True
    for i, ch in enumerate(text):
        if ch.isalnum():
            out.append(ch.lower())
            index.append(i)
            space = False
        elif not space:
            out.append(" ")
            index.append(i)
            space = True
    if out and out[-1] == " ":
        out.pop()
        index.pop()
    return "".join(out), index


@lru_cache(maxsize=64)
def _normalised_passage(passage: str) -> tuple[str, list[int]]:
    return _normalise(passage)


def find_quote(quote: str, passage: str, *, fuzzy: float = 0.9) -> tuple[str, str] | None:
    """Locate `quote` in `passage`: exact, then normalised, then fuzzy (ratio >= `fuzzy`).

    Returns (how, the passage's true text) or None for a fabrication. A near miss returns the
    passage's own words, so what the judge reads is always real text.
    """
    q = quote.strip()
    if not q:
        return None
    if q in passage:
        return "exact", q
    norm_q, _ = _normalise(q)
    if not norm_q:
        return None
    norm_p, index = _normalised_passage(passage)
    pos = norm_p.find(norm_q)
    if pos >= 0:
        return "normalised", passage[index[pos] : index[pos + len(norm_q) - 1] + 1]
    if fuzzy >= 1.0 or len(norm_q) < 12:
        return None
    # rapidfuzz finds the best-aligned window of the passage in C++; difflib did the same job
    # 50x slower and dominated the default tournament's run time.
    from rapidfuzz import fuzz

    hit = fuzz.partial_ratio_alignment(norm_q, norm_p, score_cutoff=fuzzy * 100)
    if hit is None or hit.dest_end <= hit.dest_start:
        return None
    return "fuzzy", passage[index[hit.dest_start] : index[hit.dest_end - 1] + 1].strip()


def mark_quotes(
    text: str, passage: str | None, *, fuzzy: float = 0.9
) -> tuple[str, dict[str, int]]:
    """Replace each <quote> with <v_quote> (verified, repaired) or <invalid_quote>.

    Returns the marked text and counts: quotes, valid, valid_words, repaired, invalid.
    """
    stats = {"quotes": 0, "valid": 0, "valid_words": 0, "repaired": 0, "invalid": 0}

    def sub(m: re.Match[str]) -> str:
        stats["quotes"] += 1
        found = find_quote(m.group(1), passage, fuzzy=fuzzy) if passage else None
        if found is None:
            stats["invalid"] += 1
            return f"<invalid_quote>{m.group(1)}</invalid_quote>"
        how, real = found
        stats["valid"] += 1
        stats["valid_words"] += len(real.split())
        stats["repaired"] += how == "fuzzy"
        return f"<v_quote>{real}</v_quote>"

    return _QUOTE.sub(sub, text), stats


VERIFIED = re.compile(r"<v_quote>(.*?)</v_quote>", re.DOTALL)
INVALID = re.compile(r"<invalid_quote>(.*?)</invalid_quote>", re.DOTALL)


def truncate_words(text: str, max_words: int | None) -> tuple[str, bool]:
    if max_words is None:
        return text, False
    words = text.split()
    if len(words) <= max_words:
        return text, False
    return " ".join(words[:max_words]), True
