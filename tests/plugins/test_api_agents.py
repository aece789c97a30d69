"""OpenAI, OpenAI-compatible and Anthropic agents: the real SDKs against a loopback server.

The server (servers.py) speaks both wire protocols; the SDKs build the requests, retry, time out
and parse the responses exactly as they would against the vendors.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from servers import FakeAPIServer

from arena_core.errors import ConfigError
from arena_core.plugins import get_registry
from arena_core.testing import check_agent, run_tournament
from arena_core.types import Message, Observation, Request

pytest.importorskip("openai")
pytest.importorskip("anthropic")

SECRET = "sk-test-4c1d-do-not-log-me"


def req(text: str = "Argue for the harbour.", **kw: object) -> Request:
    return Request(
        messages=[
            Message(role="system", content="You are Debater A."),
            Message(role="user", content=text),
        ],
        observation=Observation(seat="A", phase="speech"),
        **kw,
    )


def build(name: str, **options: object) -> object:
    return get_registry().build("agent", name, options)


def auth(headers: dict[str, str]) -> str:
    """The credential a request carried (the Anthropic SDK 2.x sends a bearer token too)."""
    return headers.get("x-api-key") or headers.get("authorization") or ""


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# --- OpenAI-compatible ----------------------------------------------------------------------------


def test_compatible_agent_records_usage_cost_latency_and_logprobs(
    openai_server: FakeAPIServer,
) -> None:
    agent = build(
        "openai-compatible",
        model="tiny",
        base_url=openai_server.base_url,
        prices={"tiny": {"input": 2.0, "output": 10.0}},
        top_logprobs=2,
        extra_body={"top_k": 5},
    )
    resp, two = run(agent.respond([req("Why the harbour?", logprobs=True), req(n=2)]))
    assert resp.text == "Reply to: Why the harbour?."
    assert resp.meta["prompt_tokens"] > 0 and resp.tokens == resp.meta["completion_tokens"] > 0
    expected = (resp.meta["prompt_tokens"] * 2.0 + resp.tokens * 10.0) / 1e6
    assert resp.cost == pytest.approx(expected) and resp.latency > 0
    assert resp.logprobs is not None and len(resp.logprobs) == len(resp.meta["tokens"])
    assert "".join(resp.meta["tokens"]) == resp.text
    assert all(len(alts) == 2 for alts in resp.meta["top_logprobs"])
    assert len(two.texts) == 2 and two.texts[0] != two.texts[1]
    first, second = sorted((r["body"] for r in openai_server.requests), key=lambda b: "n" in b)
    assert first["model"] == "tiny" and first["max_tokens"] == 512 and first["seed"] == 0
    assert first["messages"][0] == {"role": "system", "content": "You are Debater A."}
    assert first["logprobs"] is True and first["top_logprobs"] == 2 and first["top_k"] == 5
    assert second["n"] == 2 and "logprobs" not in second
    run(agent.aclose())


def test_compatible_agent_conforms(openai_server: FakeAPIServer) -> None:
    check_agent(lambda: build("openai-compatible", model="m", base_url=openai_server.base_url))
    check_agent(
        lambda: build(
            "openai-compatible", model="m", base_url=openai_server.base_url, native_n=False
        )
    )


def test_sdk_retries_429_then_500_then_succeeds(openai_server: FakeAPIServer) -> None:
    agent = build("openai-compatible", model="m", base_url=openai_server.base_url, max_retries=2)
    openai_server.faults = [429, 500]
    resp = run(agent.respond([req()]))[0]
    assert resp.text.startswith("Reply to:")
    assert len(openai_server.requests) == 3  # 429, 500, then the answer

    import openai

    stingy = build("openai-compatible", model="m", base_url=openai_server.base_url, max_retries=1)
    openai_server.faults = [429, 500]
    with pytest.raises(openai.InternalServerError):
        run(stingy.respond([req()]))
    assert len(openai_server.requests) == 5


def test_per_call_timeout() -> None:
    import openai

    with FakeAPIServer(latency=1.0) as slow:
        agent = build(
            "openai-compatible", model="m", base_url=slow.base_url, timeout=0.2, max_retries=0
        )
        with pytest.raises(openai.APITimeoutError):
            run(agent.respond([req()]))


def test_concurrency_is_limited_per_endpoint() -> None:
    with FakeAPIServer(latency=0.05) as server:
        a = build("openai-compatible", model="m", base_url=server.base_url, concurrency=3)
        b = build("openai-compatible", model="m", base_url=server.base_url, concurrency=8)

        async def main() -> None:
            reqs = [req(f"call {i}") for i in range(8)]
            await asyncio.gather(*(a.respond([r]) for r in reqs), *(b.respond([r]) for r in reqs))

        run(main())
        # both players share the endpoint's smallest limit
        assert server.max_in_flight == 3
        assert len(server.requests) == 16
        # once the stingy player is closed, the next run gets the other one's limit
        run(a.aclose())
        server.max_in_flight = 0

        async def again() -> None:
            await asyncio.gather(*(b.respond([req(f"again {i}")]) for i in range(12)))

        run(again())
        assert server.max_in_flight == 8


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
def test_each_transport_answers_retries_and_times_out(transport: str) -> None:
    import openai

    def agent_on(server: FakeAPIServer, **options: object) -> object:
        return build(
            "openai-compatible", model="m", base_url=server.base_url, transport=transport, **options
        )

    with FakeAPIServer() as server:
        agent = agent_on(server, max_retries=2)
        server.faults = [429, 500]
        resp = run(agent.respond([req("Why the harbour?", logprobs=True)]))[0]
        assert resp.text == "Reply to: Why the harbour?." and resp.logprobs
        assert len(server.requests) == 3
        run(agent.aclose())
    with FakeAPIServer(latency=1.0) as slow:
        agent = agent_on(slow, timeout=0.2, max_retries=0)
        with pytest.raises(openai.APITimeoutError):
            run(agent.respond([req()]))


def test_transport_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    import openai
    from arena_plugins.agents.openai_agent import http_client_class

    from arena_core.config import load_config
    from arena_core.engine import Tournament

    assert http_client_class(openai, "httpx") is openai.DefaultAsyncHttpxClient
    assert http_client_class(openai, "auto") is openai.DefaultAioHttpClient  # the api extra has it
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if aiohttp were not installed
    assert http_client_class(openai, "auto") is openai.DefaultAsyncHttpxClient
    with pytest.raises(ValueError, match=r"pip install 'openai\[aiohttp\]'"):
        http_client_class(openai, "aiohttp")
    # In a tournament that is a config error naming the player, before any match is played.
    path = tmp_path / "t.toml"
    path.write_text(
        """
[tournament]
name = "t"
protocol = "consultancy"
[dataset]
plugin = "bundled"
limit = 1
[judge]
plugin = "random"
[[players]]
name = "api"
agent = "openai-compatible"
options = { model = "m", base_url = "http://127.0.0.1:9/v1", transport = "aiohttp" }
""",
        encoding="utf-8",
    )
    registry = get_registry()
    with pytest.raises(ConfigError, match=r"player 'api'.*transport = 'aiohttp' needs aiohttp"):
        Tournament(load_config(path, registry), registry)


def test_a_client_per_event_loop_is_closed_with_its_loop(openai_server: FakeAPIServer) -> None:
    """Each `asyncio.run` gets its own client; ending that loop closes it, aclose or not."""
    agent = build("openai-compatible", model="m", base_url=openai_server.base_url)
    clients = []

    async def call() -> None:
        await agent.respond([req()])
        clients.append(await agent.clients.get())

    run(call())
    run(call())
    assert len(clients) == 2 and clients[0] is not clients[1]
    assert all(c.is_closed() for c in clients)  # no aclose() was called: the loops closed them

    async def call_and_close() -> None:
        await call()
        await agent.aclose()
        assert clients[-1].is_closed()

    run(call_and_close())


# --- OpenAI (official endpoint settings, pointed at the loopback) ---------------------------------


def test_openai_agent_needs_a_key_and_never_stores_it(
    openai_server: FakeAPIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build("openai", model="gpt-x", base_url=openai_server.base_url)
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    agent = build("openai", model="gpt-x", base_url=openai_server.base_url)
    resp = run(agent.respond([req()]))[0]
    headers = openai_server.requests[-1]["headers"]
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert openai_server.requests[-1]["body"]["max_completion_tokens"] == 512
    assert SECRET not in resp.model_dump_json() and SECRET not in agent.opts.model_dump_json()


def test_api_key_never_reaches_the_ledger(
    openai_server: FakeAPIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARENA_TEST_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    url = openai_server.base_url
    toml = f"""
[tournament]
name = "api-keys"
protocol = "debate"
retries = 0

[protocol]
speeches = 1

[dataset]
plugin = "bundled"
limit = 1

[judge]
plugin = "quote"

[[players]]
name = "gpt"
agent = "openai"
options = {{ model = "gpt-x", base_url = "{url}", api_key_env = "ARENA_TEST_KEY" }}

[[players]]
name = "claude"
agent = "anthropic"
options = {{ model = "claude-x", base_url = "{openai_server.url}" }}
"""
    db = tmp_path / "ledger.db"
    summary = run_tournament(toml, f"sqlite:///{db}")
    assert summary.done == 4 and summary.failed == 0
    # the key was used on both wire protocols ...
    assert {r["path"] for r in openai_server.requests} == {"/v1/chat/completions", "/v1/messages"}
    assert all(SECRET in auth(r["headers"]) for r in openai_server.requests)
    for path in tmp_path.iterdir():  # ... and is nowhere in the ledger (db, wal, shm)
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="base_urll"):
        build("openai-compatible", model="m", base_urll="http://x")


# --- Anthropic ------------------------------------------------------------------------------------


def test_anthropic_agent_messages_usage_and_retries(
    openai_server: FakeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    agent = build(
        "anthropic",
        model="claude-x",
        base_url=openai_server.url,
        prices={"claude-x": {"input": 3.0, "output": 15.0}},
        max_retries=2,
    )
    openai_server.faults = [429, 500]
    messages = [
        Message(role="system", content="Be brief."),
        Message(role="assistant", content="Earlier speech."),
        Message(role="user", content="First part."),
        Message(role="user", content="Second part."),
    ]
    obs = Observation(seat="A", phase="speech")
    resp = run(agent.respond([Request(messages=messages, observation=obs, n=2, stop=["zz"])]))[0]
    assert len(openai_server.requests) == 4  # 429, 500, then two samples
    body = openai_server.requests[-1]["body"]
    assert openai_server.requests[-1]["path"] == "/v1/messages"
    assert SECRET in auth(openai_server.requests[-1]["headers"])
    assert body["system"] == "Be brief." and body["stop_sequences"] == ["zz"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][2]["content"] == "First part.\n\nSecond part."
    assert "temperature" not in body
    assert resp.texts == [
        "Reply to: First part. Second part..",
        "Reply to: First part. Second part..",
    ]
    assert resp.tokens == resp.meta["completion_tokens"] > 0
    expected = (resp.meta["prompt_tokens"] * 3.0 + resp.tokens * 15.0) / 1e6
    assert resp.cost == pytest.approx(expected) and resp.logprobs is None
    assert math.isclose(resp.cost, expected)


def test_anthropic_agent_conforms(
    openai_server: FakeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    check_agent(lambda: build("anthropic", model="c", base_url=openai_server.url))
