"""Long passages are normalised in whole-array steps (issue 18); the result must be exactly the
character loop's: same text, same index map, same word spans, so quote checks do not change."""

from __future__ import annotations

import random
import re

import pytest

import plugins.text as plugins_text
from plugins.text import VECTOR_FROM, _normalise, _normalise_vector, find_quote


def _reference(text: str) -> tuple[str, list[int], list[int], list[int]]:
    norm, index = _normalise(text)
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", norm)]
    return norm, index, [a for a, _ in spans], [b for _, b in spans]


@pytest.mark.parametrize("alphabet", ["aB1 .,_\n", "abcXYZ09 ,.;'\"-_\n\t\u2014\u2019\u00e9\u00c9"])
def test_vector_normalisation_equals_the_loop(alphabet: str) -> None:
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 50)))
        got = _normalise_vector(text)
        assert got is not None
        norm, index, starts, ends = got
        assert (norm, list(index), list(starts), list(ends)) == _reference(text), repr(text)


def test_a_lowercase_that_changes_length_falls_back_to_the_loop() -> None:
    assert _normalise_vector("\u0130stanbul and more") is None  # 'İ'.lower() is two characters
    assert _normalise_vector("\u03a3\u039f\u03a3") is None  # final sigma depends on context


def test_quotes_in_a_long_passage_are_found_as_in_a_short_one() -> None:
    rng = random.Random(3)
    words = "The ship's captain, Dr. Vale, heard the signal; the crew did not!".split()
    passage = " ".join(rng.choice(words) for _ in range(VECTOR_FROM))
    assert len(passage) >= VECTOR_FROM
    cut = passage.split()[100:108]
    loose = " ".join(cut).upper().replace(",", "").replace(";", " -")
    how, real = find_quote(loose, passage)  # type: ignore[misc]
    assert how == "normalised" and real.lower().split()[0].strip(",;!.") in loose.lower()
    assert real in passage
    para = list(cut) + passage.split()[108:112]
    para[4] = "indeed"
    fuzzy = find_quote(" ".join(para), passage)
    assert fuzzy is not None and fuzzy[0] == "fuzzy" and fuzzy[1] in passage


# Quotes are looked for in the passage's spaced form (lowercased, separators as spaces, index for
# index) with no normalised copy: the answer must be the one the normalised passage and its index
# map give (`_find_normalised`, still the path of passages whose lowercase changes length).


@pytest.mark.parametrize("alphabet", ["ab c. ,", "ab ab c.\u2019\u00e9\u2014 ,;\n"])
def test_the_spaced_search_finds_what_the_normalised_passage_finds(alphabet: str) -> None:
    rng = random.Random(11)
    for _ in range(3000):
        passage = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        words = passage.split()
        if not words:
            continue
        i = rng.randrange(len(words))
        quote = " ".join(words[i : i + rng.randint(1, 4)])
        if rng.random() < 0.5:  # one that may be nowhere
            quote = " ".join(rng.choice(["ab", "c", "abc", "b", "a"]) for _ in range(3))
        quote = quote.upper() if rng.random() < 0.5 else quote
        norm_q = _normalise(quote)[0]
        want = plugins_text._find_normalised(norm_q, passage, 1.0) if norm_q else None
        got = find_quote(quote, passage, fuzzy=1.0)
        if got is not None and got[0] == "exact":
            continue
        # Both find it or neither; where it stands twice, either place is the quote.
        assert (got is None) == (want is None), (quote, passage, got, want)
        if got is not None:
            assert got[0] == "normalised" and got[1] in passage
            assert _normalise(got[1])[0] == norm_q


def test_the_spaced_search_respects_words_and_runs_of_separators() -> None:
    passage = "Alpha, beta -- gamma!  Betamax; alphabet delta."
    assert find_quote("BETA GAMMA", passage) == ("normalised", "beta -- gamma")
    assert find_quote("alpha beta", passage) == ("normalised", "Alpha, beta")
    assert find_quote("gamma betamax", passage) == ("normalised", "gamma!  Betamax")
    assert find_quote("bet gamma", passage, fuzzy=1.0) is None  # part of a word is not a word
    assert find_quote("alpha bet", passage, fuzzy=1.0) is None
    assert find_quote("GAMMA.", passage) == ("normalised", "gamma")
    assert find_quote("\u2018Alpha\u2019 beta", "\u201cAlpha\u201d \u2014 beta.") == (
        "normalised",
        "Alpha\u201d \u2014 beta",
    )


def test_the_spaced_form_is_kept_per_passage_object() -> None:
    passage = "One two three. " * 300
    plugins_text._spaced.cache_clear()
    first = plugins_text._spaced(passage)
    assert plugins_text._spaced(passage) is first  # the same object: no second translation
    copy = "".join(list(passage))
    assert copy is not passage and plugins_text._spaced(copy) == first
    assert plugins_text._spaced("\u0130stanbul") is None  # lowercase of another length


def test_a_passage_repeating_the_quote_hands_it_to_the_linear_search() -> None:
    """Each place the spaced search checks walks the quote; past `_MAX_TRIES` places it stops
    and the normalised passage (a linear search in C) answers, the same answer."""
    passage = "zero, " * 3000 + "one."
    words = ["zero"] * 200 + ["one"]
    assert plugins_text._find_words(words, plugins_text._spaced(passage)) == plugins_text.TOO_MANY
    how, real = find_quote(" ".join(w.upper() for w in words), passage)  # type: ignore[misc]
    assert how == "normalised" and real == "zero, " * 199 + "zero, one"
