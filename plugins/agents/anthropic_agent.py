"""The `anthropic` agent: Claude through the official async SDK's Messages API.

The same machinery as the OpenAI agent (a client per event loop, a semaphore per endpoint, the
SDK's retries with backoff on 429/5xx and its per-call timeout, usage and cost on each
response, the key read from `api_key_env` or `.env` and never stored). Differences the API
imposes: system messages go in the `system` parameter, turns must alternate starting with the
user (consecutive same-role messages are merged), there is no `n` (n samples are n concurrent
calls) and no log-probabilities (an LLM judge on Claude falls back to its stated confidence).

The SDK (2.x) has no `temperature` argument any more; `send_temperature` passes the request's
temperature in the JSON body for models that still accept it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from arena_plugins.agents.openai_agent import (
    APIOptions,
    EndpointAgent,
    cost_of,
    read_key,
)
from pydantic import Field

from arena_core.interfaces import Agent
from arena_core.types import Message, Request, Response


class AnthropicOptions(APIOptions):
    api_key_env: str | None = Field(
        "ANTHROPIC_API_KEY", description="environment variable (or .env entry) holding the key"
    )
    send_temperature: bool = Field(
        False, description="send the temperature in the body (models that still take it)"
    )


def to_anthropic(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, alternating user/assistant turns starting with the user)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": "Begin."})
    return system, turns


class AnthropicAgent(EndpointAgent):
    """Claude via `anthropic.AsyncAnthropic`."""

    opts: AnthropicOptions

    def __init__(self, options: AnthropicOptions) -> None:
        key = read_key(options.api_key_env, required=True)
        super().__init__(
            options,
            sdk="anthropic",
            client="AsyncAnthropic",
            default_url="https://api.anthropic.com",
            api_key=key,
        )

    async def _call(self, request: Request) -> Any:
        o = self.opts
        system, turns = to_anthropic(request.messages)
        params: dict[str, Any] = {
            "model": o.model,
            "max_tokens": min(request.max_tokens, o.max_tokens or request.max_tokens),
            "messages": turns,
        }
        if system:
            params["system"] = system
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        body = dict(o.extra_body)
        if o.send_temperature:
            body["temperature"] = request.temperature if o.temperature is None else o.temperature
        if body:
            params["extra_body"] = body
        client = await self.clients.get()
        async with self.limit():
            return await client.messages.create(**params)

    async def _one(self, request: Request) -> Response:
        start = time.perf_counter()
        msgs = await asyncio.gather(*(self._call(request) for _ in range(request.n)))
        latency = time.perf_counter() - start
        texts = [
            "".join(b.text for b in m.content if getattr(b, "type", "") == "text") for m in msgs
        ]
        prompt = sum(m.usage.input_tokens or 0 for m in msgs)
        completion = sum(m.usage.output_tokens or 0 for m in msgs)
        served = msgs[0].model
        return Response(
            texts=texts,
            tokens=completion,
            latency=latency,
            cost=cost_of(self.opts.prices, self.opts.model, served, prompt, completion),
            meta={
                "model": served,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "finish_reason": msgs[0].stop_reason,
            },
        )


def anthropic_agent(options: AnthropicOptions) -> Agent:
    """Claude via the official async SDK; key from ANTHROPIC_API_KEY or .env."""
    return AnthropicAgent(options)
