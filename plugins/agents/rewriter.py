"""The rewriter: a model-free prompt creator for prompt evolution (eva) without a model.

It rewrites the prompt in `Request.observation.question` with one of EvolInstruct's in-depth
operations (add a constraint, deepen, concretize, ask for reasoning steps) or its in-breadth one
(a new prompt in the same domain), each done with a fixed template and the request's seed. An LLM
creator reads the instruction in `Request.messages` instead; this one ignores the messages, so
loops and tests can evolve their item set offline and reproducibly. Nothing in it is clever.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.types import Request, Response

Operation = Literal["constraint", "deepen", "concretize", "reasoning", "breadth"]
OPERATIONS: tuple[Operation, ...] = ("constraint", "deepen", "concretize", "reasoning", "breadth")


class RewriterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operations: list[Operation] = Field(
        default_factory=lambda: list(OPERATIONS), description="EvolInstruct operations to draw"
    )


def rewrite(question: str, operation: Operation, rng: random.Random) -> str:
    """One rewritten prompt (templates, not a model)."""
    q = " ".join(question.split()).rstrip()
    words = sorted({w.lower() for w in re.findall(r"[A-Za-z]{4,}", q)}) or ["this"]
    topic = rng.choice(words)
    if operation == "constraint":
        limit = rng.choice((20, 40, 60))
        return f"{q} Answer in at most {limit} words and mention '{topic}'."
    if operation == "deepen":
        return f"{q} Also explain why, and what would change if it were otherwise."
    if operation == "concretize":
        return f"{q} Give one concrete example involving '{topic}'."
    if operation == "reasoning":
        return f"First list what is known, then reason step by step: {q}"
    return f"A new question about '{topic}': what else could explain it, and how would you tell?"


class RewriterAgent(Agent):
    """n rewrites of the request's question, with operations in an order drawn by the seed."""

    def __init__(self, options: RewriterOptions) -> None:
        self.opts = options

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            rng = random.Random(r.seed)
            # Operations in a seeded order, each once before any repeats: two draws of a fixed
            # template ("deepen", "reasoning") would write the same prompt twice.
            ops = list(self.opts.operations or OPERATIONS)
            rng.shuffle(ops)
            texts = [rewrite(r.observation.question, ops[i % len(ops)], rng) for i in range(r.n)]
            out.append(Response(texts=texts))
        return out
