"""`openai` and `openai-compatible` agents: chat completions through the official async SDK.

`openai-compatible` is the recommended way to serve a large model to many matches: start
`vllm serve`, SGLang, a llama.cpp server or TGI once and point any number of players at its
`base_url`; the server batches the concurrent requests itself. `openai` is the same code with
OpenAI's endpoint and key.

Speed: every player keeps one `AsyncOpenAI` client per event loop (its connection pool), and all
players on one endpoint share a semaphore whose size is the smallest `concurrency` any of them
asks for, so a tournament with concurrency 64 never has more than that many calls in flight to
one server. Retries belong to the engine (`[tournament] retries`, with jittered backoff), so one
layer owns the budget: the SDK's own retries are off by default (`max_retries = 0`; setting it
stacks them under the engine's), and a failed call's SDK exception is marked `transient` (429,
408, 409, 5xx, connection errors and timeouts) with the server's `retry-after`, or not (any other
4xx, which retrying cannot fix). The per-call HTTP timeout is the SDK's (`timeout`). Under the
SDK, `transport = "auto"` takes aiohttp when it is installed (the `api` extra installs it): both
SDKs document it for many concurrent calls, and on 32 calls in flight it costs the event loop
about a third less per call than the default httpx pool, whose every request scans every pooled
connection.

Keys are read from the environment variable named by `api_key_env` (or a `.env` file in the
working directory) when the client is made; the key itself is never an option, so it never
reaches the ledger, a log or `Response.meta`. Each response records its token usage, latency
and, where `prices` names the model, its cost in USD. The SDK is imported when an agent is
built (a missing SDK is a config error before any match), not when this module is.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
import weakref
from collections.abc import AsyncGenerator, Sequence
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
    max_retries: int = Field(
        0,
        ge=0,
        description="the SDK's own retries, under the engine's `[tournament] retries` (0: the "
        "engine alone retries)",
    )
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
    transport: Literal["auto", "aiohttp", "httpx"] = Field(
        "auto", description="HTTP transport under the SDK; auto: aiohttp when installed"
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


def import_sdk(name: str) -> Any:
    """The vendor SDK module, or an error that says which extra installs it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"the {name} agent needs its SDK: pip install 'arena-debate[api]'"
        ) from exc


def http_client_class(sdk: Any, transport: str) -> Any:
    """The SDK's `http_client` class for `transport`: its aiohttp or its httpx default client."""
    aio = getattr(sdk, "DefaultAioHttpClient", None)
    if transport != "httpx":
        try:
            import aiohttp  # noqa: F401  (the SDKs' aiohttp transport needs it)
        except ImportError:
            aio = None
        if aio is not None:
            return aio
        if transport == "aiohttp":
            raise ValueError(
                f"transport = 'aiohttp' needs aiohttp and a {sdk.__name__} SDK with "
                f"DefaultAioHttpClient: pip install '{sdk.__name__}[aiohttp]'"
            )
    return sdk.DefaultAsyncHttpxClient


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client of the process, built as the SDKs build theirs.

    Each SDK client would otherwise load the CA store itself (~18 ms of CPU here), and the
    clients are made in the event loop at the start of a run, while the first matches wait.
    """
    try:
        import httpx2 as httpx  # the SDKs' HTTP library since openai 3 / anthropic 2
    except ImportError:  # pragma: no cover - older SDKs use httpx
        import httpx  # type: ignore[no-redef]
    return httpx.create_ssl_context()


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
    """A client per event loop: an async HTTP pool belongs to the loop that opened it.

    Each client is tied to a started async generator whose `finally` closes it. `aclose()` ends
    it; so does the loop's own shutdown (`asyncio.run` finalizes every live async generator), so
    a script that calls `asyncio.run(agent.respond(...))` several times leaks no connection pool.
    """

    def __init__(self, make: Any) -> None:
        self.make = make
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    @staticmethod
    async def _closing(client: Any) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await client.close()

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            client = self.make()
            closer = self._closing(client)
            await closer.asend(None)  # started: the loop now finalizes it at shutdown
            entry = self._clients[loop] = (client, closer)
        return entry[0]

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()


def cost_of(
    prices: dict[str, Price], model: str, served: str | None, inp: int, out: int
) -> float | None:
    """USD for one call when the price table names the model (as asked, or as served)."""
    price = prices.get(model) or (prices.get(served) if served else None)
    if price is None:
        return None
    return (inp * price.input + out * price.output) / 1e6


# --- the OpenAI agent -----------------------------------------------------------------------------


TRANSIENT_STATUS = frozenset({408, 409, 429})  # and every 5xx: what the SDKs themselves retry


def retry_after(response: Any) -> float | None:
    """Seconds the server asked to wait (`retry-after-ms` or numeric `retry-after`), if any."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(key) or "")
        except ValueError:  # absent, or an HTTP date: the engine's backoff applies
            continue
        if value >= 0:
            return value * scale
    return None


def mark_transient(exc: BaseException, sdk: Any) -> None:
    """Tell the engine whether retrying `exc` can help, keeping the SDK's exception type.

    The engine retries only errors it knows to be transient (`arena_core.match.is_transient`);
    the SDK's classes are the SDK's business, so the agent, which imported the SDK, says so.
    """
    status = getattr(exc, "status_code", None)
    if isinstance(exc, sdk.APIConnectionError):  # timeouts included (APITimeoutError)
        exc.transient = True  # type: ignore[attr-defined]
    elif isinstance(status, int):
        exc.transient = status in TRANSIENT_STATUS or status >= 500  # type: ignore[attr-defined]
        exc.retry_after = retry_after(getattr(exc, "response", None))  # type: ignore[attr-defined]


class EndpointAgent(Agent):
    """What every API agent shares: one concurrency limit per endpoint, one client per loop.

    Subclasses read their key, call this constructor with their SDK's names, and implement `_one`.
    """

    def __init__(
        self, options: APIOptions, *, sdk: str, client: str, default_url: str, api_key: str | None
    ) -> None:
        # The SDK and the transport are checked first: a build that fails declares no limit.
        module = import_sdk(sdk)
        http = http_client_class(module, options.transport)  # no aiohttp: fails here, not mid-run
        client_class = getattr(module, client)
        self.sdk = module
        self.opts = options
        self.endpoint = options.base_url or default_url

        def make() -> Any:
            return client_class(
                api_key=api_key,
                base_url=options.base_url,
                max_retries=options.max_retries,
                timeout=options.timeout,
                http_client=http(verify=tls_context()),
            )

        self.clients = PerLoop(make)
        LIMITS.declare(self.endpoint, options.concurrency)
        self._declared = True

    async def _one(self, request: Request) -> Response:
        raise NotImplementedError

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        try:
            return list(await asyncio.gather(*(self._one(r) for r in requests)))
        except Exception as exc:
            mark_transient(exc, self.sdk)
            raise

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

    opts: OpenAIOptions

    def __init__(self, options: OpenAIOptions, *, key_required: bool = True) -> None:
        # Read now so a missing key is a config error before any match; kept only in the client.
        key = read_key(options.api_key_env, required=key_required)
        super().__init__(
            options,
            sdk="openai",
            client="AsyncOpenAI",
            default_url="https://api.openai.com/v1",
            api_key=key or "EMPTY",
        )

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

    async def _call(self, request: Request, n: int, seed: int) -> dict[str, Any]:
        # `client.post` is the SDK's documented way to send a body as is: the same auth, retries
        # with backoff and timeout as `chat.completions.create`, without its walk of the params
        # against the SDK's TypedDicts (our params are plain JSON already). `cast_to=object`
        # returns the JSON, so no pydantic model tree is built for the few fields read below;
        # at 32 calls in flight the event loop is the bottleneck, and together these save about
        # a third of the SDK's time per call.
        client = await self.clients.get()
        body = self._params(request, n, seed)
        async with self.limit():
            data = await client.post("/chat/completions", cast_to=object, body=body)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise ValueError(f"{self.endpoint}: not a chat completion: {str(data)[:200]!r}")
        return data

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
        choices = [
            c for call in calls for c in sorted(call["choices"], key=lambda c: c.get("index", 0))
        ]
        usage = [call.get("usage") or {} for call in calls]
        prompt = sum(u.get("prompt_tokens") or 0 for u in usage)
        completion = sum(u.get("completion_tokens") or 0 for u in usage)
        served = calls[0].get("model")
        first = choices[0] if choices else {}
        meta: dict[str, Any] = {
            "model": served,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "finish_reason": first.get("finish_reason"),
        }
        logprobs = None
        content = (first.get("logprobs") or {}).get("content") if request.logprobs else None
        if content:
            logprobs = [float(t["logprob"]) for t in content]
            if any(t.get("top_logprobs") for t in content):
                meta["tokens"] = [t["token"] for t in content]
                meta["top_logprobs"] = [
                    {a["token"]: float(a["logprob"]) for a in t.get("top_logprobs") or []}
                    for t in content
                ]
        return Response(
            texts=[(c.get("message") or {}).get("content") or "" for c in choices],
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
