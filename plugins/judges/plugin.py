"""Registers the built-in model-free judges."""

from __future__ import annotations

from typing import Any

from arena_plugins.judges.gold import GoldOptions, gold_judge
from arena_plugins.judges.human_judge import HumanJudgeOptions, human_judge
from arena_plugins.judges.learned import LearnedJudgeOptions, learned_judge
from arena_plugins.judges.llm_judge import LLMJudgeOptions, llm_judge
from arena_plugins.judges.pairrm import PairRMOptions, pairrm_judge
from arena_plugins.judges.quote import QuoteJudgeOptions
from arena_plugins.judges.reward_model import RewardModelOptions, cost_model, reward_model
from arena_plugins.judges.scoring import (
    InteractiveQuoteOptions,
    KeywordOptions,
    LengthOptions,
    PanelOptions,
)
from pydantic import BaseModel

from arena_core.hookspecs import hookimpl
from arena_core.registry import NoOptions, Registry


def quote(options: QuoteJudgeOptions) -> Any:
    """Weighs verified quotes for each answer; never sees the passage."""
    from arena_plugins.judges.quote import QuoteJudge

    return QuoteJudge(options)


def random_judge(options: BaseModel) -> Any:
    """A seeded coin flip: the floor any judge must beat."""
    from arena_plugins.judges.quote import RandomJudge

    return RandomJudge(options)


def interactive_quote(options: InteractiveQuoteOptions) -> Any:
    """The quote judge, asking the weakest side for evidence between rounds while unsure."""
    from arena_plugins.judges.scoring import InteractiveQuoteJudge

    return InteractiveQuoteJudge(options)


def length(options: LengthOptions) -> Any:
    """Reward = the answer's length in words, up to a cap (an explicit reward-model bias)."""
    from arena_plugins.judges.scoring import LengthJudge

    return LengthJudge(options)


def keyword(options: KeywordOptions) -> Any:
    """Cost = listed (harm) keywords in the answer; lower is preferred."""
    from arena_plugins.judges.scoring import KeywordJudge

    return KeywordJudge(options)


def panel(options: PanelOptions) -> Any:
    """Several judges score the same answers; a rule decides, the verdict keeps every score."""
    from arena_plugins.judges.scoring import PanelJudge

    return PanelJudge(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("judge", "quote", quote, QuoteJudgeOptions)
    registry.add("judge", "random", random_judge, NoOptions)
    registry.add("judge", "interactive-quote", interactive_quote, InteractiveQuoteOptions)
    registry.add("judge", "length", length, LengthOptions)
    registry.add("judge", "keyword", keyword, KeywordOptions)
    registry.add("judge", "panel", panel, PanelOptions)
    registry.add("judge", "llm", llm_judge, LLMJudgeOptions)
    registry.add("judge", "gold", gold_judge, GoldOptions)
    registry.add("judge", "reward-model", reward_model, RewardModelOptions)
    registry.add("judge", "cost-model", cost_model, RewardModelOptions)
    registry.add("judge", "human", human_judge, HumanJudgeOptions)
    registry.add("judge", "pairrm", pairrm_judge, PairRMOptions)
    registry.add("judge", "learned", learned_judge, LearnedJudgeOptions)
