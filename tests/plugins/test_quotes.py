"""Quote checking: exact, normalised, fuzzy repair, fabrication."""

from __future__ import annotations

import re

from arena_plugins.text import (
    content_words,
    find_quote,
    mark_quotes,
    sentences,
    stem,
    truncate_words,
)

PASSAGE = (
    "The lighthouse keeper, Mara Voss, kept a log of every ship. In 1887 the lamp failed "
    "during the winter storm. Nobody knew why the brass gears had seized."
)


def test_exact_and_normalised() -> None:
    assert find_quote("the lamp failed during the winter storm", PASSAGE) == (
        "exact",
        "the lamp failed during the winter storm",
    )
    how, real = find_quote("THE LAMP failed,  during the winter-storm", PASSAGE)  # type: ignore[misc]
    assert how == "normalised" and real == "the lamp failed during the winter storm"


def test_near_miss_is_repaired_to_the_true_text() -> None:
    how, real = find_quote("Nobody knew why the brass gear had seized", PASSAGE)  # type: ignore[misc]
    assert how == "fuzzy"
    assert real in PASSAGE and "gears" in real


def test_fabrication_is_invalid() -> None:
    assert find_quote("The keeper sabotaged the lamp for insurance money", PASSAGE) is None
    marked, stats = mark_quotes(
        "Look: <quote>the lamp failed during the winter storm</quote> and "
        "<quote>Mara confessed to everything</quote>",
        PASSAGE,
    )
    assert "<v_quote>the lamp failed during the winter storm</v_quote>" in marked
    assert "<invalid_quote>Mara confessed to everything</invalid_quote>" in marked
    assert stats == {"quotes": 2, "valid": 1, "valid_words": 7, "repaired": 0, "invalid": 1}


def test_no_passage_means_no_quote_verifies() -> None:
    marked, stats = mark_quotes("<quote>anything</quote>", None)
    assert stats["invalid"] == 1 and "<invalid_quote>" in marked


def test_sentences_and_words() -> None:
    assert len(sentences(PASSAGE)) == 3
    assert stem("lighthouse") in content_words(PASSAGE) and "the" not in content_words(PASSAGE)
    assert stem("discovered") == stem("discovers")
    assert truncate_words("a b c d", 2) == ("a b", True)
    assert truncate_words("a b", 5) == ("a b", False)


STORY = (
    "The owners had not been cured of the fever after eleven days. The mill stood idle, and "
    "the town's weavers (forty of them) waited for word."
)


def _whole_words(span: str, passage: str) -> bool:
    """`span` occurs in `passage` starting and ending on word boundaries."""
    return re.search(rf"(?<!\w){re.escape(span)}(?!\w)", passage) is not None


def test_a_repaired_quote_is_whole_words_of_the_passage() -> None:
    # near misses whose best character window starts or ends inside a word
    cases = {
        "he owners had not been cured of the fever": "The owners had not been cured of the fever",
        "owners had not been cu": "owners had not been cured",
        "not been cured of the fever after eleven day": (
            "not been cured of the fever after eleven days"
        ),
        "weavers forty of them waited for wor": "weavers (forty of them) waited for word",
    }
    for quote, expected in cases.items():
        found = find_quote(quote, STORY)
        assert found is not None, quote
        how, real = found
        assert how == "fuzzy" and real == expected, (quote, real)
        assert _whole_words(real, STORY)


def test_a_quote_inside_a_word_is_not_an_exact_match() -> None:
    assert find_quote("he owners had not been cured", STORY) == (
        "fuzzy",
        "The owners had not been cured",
    )
    assert find_quote("eleven day", STORY) is None  # too short to repair, and not whole words
