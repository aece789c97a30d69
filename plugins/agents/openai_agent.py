"""`openai` and `openai-compatible` agents: chat completions through the official async SDK.

`openai-compatible` is the recommended way to serve a large model to many matches: start
`vllm serve`, SGLang, a llama.cpp server or TGI once and point any number of players at its
`base_url`; the server batches the concurrent requests itself. `openai` is the same code with
OpenAI's endpoint and key.

Speed: every player keeps one `AsyncOpenAI` client per event loop (its connection pool), and all
players on one endpoint share a semaphore whose size is the smallest `concurrency` any of them
asks for, so a tournament with concurrency 64 never has more than that many calls in flight to
one server. Retries with backoff on 429 and 5xx (honouring `retry-after`) and the per-call
timeout are the SDK's own (`max_retries`, `timeout`).

Keys are read from the environment variable named by `api_key_env` (or a `.env` file in the
working directory) when the client is made; the key itself is never an option, so it never
reaches the ledger, a log or `Response.meta`. Each response records its token usage, latency
and, where `prices` names the model, its cost in USD. The SDK is imported inside the methods.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.types import Request, Response


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")


class APIOptions(BaseModel):
    """Options every API agent shares."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="the model name the endpoint serves")
    base_url: str | None = Field(None, description="the endpoint; default: the vendor's")
    api_key_env: str | None = Field(
        None, description="environment variable (or .env entry) holding the key"
    )
    concurrency: int = Field(
        16, ge=1, description="calls in flight to this endpoint (shared by its players)"
    )
    max_retries: int = Field(4, ge=0, description="SDK retries with backoff on 429/5xx/timeouts")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP call")
    max_tokens: int | None = Field(None, ge=1, description="cap on each request's max_tokens")
    temperature: float | None = Field(None, ge=0, description="overrides the request's temperature")
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="model name -> {input, output} USD per 1M tokens; sets Response.cost",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="extra JSON fields sent with every call"
    )


class OpenAIOptions(APIOptions):
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="environment variable (or .env entry) holding the key"
    )
    token_limit: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_completion_tokens", description="the field that carries max_tokens"
    )
    top_logprobs: int = Field(
        5, ge=0, le=20, description="alternatives per token when a request asks for logprobs"
    )
    seed: bool = Field(True, description="send the request's seed (best-effort determinism)")
    native_n: bool = Field(True, description="ask for n choices in one call (else n calls)")


class CompatibleOptions(OpenAIOptions):
    base_url: str = Field(description="e.g. http://localhost:8000/v1 (vllm serve, SGLang, ...)")
    api_key_env: str | None = Field(
        None, description="environment variable holding the key; unset: the key 'EMPTY'"
    )
    token_limit: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens", description="the field that carries max_tokens"
    )


# --- shared machinery -----------------------------------------------------------------------------


def read_key(env: str | None, *, required: bool) -> str | None:
    """The key from the environment, else from ./.env; a clear error names the variable."""
    if env is None:
        return None
    key = os.environ.get(env)
    if not key:
        try:
            from dotenv import dotenv_values

            key = dotenv_values(".env").get(env) if os.path.exists(".env") else None
        except ImportError:  # pragma: no cover - python-dotenv is a core dependency
            key = None
    if not key and required:
        raise ValueError(f"no API key: set the environment variable {env} (or put it in .env)")
    return key or None


class EndpointLimits:
    """One semaphore per endpoint and event loop, sized by the smallest concurrency among the
    agents on that endpoint that are alive when a run starts (agents declare when built and
    withdraw when closed; a semaphore is made at the first call of each event loop)."""

    def __init__(self) -> None:
        self.declared: dict[str, list[int]] = {}
        self._sems: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def declare(self, endpoint: str, concurrency: int) -> None:
        self.declared.setdefault(endpoint, []).append(concurrency)

    def withdraw(self, endpoint: str, concurrency: int) -> None:
        found = self.declared.get(endpoint, [])
        if concurrency in found:
            found.remove(concurrency)

    def capacity(self, endpoint: str) -> int:
        return min(self.declared.get(endpoint) or [16])

    def get(self, endpoint: str) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sems = self._sems.setdefault(loop, {})
        if endpoint not in sems:
            sems[endpoint] = asyncio.Semaphore(self.capacity(endpoint))
        return sems[endpoint]


LIMITS = EndpointLimits()


class PerLoop:
    """A client per event loop: an async HTTP pool belongs to the loop that opened it."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self.make()
        return client

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.close()


def cost_of(
    prices: dict[str, Price], model: str, served: str | None, inp: int, out: int
) -> float | None:
    """USD for one call when the price table names the model (as asked, or as served)."""
    price = prices.get(model) or (prices.get(served) if served else None)
    if price is None:
        return None
    return (inp * price.input + out * price.output) / 1e6


# --- the OpenAI agent -----------------------------------------------------------------------------


class EndpointAgent(Agent):
    """What every API agent shares: one concurrency limit per endpoint, one client per loop.

    Subclasses set `opts`, `endpoint`, `clients` and `_declared`, and implement `_one`.
    """

    opts: APIOptions
    endpoint: str
    clients: PerLoop
    _declared: bool

    async def _one(self, request: Request) -> Response:
        raise NotImplementedError

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def limit(self) -> asyncio.Semaphore:
        """This endpoint's semaphore (declaring again if a closed agent is used anew)."""
        if not self._declared:
            LIMITS.declare(self.endpoint, self.opts.concurrency)
            self._declared = True
        return LIMITS.get(self.endpoint)

    async def aclose(self) -> None:
        if self._declared:
            LIMITS.withdraw(self.endpoint, self.opts.concurrency)
            self._declared = False
        await self.clients.aclose()


class OpenAIAgent(EndpointAgent):
    """Chat completions via `openai.AsyncOpenAI` (the official API or any compatible server)."""

    def __init__(self, options: OpenAIOptions, *, key_required: bool = True) -> None:
        self.opts = options
        # Read now so a missing key is a config error before any match; kept only in the client.
        key = read_key(options.api_key_env, required=key_required)
        self.endpoint = options.base_url or "https://api.openai.com/v1"
        LIMITS.declare(self.endpoint, options.concurrency)
        self._declared = True

        def make() -> Any:
            try:
                from openai import AsyncOpenAI
            except ImportError as exc:  # pragma: no cover - openai is in the api extra
                raise ImportError(
                    "the openai agent needs the SDK: pip install 'arena[api]'"
                ) from exc
            return AsyncOpenAI(
                api_key=key or "EMPTY",
                base_url=options.base_url,
                max_retries=options.max_retries,
                timeout=options.timeout,
            )

        self.clients = PerLoop(make)

    def _params(self, request: Request, n: int, seed: int) -> dict[str, Any]:
        o = self.opts
        max_tokens = min(request.max_tokens, o.max_tokens or request.max_tokens)
        params: dict[str, Any] = {
            "model": o.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature if o.temperature is None else o.temperature,
            o.token_limit: max_tokens,
        }
        if n > 1:
            params["n"] = n
        if o.seed:
            params["seed"] = seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.logprobs:
            params["logprobs"] = True
            if o.top_logprobs:
                params["top_logprobs"] = o.top_logprobs
        params.update(o.extra_body)
        return params

    async def _call(self, request: Request, n: int, seed: int) -> Any:
        # `client.post` is the SDK's documented way to send a request body as is: the same
        # auth, retries, timeout and typed `ChatCompletion` result as `chat.completions.create`,
        # without its per-call walk of the params against the SDK's TypedDicts (~0.3 ms per
        # call, the largest client-side cost when hundreds of calls are in flight). Our params
        # are plain JSON already.
        from openai.types.chat import ChatCompletion

        client = self.clients.get()
        body = self._params(request, n, seed)
        async with self.limit():
            return await client.post("/chat/completions", cast_to=ChatCompletion, body=body)

    async def _one(self, request: Request) -> Response:
        start = time.perf_counter()
        if request.n == 1 or self.opts.native_n:
            calls = [await self._call(request, request.n, request.seed)]
        else:
            calls = list(
                await asyncio.gather(
                    *(self._call(request, 1, request.seed + i) for i in range(request.n))
                )
            )
        latency = time.perf_counter() - start
        choices = [c for call in calls for c in sorted(call.choices, key=lambda c: c.index)]
        prompt = sum(getattr(c.usage, "prompt_tokens", 0) or 0 for c in calls)
        completion = sum(getattr(c.usage, "completion_tokens", 0) or 0 for c in calls)
        served = calls[0].model
        meta: dict[str, Any] = {
            "model": served,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "finish_reason": choices[0].finish_reason if choices else None,
        }
        logprobs = None
        first = choices[0] if choices else None
        if request.logprobs and first is not None and first.logprobs and first.logprobs.content:
            content = first.logprobs.content
            logprobs = [float(t.logprob) for t in content]
            if any(t.top_logprobs for t in content):
                meta["tokens"] = [t.token for t in content]
                meta["top_logprobs"] = [
                    {a.token: float(a.logprob) for a in t.top_logprobs} for t in content
                ]
        return Response(
            texts=[c.message.content or "" for c in choices],
            tokens=completion,
            logprobs=logprobs,
            latency=latency,
            cost=cost_of(self.opts.prices, self.opts.model, served, prompt, completion),
            meta=meta,
        )


def openai_agent(options: OpenAIOptions) -> Agent:
    """OpenAI chat completions (official async SDK); key from OPENAI_API_KEY or .env."""
    return OpenAIAgent(options)


def compatible_agent(options: CompatibleOptions) -> Agent:
    """Any OpenAI-compatible server by base_url (vllm serve, SGLang, llama.cpp, TGI)."""
    return OpenAIAgent(options, key_required=options.api_key_env is not None)
