"""Pytest fixtures for plugin authors, registered under the `pytest11` entry point `arena`.

Every pytest run in an environment with arena installed loads this module, so it imports only
pytest at module level; arena's own pieces are imported inside the fixtures.

- `arena_ledger_url`: a fresh SQLite ledger URL per test; `arena_ledger`: a Ledger on it.
- `arena_registry`: the registry every installed plugin filled.
- `arena_fake_agents`: ready model-free agents (deterministic, random, scripted, extractive).
- `arena_tournament(...)`: run a small tournament into the test's ledger in one call.
- `arena_plugin(obj)`: register a plugin for the rest of the test (or a `with` block).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from arena_core.engine import RunSummary
    from arena_core.interfaces import Agent
    from arena_core.ledger import Ledger
    from arena_core.registry import Registry

# What `arena_tournament` fills in when the caller does not say.
DEFAULT_PLAYERS: tuple[dict[str, Any], ...] = (
    {"name": "extractive", "agent": "extractive"},
    {"name": "deterministic", "agent": "deterministic"},
)
FAKE_AGENTS: dict[str, dict[str, Any]] = {
    "deterministic": {},
    "random": {},
    "scripted": {"replies": ["I argue for {answer}.", "I still argue for {answer}."]},
    "extractive": {},
}


@pytest.fixture
def arena_ledger_url(tmp_path: Path) -> str:
    """A SQLite ledger URL in the test's own temporary directory."""
    return f"sqlite:///{tmp_path / 'arena-ledger.db'}"


@pytest.fixture
def arena_ledger(arena_ledger_url: str) -> Iterator[Ledger]:
    """A Ledger on `arena_ledger_url` (tables created), closed after the test."""
    from arena_core.ledger import Ledger

    ledger = Ledger(arena_ledger_url)
    yield ledger
    ledger.close()


@pytest.fixture
def arena_registry() -> Registry:
    """The registry of every installed plugin (rebuilt after `arena_plugin` registers one)."""
    from arena_core.plugins import get_registry

    return get_registry()


@pytest.fixture
def arena_fake_agents(arena_registry: Registry) -> Iterator[dict[str, Agent]]:
    """Model-free agents built through the registry, keyed by agent name, closed after."""
    from arena_core.testing.checks import _run

    agents = {name: arena_registry.build("agent", name, opts) for name, opts in FAKE_AGENTS.items()}
    yield agents

    async def close() -> None:
        for agent in agents.values():
            await agent.aclose()

    _run(close())


def _players(players: Sequence[str | Mapping[str, Any]] | Mapping[str, Any]) -> list[dict]:
    """Player tables from agent names, tables, or a {player name: agent or table} mapping."""
    if isinstance(players, Mapping):
        return [
            {"name": name, "agent": spec} if isinstance(spec, str) else {"name": name, **spec}
            for name, spec in players.items()
        ]
    out = []
    for p in players:
        out.append({"name": p, "agent": p} if isinstance(p, str) else dict(p))
    return out


@pytest.fixture
def arena_tournament(
    arena_ledger_url: str, arena_ledger: Ledger
) -> Callable[..., tuple[RunSummary, Ledger]]:
    """Run a small tournament into the test's ledger: `arena_tournament(players=[...])`.

    `players` are agent names (each also the player's name), player tables, or a mapping of
    player name to agent name or table. `protocol`, `judge` and `dataset` are plugin names, or a
    whole `[judge]` / `[dataset]` table as a dict. `protocol_options` fills `[protocol]`; any other
    keyword is a table merged over the defaults (`tournament={"retries": 1}`, `schedule=...`).
    Defaults: no retries, no backoff, 4 items, a fresh tournament name per call. Returns
    (summary, ledger).
    """
    from arena_core.testing.checks import run_tournament

    calls = 0

    def run(
        players: Sequence[str | Mapping[str, Any]] | Mapping[str, Any] = DEFAULT_PLAYERS,
        protocol: str = "debate",
        judge: str | Mapping[str, Any] = "quote",
        dataset: str | Mapping[str, Any] = "bundled",
        limit: int | None = 4,
        *,
        protocol_options: Mapping[str, Any] | None = None,
        run_kwargs: Mapping[str, Any] | None = None,
        **sections: Any,
    ) -> tuple[RunSummary, Ledger]:
        nonlocal calls
        calls += 1
        tournament: dict[str, Any] = {
            "name": f"arena-test-{calls}",
            "protocol": protocol,
            "seed": 0,
            "concurrency": 4,
            "retries": 0,
            "backoff": 0.0,
            "timeout": 30.0,
        }
        tournament.update(sections.pop("tournament", {}))
        data = {"plugin": dataset} if isinstance(dataset, str) else dict(dataset)
        if limit is not None:
            data.setdefault("limit", limit)
        config: dict[str, Any] = {
            "tournament": tournament,
            "protocol": dict(protocol_options or {}),
            "dataset": data,
            "judge": {"plugin": judge} if isinstance(judge, str) else dict(judge),
            "players": _players(players),
            **sections,
        }
        summary = run_tournament(config, arena_ledger_url, **dict(run_kwargs or {}))
        return summary, arena_ledger

    return run


class RegisteredPlugin:
    """A plugin registered by `arena_plugin`; leaving a `with` block (or the test) removes it."""

    def __init__(self, plugin: object, name: str) -> None:
        self.plugin = plugin
        self.name = name
        self.active = True

    def unregister(self) -> None:
        if self.active:
            from arena_core.plugins import unregister_plugin

            unregister_plugin(self.name)
            self.active = False

    def __enter__(self) -> object:
        return self.plugin

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unregister()


@pytest.fixture
def arena_plugin() -> Iterator[Callable[..., RegisteredPlugin]]:
    """Register a module or object with `@hookimpl`s: `arena_plugin(MyPlugin())`.

    The registry is rebuilt on next use, so the plugin's `arena_register` runs; everything still
    registered is removed at teardown. Also usable as `with arena_plugin(obj): ...`.
    """
    from arena_core.plugins import register_plugin

    registered: list[RegisteredPlugin] = []

    def register(plugin: object, name: str | None = None) -> RegisteredPlugin:
        name = name or f"arena-test-plugin-{len(registered) + 1}"
        register_plugin(plugin, name=name)
        handle = RegisteredPlugin(plugin, name)
        registered.append(handle)
        return handle

    yield register
    for handle in reversed(registered):
        handle.unregister()
