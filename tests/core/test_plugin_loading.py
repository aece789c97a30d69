"""A broken third-party plugin: a warning for commands that do not use it, an error where named."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points

import pytest

from arena_core import plugins
from arena_core.cli.main import main

BROKEN = EntryPoint(name="broken-example", value="arena_no_such_module:plugin", group="arena")


@pytest.fixture
def broken_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The installed plugins plus one whose module does not import."""
    real = list(entry_points(group="arena"))
    monkeypatch.setattr(plugins, "entry_points", lambda group: [*real, BROKEN])
    plugins.reset()
    yield
    plugins.reset()  # later tests load the real set again


def test_broken_plugin_is_a_warning_and_other_commands_go_on(
    broken_installed, write_config, ledger_url, capsys, caplog
) -> None:
    with caplog.at_level(logging.WARNING, logger="arena.plugins"):
        assert main(["plugins", "--kind", "agent", "--json"]) == 0
    assert "plugin 'broken-example'" in caplog.text and "ModuleNotFoundError" in caplog.text
    assert '"extractive"' in capsys.readouterr().out
    assert main(["run", str(write_config(limit=1)), "--ledger", ledger_url, "-q"]) == 0


def test_broken_plugin_is_an_error_where_it_is_named(
    broken_installed, write_config, ledger_url, capsys, monkeypatch
) -> None:
    players = '[[players]]\nname = "a"\nagent = "extractive"\n\n'
    players += '[[players]]\nname = "b"\nagent = "broken-agent"\n'
    path = write_config(players=players, limit=1)
    assert main(["run", str(path), "--ledger", ledger_url, "-q"]) == 2
    err = capsys.readouterr().err
    assert "unknown agent 'broken-agent'" in err
    assert "plugin 'broken-example' from arena_no_such_module:plugin failed to load" in err
    monkeypatch.setenv("ARENA_LOAD_PLUGINS", "broken-example")
    plugins.reset()
    assert main(["plugins"]) == 2
    assert "plugin 'broken-example'" in capsys.readouterr().err
