"""Registers the built-in model-free agents."""

from __future__ import annotations

from typing import Any

from arena_plugins.agents import extractive, fake
from arena_plugins.agents.anthropic_agent import AnthropicOptions, anthropic_agent
from arena_plugins.agents.hf_agent import HFOptions, transformers_agent
from arena_plugins.agents.human import HumanOptions, human_agent
from arena_plugins.agents.openai_agent import (
    CompatibleOptions,
    OpenAIOptions,
    compatible_agent,
    openai_agent,
)
from arena_plugins.agents.replay import ReplayOptions
from arena_plugins.agents.rewriter import RewriterOptions
from arena_plugins.agents.sampler import SamplerOptions
from arena_plugins.agents.vllm_agent import VLLMOptions, vllm_agent

from arena_core.hookspecs import hookimpl
from arena_core.registry import Registry


def deterministic(options: fake.DeterministicOptions) -> Any:
    """A fixed template reply, no quotes."""
    return fake.DeterministicAgent(options)


def random_agent(options: fake.RandomOptions) -> Any:
    """Quotes random passage sentences; can fabricate quotes."""
    return fake.RandomAgent(options)


def scripted(options: fake.ScriptedOptions) -> Any:
    """Replies from a list or a file, in order."""
    return fake.ScriptedAgent(options)


def faulty(options: fake.FaultyOptions) -> Any:
    """Raises, hangs or returns garbage at configured rates (for tests)."""
    return fake.FaultyAgent(options)


def extractive_agent(options: extractive.ExtractiveOptions) -> Any:
    """Quotes the passage sentences that best support its answer (a real model-free debater)."""
    return extractive.ExtractiveAgent(options)


def replay(options: ReplayOptions) -> Any:
    """Speaks a stored debate's recorded speeches (a human debater against a model)."""
    from arena_plugins.agents.replay import ReplayAgent

    return ReplayAgent(options)


def sampler(options: SamplerOptions) -> Any:
    """Varied answers from the item's candidates, quotes and fillers (self-play, duels)."""
    from arena_plugins.agents.sampler import SamplerAgent

    return SamplerAgent(options)


def rewriter(options: RewriterOptions) -> Any:
    """Rewrites prompts with EvolInstruct-style templates (a model-free eva creator)."""
    from arena_plugins.agents.rewriter import RewriterAgent

    return RewriterAgent(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("agent", "deterministic", deterministic, fake.DeterministicOptions)
    registry.add("agent", "random", random_agent, fake.RandomOptions)
    registry.add("agent", "scripted", scripted, fake.ScriptedOptions)
    registry.add("agent", "faulty", faulty, fake.FaultyOptions)
    registry.add("agent", "extractive", extractive_agent, extractive.ExtractiveOptions)
    registry.add("agent", "replay", replay, ReplayOptions)
    registry.add("agent", "sampler", sampler, SamplerOptions)
    registry.add("agent", "transformers", transformers_agent, HFOptions)
    registry.add("agent", "openai", openai_agent, OpenAIOptions)
    registry.add("agent", "openai-compatible", compatible_agent, CompatibleOptions)
    registry.add("agent", "anthropic", anthropic_agent, AnthropicOptions)
    registry.add("agent", "human", human_agent, HumanOptions)
    registry.add("agent", "vllm", vllm_agent, VLLMOptions)
    registry.add("agent", "rewriter", rewriter, RewriterOptions)
