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
    assert stats == {
        "quotes": 2,
        "valid": 1,
        "valid_words": 7,
        "repaired": 0,
        "invalid": 1,
        "copied": 0,
    }


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


def test_copied_runs_count_as_verified_quotes_without_tags() -> None:
    from arena_plugins.text import check_quotes, copied_runs

    speech = (
        "As we know, in 1887 THE LAMP failed during the winter-storm, and <b>nobody knew why "
        "the brass gears</b> stuck. Mara Voss kept ships."
    )
    runs = copied_runs(speech, PASSAGE, 5)
    # The passage's own text comes back (case and punctuation of the passage), whole runs only;
    # "Mara Voss kept" is three words of the passage, under k.
    assert [r[2] for r in runs] == [
        "In 1887 the lamp failed during the winter storm",
        "Nobody knew why the brass gears",
    ]
    checked = check_quotes(speech, PASSAGE, copied=5)
    assert checked.check.verified == [r[2] for r in runs]
    assert checked.stats["copied"] == 2 and checked.stats["invalid"] == 0
    # What the speaker typed around the runs is escaped; only the engine's tags remain.
    assert "&lt;b&gt;" in checked.text and "<b>" not in checked.text
    assert checked.text.count("<v_quote>") == 2
    # Off by default, and tagged quotes are checked as before alongside copied runs.
    assert check_quotes(speech, PASSAGE).check.verified == []
    both = check_quotes(
        "<quote>Mara Voss</quote> then the lamp failed during the winter", PASSAGE, copied=5
    )
    assert both.check.verified == ["Mara Voss", "the lamp failed during the winter"]
    assert both.stats == {
        "quotes": 2,
        "valid": 2,
        "valid_words": 8,
        "repaired": 0,
        "invalid": 0,
        "copied": 1,
    }


def test_copied_runs_take_the_longest_match_and_never_forge() -> None:
    from arena_plugins.text import copied_runs

    passage = "the cat sat on the mat. the cat sat on the hat and then it slept."
    # Two places start with the same five words; the longer continuation wins.
    assert [r[2] for r in copied_runs("so the cat sat on the hat and then", passage, 5)] == [
        "the cat sat on the hat and then"
    ]
    # Five words that are each in the passage, but never in this order: nothing.
    assert copied_runs("mat the sat cat on hat", passage, 5) == []
    assert copied_runs("", passage, 5) == [] and copied_runs("the cat sat", passage, 5) == []
