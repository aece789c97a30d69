"""Quote checking: exact, normalised, fuzzy repair, fabrication."""

from __future__ import annotations

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
