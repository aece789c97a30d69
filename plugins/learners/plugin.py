"""Registers the built-in learners. The factories import torch, transformers and trl lazily."""

from __future__ import annotations

from typing import Any

from arena_plugins.learners.apo import ApoOptions
from arena_plugins.learners.d2po import D2POOptions
from arena_plugins.learners.dpo import DPOOptions
from arena_plugins.learners.reward import RewardOptions
from arena_plugins.learners.safe_rlhf import SafeRLHFOptions
from arena_plugins.learners.sppo import SPPOOptions

from arena_core.hookspecs import hookimpl
from arena_core.registry import Registry


def dpo(options: DPOOptions) -> Any:
    """TRL DPO (every trl loss type, soft-label and adaptive-margin losses), LoRA or full."""
    from arena_plugins.learners.dpo import DPOLearner

    return DPOLearner(options)


def sppo(options: SPPOOptions) -> Any:
    """SPPO: best and worst of K self-play answers regressed onto their win probabilities."""
    from arena_plugins.learners.sppo import SPPOLearner

    return SPPOLearner(options)


def reward_model(options: RewardOptions) -> Any:
    """safe-RLHF's reward model (a sequence classifier, LoRA or full); produces a judge."""
    from arena_plugins.learners.reward import RewardModelLearner

    return RewardModelLearner(options)


def cost_model(options: RewardOptions) -> Any:
    """safe-RLHF's cost model (ranking + sign terms: safe means cost <= 0); produces a judge."""
    from arena_plugins.learners.reward import CostModelLearner

    return CostModelLearner(options)


def apo(options: ApoOptions) -> Any:
    """APO (Cheng et al.): adversarial reward-model update, then rejection sampling or DPO;
    produces a player and a judge."""
    from arena_plugins.learners.apo import ApoLearner

    return ApoLearner(options)


def d2po(options: D2POOptions) -> Any:
    """Online DPO on its own pairs, labelled by a discriminator kept honest by a gold budget;
    produces a player and its discriminator as a judge."""
    from arena_plugins.learners.d2po import D2POLearner

    return D2POLearner(options)


def safe_rlhf(options: SafeRLHFOptions) -> Any:
    """RLOO on R - lambda * C (HC-RLHF: C's upper confidence bound), lambda by dual ascent."""
    from arena_plugins.learners.safe_rlhf import SafeRLHFLearner

    return SafeRLHFLearner(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("learner", "dpo", dpo, DPOOptions)
    registry.add("learner", "sppo", sppo, SPPOOptions)
    registry.add("learner", "reward-model", reward_model, RewardOptions)
    registry.add("learner", "cost-model", cost_model, RewardOptions)
    registry.add("learner", "apo", apo, ApoOptions)
    registry.add("learner", "d2po", d2po, D2POOptions)
    registry.add("learner", "safe-rlhf", safe_rlhf, SafeRLHFOptions)
