"""Text helpers shared by the model-free plugins: sentences, content words, quote checking.

Sentence splitting and content words are written by hand because they are tiny and hot (the quote
judge and the extractive debater call them thousands of times per second); fuzzy matching uses
rapidfuzz.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape, unescape
from typing import Any

from arena_core.types import QUOTE_CHECK, QuoteCheck

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
    return list(_sentences(text))


@lru_cache(maxsize=512)
def _sentences(text: str) -> tuple[str, ...]:
    """`sentences`, kept per passage: every speech of every match on an item splits the same
    passage again (a tenth of the cross-play tournament's time)."""
    out: list[str] = []
    for para in text.split("\n"):
        para = para.strip()
        if para:
            out.extend(s.strip() for s in _SENTENCE.split(para) if s.strip())
    return tuple(out)


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


# Past this length a passage is normalised with numpy: the character loop above took 3.4 ms for
# a 5k-word passage, paid again for each passage the cache had dropped (a shuffled dataset of
# long passages paid it on nearly every match). Quotes and short passages keep the loop.
VECTOR_FROM = 2000


def _normalise_vector(text: str) -> tuple[str, Sequence[int], Sequence[int], Sequence[int]] | None:
    """`_normalised_passage`'s work in whole-array steps (about 0.2 ms for 5k words, where the
    loop took 3.4 ms); None where it cannot promise the loop's exact result (a lowercase that
    changes length, or a capital sigma, whose lowercase depends on its neighbours)."""
    import numpy as np

    low = _lower_in_place(text)
    if low is None:
        return None
    codes, alnum = _separated(low)
    # Keep every alphanumeric and the first separator after each run; drop a trailing one.
    keep = alnum.copy()
    keep[1:] |= alnum[:-1]
    index = np.flatnonzero(keep).astype(np.int32)
    out = codes[keep]
    if out.size and out[-1] == 32:
        index, out = index[:-1], out[:-1]
    norm = out.tobytes().decode("ascii" if out.dtype == np.uint8 else "utf-32-le")
    word = out != 32
    edges = np.flatnonzero(word[1:] != word[:-1]) + 1  # where words start and end, inside
    if word.size and word[0]:
        edges = np.concatenate(([0], edges))
    if word.size and word[-1]:
        edges = np.concatenate((edges, [word.size]))
    return norm, index, edges[0::2], edges[1::2]


@lru_cache(maxsize=128)
def _normalised_passage(
    passage: str,
) -> tuple[str, Sequence[int], Sequence[int], Sequence[int]]:
    """The normalised passage, its index map, and the start and end of each of its words."""
    done = _normalise_vector(passage) if len(passage) >= VECTOR_FROM else None
    if done is not None:
        return done
    norm, index = _normalise(passage)
    starts, ends = [], []
    for m in re.finditer(r"\S+", norm):
        starts.append(m.start())
        ends.append(m.end())
    return norm, index, starts, ends


# A quote is looked for in the passage's "spaced" form: lowercased, every non-alphanumeric
# character a space, the same length as the passage, so a position in it is a position in the
# passage and no index map is built. For an ASCII passage it is one bytes.translate (about 10 us
# for 5k words, where normalising with its index map took 0.35 ms): a dataset of thousands of long
# passages, read in shuffled order so that no cache holds them, checks quotes nearly as fast as a
# warm one.
_SPACED_ASCII = bytes(
    (c | 32 if chr(c).isalpha() else c) if c < 128 and chr(c).isalnum() else 32 for c in range(256)
)
SLACK = 5.0  # points below `fuzzy` at which a spaced window is still looked at


class _ByIdentity:
    """A small most-recent cache of `_spaced`, keyed by the passage object itself: an lru_cache
    would hash the passage (about 17 us for 5k words, most of what the spaced form costs), and
    the speeches of a match hand in the same item's passage object every time. A passage equal to
    a cached one but another object is simply computed again."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[int, tuple[str, str | None]] = OrderedDict()

    def __call__(self, passage: str) -> str | None:
        key = id(passage)
        hit = self.entries.get(key)
        if hit is not None and hit[0] is passage:
            self.entries.move_to_end(key)
            return hit[1]
        spaced = _spaced_form(passage)
        self.entries[key] = (passage, spaced)  # holding the passage keeps its id from reuse
        self.entries.move_to_end(key)
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return spaced

    def cache_clear(self) -> None:
        self.entries.clear()


def _spaced_form(passage: str) -> str | None:
    """The passage lowercased with its non-alphanumeric characters as spaces, index for index;
    None where that cannot match `_normalise` (a lowercase of another length, a capital sigma)."""
    if passage.isascii():
        return passage.encode("ascii").translate(_SPACED_ASCII).decode("ascii")
    low = _lower_in_place(passage)
    if low is None:
        return None
    codes, _ = _separated(low)
    return codes.tobytes().decode("utf-32-le")


def _lower_in_place(text: str) -> str | None:
    """`text.lower()` where it keeps every character at its index and lowercases each on its
    own, as `_normalise` does; None otherwise (a lowercase of another length, or a capital
    sigma, whose lowercase depends on its neighbours)."""
    low = text.lower()
    return None if len(low) != len(text) or "\u03a3" in text else low


def _separated(low: str) -> tuple[Any, Any]:
    """A lowercased text as a numpy array of its characters with every non-alphanumeric one a
    space (32), and the mask of the alphanumerics: bytes for ASCII (one bytes.translate), else
    UTF-32 code points, asking Python about each distinct non-ASCII character once."""
    import numpy as np

    if low.isascii():
        codes = np.frombuffer(low.encode("ascii").translate(_SPACED_ASCII), dtype=np.uint8)
        return codes, codes != 32
    codes = np.frombuffer(low.encode("utf-32-le"), dtype=np.uint32)
    alnum = np.frombuffer(_SPACED_ASCII, dtype=np.uint8)[np.minimum(codes, 255)] != 32
    wide = codes >= 128
    if wide.any():
        chars = codes[wide].tolist()
        verdict = {c: chr(c).isalnum() for c in set(chars)}
        alnum[wide] = [verdict[c] for c in chars]
    return np.where(alnum, codes, 32).astype(np.uint32), alnum


# Places `_find_words` checks word by word before it hands the quote to the normalised passage:
# each check walks the quote, so a passage repeating the quote's words many times over (a table
# of zeros) would cost places x words; the normalised passage's search is linear in C.
_MAX_TRIES = 64
TOO_MANY = (-1, -1)


def _find_words(words: Sequence[str], spaced: str) -> tuple[int, int] | None:
    """Where `words` stand in a row in `spaced`, whole and parted by spaces only: (start, end).

    Written by hand: a regex for the quote would be compiled per quote (about 0.1 ms, more than
    the search). Two words side by side in the quote stand in the passage either one space apart
    or behind a run of separators, so the longest pair is found (in C) as "w v" and as "  v", and
    each place is checked word by word from there, both ways. TOO_MANY past `_MAX_TRIES` places.
    """
    if len(words) == 1:
        i = _bounded(words[0], spaced)
        return (i, i + len(words[0])) if i >= 0 else None
    a = max(range(len(words) - 1), key=lambda k: len(words[k]) + len(words[k + 1]))
    # Both needles end in a letter: str.find skips ahead by its last character, and a needle
    # ending in a space (as common as any letter in prose) made the second scan 2.5x slower.
    tries = 0
    for anchor, at, head in ((f"{words[a]} {words[a + 1]}", 0, a), (f"  {words[a + 1]}", 2, a + 1)):
        i = spaced.find(anchor)
        while i >= 0:
            tries += 1
            if tries > _MAX_TRIES:  # a passage repeating the pair: the linear path is safer
                return TOO_MANY
            i += at  # where words[head] starts
            if i == 0 or spaced[i - 1] == " ":
                end = _words_from(spaced, i, words[head:])
                start = _words_before(spaced, i, words[:head]) if end >= 0 else -1
                if start >= 0:
                    return start, end
            i = spaced.find(anchor, i - at + 1)
    return None


def _words_from(spaced: str, at: int, words: Sequence[str]) -> int:
    """The end of `words` read forwards from `at` (spaces between them), or -1."""
    n = len(spaced)
    for k, w in enumerate(words):
        if k:
            if at == n or spaced[at] != " ":
                return -1
            while at < n and spaced[at] == " ":
                at += 1
        if not spaced.startswith(w, at):
            return -1
        at += len(w)
    return at if at == n or spaced[at] == " " else -1


def _words_before(spaced: str, at: int, words: Sequence[str]) -> int:
    """The start of `words` read backwards from `at`, where the next word starts, or -1."""
    for w in reversed(words):
        if at == 0 or spaced[at - 1] != " ":
            return -1
        while at > 0 and spaced[at - 1] == " ":
            at -= 1
        if not spaced.endswith(w, 0, at):
            return -1
        at -= len(w)
        if at > 0 and spaced[at - 1] != " ":
            return -1
    return at


_RUN = re.compile(r"[^ ]+")


def _words_around(spaced: str, lo: int, hi: int) -> tuple[list[tuple[int, int]], int, int]:
    """The words of `spaced` near the window [lo, hi) (three or more beyond each edge, where the
    text has them) as (start, end), the index of the word holding or before `lo` and that of the
    first word ending at or after `hi`: what bisect on all the passage's words would give."""
    margin = 32
    while True:
        a, b = max(0, lo - margin), min(len(spaced), hi + margin)
        if a > 0:
            a = spaced.rfind(" ", 0, a) + 1  # from a word's start
        spans = [m.span() for m in _RUN.finditer(spaced, a, b)]
        if b < len(spaced) and spans and spans[-1][1] == b and spaced[b] != " ":
            spans.pop()  # cut by the window's edge
        first = max(0, bisect_right(spans, (lo, len(spaced))) - 1)
        last = len(spans)
        for k, (_, end) in enumerate(spans):
            if end >= hi:
                last = k
                break
        if (a == 0 or first >= 3) and (b == len(spaced) or len(spans) - last > 3):
            return spans, first, last
        if margin > len(spaced):
            return spans, first, last
        margin *= 4


_spaced = _ByIdentity(256)


def _whole(passage: str, start: int, end: int) -> str:
    """passage[start:end] widened to whole words (to the surrounding whitespace), and stripped of
    the punctuation at its edges: a quote never shows part of a word."""
    while start > 0 and not passage[start - 1].isspace():
        start -= 1
    while end < len(passage) and not passage[end].isspace():
        end += 1
    span = passage[start:end]
    lo, hi = 0, len(span)
    while lo < hi and not span[lo].isalnum():
        lo += 1
    while hi > lo and not span[hi - 1].isalnum():
        hi -= 1
    return span[lo:hi]


def _bounded(needle: str, haystack: str) -> int:
    """Where `needle` occurs in `haystack` without starting or ending inside a word; -1 if
    nowhere. (str.find and two checks: a regex per quote would be compiled per call.)"""
    n = len(needle)
    i = haystack.find(needle)
    while i >= 0:
        j = i + n
        if (i == 0 or not (needle[0].isalnum() and haystack[i - 1].isalnum())) and (
            j == len(haystack) or not (needle[-1].isalnum() and haystack[j].isalnum())
        ):
            return i
        i = haystack.find(needle, i + 1)
    return -1


def find_quote(quote: str, passage: str, *, fuzzy: float = 0.9) -> tuple[str, str] | None:
    """Locate `quote` in `passage`: exact, then normalised, then fuzzy (ratio >= `fuzzy`).

    Returns (how, the passage's true text) or None for a fabrication. Every match is whole words
    of the passage, and a near miss returns the passage's own words (the word-aligned span that
    matches best), so what the judge reads is always real, unclipped text.
    """
    q = quote.strip()
    if not q:
        return None
    if _bounded(q, passage) >= 0:
        return "exact", q
    norm_q, _ = _normalise(q)
    if not norm_q:
        return None
    spaced = _spaced(passage)
    if spaced is None:  # a lowercase that changes length: the whole normalised passage
        return _find_normalised(norm_q, passage, fuzzy)
    hit = _find_words(norm_q.split(" "), spaced)
    if hit == TOO_MANY:
        return _find_normalised(norm_q, passage, fuzzy)
    if hit is not None:
        return "normalised", passage[hit[0] : hit[1]]
    if fuzzy >= 1.0 or len(norm_q) < 12:
        return None
    # rapidfuzz finds the best-aligned window of the passage in C++ (difflib did the same job 50x
    # slower). It reads the spaced passage, where a separator may still be several spaces: a few
    # points lower than on normalised text, so windows are taken from SLACK points under `fuzzy`,
    # and the verdict is the ratio on normalised whole words (`_best_span`).
    from rapidfuzz import fuzz

    near = fuzz.partial_ratio_alignment(norm_q, spaced, score_cutoff=max(0.0, 100 * fuzzy - SLACK))
    if near is None or near.dest_end <= near.dest_start:
        return None
    spans, first, last = _words_around(spaced, near.dest_start, near.dest_end)
    starts, ends, at = [], [], 0
    for s, e in spans:  # the window's words as normalised text: single spaces between them
        starts.append(at)
        ends.append(at + e - s)
        at += e - s + 1
    window = " ".join(spaced[s:e] for s, e in spans)
    best = _best_span(norm_q, window, starts, ends, first, last, fuzzy)
    if best is None:
        return None
    real = _whole(passage, spans[best[0]][0], spans[best[1]][1])
    return ("fuzzy", real) if real else None


def _find_normalised(norm_q: str, passage: str, fuzzy: float) -> tuple[str, str] | None:
    """`find_quote`'s normalised and fuzzy steps on the whole normalised passage and its index
    map: the path of passages whose lowercase changes length (see `_spaced`)."""
    norm_p, index, starts, ends = _normalised_passage(passage)
    pos = _bounded(norm_q, norm_p)
    if pos >= 0:
        return "normalised", passage[index[pos] : index[pos + len(norm_q) - 1] + 1]
    if fuzzy >= 1.0 or len(norm_q) < 12 or not len(starts):
        return None
    from rapidfuzz import fuzz

    hit = fuzz.partial_ratio_alignment(norm_q, norm_p, score_cutoff=100 * fuzzy - SLACK)
    if hit is None or hit.dest_end <= hit.dest_start:
        return None
    first = max(0, bisect_right(starts, hit.dest_start) - 1)
    last = max(0, bisect_left(ends, hit.dest_end))
    best = _best_span(norm_q, norm_p, starts, ends, first, last, fuzzy)
    if best is None:
        return None
    real = _whole(passage, index[starts[best[0]]], index[ends[best[1]] - 1] + 1)
    return ("fuzzy", real) if real else None


def _best_span(
    norm_q: str,
    norm: str,
    starts: Sequence[int],
    ends: Sequence[int],
    first: int,
    last: int,
    fuzzy: float,
) -> tuple[int, int] | None:
    """The aligned window is cut at characters ("he owners", "had not been cu"): score the
    word-aligned spans of `norm` whose edges lie within two words of its edges (words `first` and
    `last`) and return the best one's first and last word, if its ratio reaches `fuzzy`."""
    from rapidfuzz import fuzz

    best: tuple[float, int, int] | None = None
    for a in range(max(0, first - 2), min(len(starts), first + 3)):
        for b in range(max(a, last - 2), min(len(ends), last + 3)):
            score = fuzz.ratio(norm_q, norm[starts[a] : ends[b]])
            if best is None or score > best[0]:
                best = (score, a, b)
    if best is None or best[0] < fuzzy * 100:
        return None
    return best[1], best[2]


_ALNUM = re.compile(r"[^\W_]+")


def copied_runs(segment: str, passage: str, k: int) -> list[tuple[int, int, str]]:
    """Maximal runs of >= k words of `segment` that the passage holds word for word (case and
    punctuation aside): (start, end) in `segment` and the passage's own text of each run.

    Written by hand: a longest-match scan over word k-grams; difflib's matching blocks work on
    characters and would split runs at punctuation."""
    words = [(m.start(), m.end(), m.group().lower()) for m in _ALNUM.finditer(segment)]
    if len(words) < k:
        return []
    norm, index, starts, ends = _normalised_passage(passage)
    pwords, grams = _kgrams(norm, k)
    runs: list[tuple[int, int, str]] = []
    i = 0
    while i + k <= len(words):
        best, at = 0, -1
        for p in grams.get(tuple(w for _, _, w in words[i : i + k]), ()):
            n = k
            while i + n < len(words) and p + n < len(pwords) and words[i + n][2] == pwords[p + n]:
                n += 1
            if n > best:
                best, at = n, p
        if at < 0:
            i += 1
            continue
        real = passage[index[starts[at]] : index[ends[at + best - 1] - 1] + 1]
        runs.append((words[i][0], words[i + best - 1][1], real))
        i += best
    return runs


@lru_cache(maxsize=64)
def _kgrams(norm: str, k: int) -> tuple[list[str], dict[tuple[str, ...], list[int]]]:
    """A normalised passage's words (its single spaces split them, as `_normalised_passage`'s
    word spans do), and where each run of k of them starts."""
    pwords = norm.split(" ") if norm else []
    grams: dict[tuple[str, ...], list[int]] = {}
    for p in range(len(pwords) - k + 1):
        grams.setdefault(tuple(pwords[p : p + k]), []).append(p)
    return pwords, grams


@dataclass(frozen=True)
class Checked:
    """A speech with its quotes checked: the text to show, the counts, and the structured check."""

    text: str
    stats: dict[str, int]
    check: QuoteCheck


def check_quotes(
    text: str, passage: str | None, *, fuzzy: float = 0.9, copied: int | None = None
) -> Checked:
    """Check each <quote> of a speech against the passage and mark it for readers.

    Everything the speaker wrote is HTML-escaped (`<` `>` `&`) first, so a speaker who types
    `<v_quote>`, `</speech>` or any other tag shows as plain text; the only tags left in the
    result are the engine's own <v_quote> (verified, repaired to the passage's words) and
    <invalid_quote>. Judges still read the verdict of each quote from `check`, not the text.

    With `copied` = k, a run of k or more words outside any tag that the passage holds word for
    word counts as a verified quote too (counted under `copied`): small models copy evidence
    without tags, and text copied verbatim is verified by construction, so nothing can be forged.
    """
    stats = {"quotes": 0, "valid": 0, "valid_words": 0, "repaired": 0, "invalid": 0, "copied": 0}
    verified: list[str] = []
    invalid: list[str] = []
    out: list[str] = []
    last = 0

    def plain(segment: str) -> None:
        if not copied or not passage:
            out.append(escape(segment, quote=False))
            return
        at = 0
        for start, end, real in copied_runs(segment, passage, copied):
            out.append(escape(segment[at:start], quote=False))
            out.append(f"<v_quote>{escape(real, quote=False)}</v_quote>")
            verified.append(real)
            stats["quotes"] += 1
            stats["valid"] += 1
            stats["copied"] += 1
            stats["valid_words"] += len(real.split())
            at = end
        out.append(escape(segment[at:], quote=False))

    for m in _QUOTE.finditer(text):
        plain(text[last : m.start()])
        last = m.end()
        stats["quotes"] += 1
        found = find_quote(m.group(1), passage, fuzzy=fuzzy) if passage else None
        if found is None:
            stats["invalid"] += 1
            invalid.append(m.group(1))
            out.append(f"<invalid_quote>{escape(m.group(1), quote=False)}</invalid_quote>")
            continue
        how, real = found
        stats["valid"] += 1
        stats["valid_words"] += len(real.split())
        stats["repaired"] += how == "fuzzy"
        verified.append(real)
        out.append(f"<v_quote>{escape(real, quote=False)}</v_quote>")
    plain(text[last:])
    return Checked("".join(out), stats, QuoteCheck(verified=verified, invalid=invalid))


def mark_quotes(
    text: str, passage: str | None, *, fuzzy: float = 0.9
) -> tuple[str, dict[str, int]]:
    """Replace each <quote> with <v_quote> (verified, repaired) or <invalid_quote>, escaping
    everything else the speaker wrote (see `check_quotes`).

    Returns the marked text and counts: quotes, valid, valid_words, repaired, invalid.
    """
    checked = check_quotes(text, passage, fuzzy=fuzzy)
    return checked.text, checked.stats


def shown_speech(
    text: str, passage: str | None, *, fuzzy: float = 0.9, copied: int | None = None
) -> tuple[str, dict[str, Any]]:
    """A protocol's `shown` step: the marked text, and turn metadata holding the counts and the
    structured quote check judges read (under `QUOTE_CHECK`)."""
    checked = check_quotes(text, passage, fuzzy=fuzzy, copied=copied)
    return checked.text, {**checked.stats, QUOTE_CHECK: checked.check.model_dump()}


# The engine's own tags, as `check_quotes` writes them. Never trust them in text alone: use the
# turn's QuoteCheck (TurnView.quotes); `vouched_text` shows how to read text safely.
VERIFIED = re.compile(r"<v_quote>(.*?)</v_quote>", re.DOTALL)
INVALID = re.compile(r"<invalid_quote>(.*?)</invalid_quote>", re.DOTALL)
_ENGINE_TAG = re.compile(r"<(v_quote|invalid_quote)>(.*?)</\1>", re.DOTALL)


def unmark(text: str) -> str:
    """Undo a marking: each engine tag becomes the <quote> request it answered, and escaped text
    is unescaped. Text read back from a ledger goes through this before it is checked again
    against the passage, so a tag forged in an old, unescaped transcript is checked like any
    other quote instead of being believed."""
    out: list[str] = []
    last = 0
    for m in _ENGINE_TAG.finditer(text):
        out.append(unescape(text[last : m.start()]))
        out.append(f"<quote>{unescape(m.group(2))}</quote>")
        last = m.end()
    out.append(unescape(text[last:]))
    return "".join(out)


def vouched_text(text: str, check: QuoteCheck | None) -> str:
    """Text safe to show a judge as markup: `text` as is when every tag in it is an engine tag
    that `check` vouches for (in order) and no other `<` or `>` is left, else all of it escaped,
    so a forged or unchecked tag reads as the plain text a speaker typed."""
    if check is not None:
        tags = _ENGINE_TAG.findall(text)
        verified = [unescape(body) for kind, body in tags if kind == "v_quote"]
        invalid = [unescape(body) for kind, body in tags if kind == "invalid_quote"]
        rest = _ENGINE_TAG.sub("", text)
        if (
            verified == check.verified
            and invalid == check.invalid
            and "<" not in rest
            and ">" not in rest
        ):
            return text
    return escape(text, quote=False)


def truncate_words(text: str, max_words: int | None) -> tuple[str, bool]:
    if max_words is None:
        return text, False
    words = text.split()
    if len(words) <= max_words:
        return text, False
    return " ".join(words[:max_words]), True
