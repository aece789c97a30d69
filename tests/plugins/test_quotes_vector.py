"""Long passages are normalised in whole-array steps (issue 18); the result must be exactly the
character loop's: same text, same index map, same word spans, so quote checks do not change."""

from __future__ import annotations

import random
import re

import pytest

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
