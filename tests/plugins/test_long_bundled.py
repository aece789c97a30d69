"""The bundled long set: original articles, four answers, a held-out split by article."""

from __future__ import annotations

import asyncio

from arena_core.match import CallPolicy, Match, resolve
from arena_core.plugins import get_registry


def test_long_set_is_split_by_article_with_four_answers_and_a_distractor() -> None:
    source = get_registry().build("dataset", "bundled", {"set": "long"})
    tune, test = list(source.items("tune")), list(source.items("test"))
    assert len(tune) == len(test) == 30
    articles = {
        s: {i.metadata["article"] for i in items} for s, items in (("t", tune), ("x", test))
    }
    assert len(articles["t"]) == len(articles["x"]) == 5 and not articles["t"] & articles["x"]
    for item in tune + test:
        assert len(item.answers) == 4 and item.gold is not None
        assert item.distractor is not None and item.distractor != item.gold
        assert len((item.context or "").split()) >= 900
        assert item.metadata["kind"] in ("literal", "inference")
    assert len(list(get_registry().build("dataset", "bundled", {}).items())) == 48  # unchanged


def test_a_long_article_debate_is_judged_on_its_own_question() -> None:
    reg = get_registry()
    item = next(iter(reg.build("dataset", "bundled", {"set": "long"}).items("tune")))
    gold, wrong = item.debate_pair()
    agent = reg.build("agent", "extractive", {})
    match = Match(
        match_id="long",
        protocol="debate",
        item=item,
        players={"A": "a", "B": "b"},
        assignment={"A": wrong, "B": gold},
        agents={"A": agent, "B": agent},
        judge=reg.build("judge", "quote", {}),
        judge_name="quote",
        policy=CallPolicy(retries=0),
    )
    asyncio.run(reg.build("protocol", "debate", {}).play(match))
    assert match.main is not None
    verdict = resolve(*match.main, item, "quote")
    assert verdict.correct is True  # the meteor story loses to the filters packed with grit
    assert all(t.quotes is not None and t.quotes.verified for t in match.visible(None))
