"""Untrusted config values: strict types, bounded numbers, safe names, suggestions (issue 12/11).

Every refusal is exit 2 with file/table/key named, before the ledger file exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_core.cli.main import main
from tests.conftest import config_text


def _refused(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text, encoding="utf-8")
    db = tmp_path / "refused.db"
    code = main(["run", str(cfg), "--ledger", f"sqlite:///{db}", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not db.exists(), "a refused config must not create the ledger"
    assert "Traceback" not in err
    return err


def _with(table: str, line: str) -> str:
    """The base config with `line` added at the top of `[table]`."""
    return config_text().replace(f"[{table}]\n", f"[{table}]\n{line}\n", 1)


@pytest.mark.parametrize(
    ("table", "line", "key"),
    [
        ("ratings", "sigma = 0", "sigma"),
        ("ratings", "sigma = -1", "sigma"),
        ("ratings", "sigma = inf", "sigma"),
        ("ratings", "mu = inf", "mu"),
        ("ratings", "mu = nan", "mu"),
        ("ratings", "beta = 0", "beta"),
        ("ratings", "tau = 1e308", "tau"),
        ("ratings", "tau = -1", "tau"),
        ("ratings", "draw_probability = 1", "draw_probability"),
        ("ratings", 'pool = "../x"', "pool"),
    ],
)
def test_rating_numbers_are_bounded(table, line, key, tmp_path, capsys) -> None:
    text = config_text() + f"\n[{table}]\n{line}\n"
    err = _refused(text, tmp_path, capsys)
    assert f"key '{key}'" in err


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("backoff = 0", "backoff = inf", "backoff"),
        ("backoff = 0", "backoff = 1e9", "backoff"),
        ("retries = 1", "retries = 1000", "retries"),
        ("seed = 7", "seed = true", "seed"),
        ("seed = 7", "seed = -1", "seed"),
        ("seed = 7", 'seed = "7"', "seed"),
        ("concurrency = 8", 'concurrency = "4"', "concurrency"),
        ("concurrency = 8", "concurrency = 4.0", "concurrency"),
        ("concurrency = 8", "concurrency = 1000000", "concurrency"),
        ("timeout = 10", "timeout = true", "timeout"),
        ("timeout = 10", 'timeout = "10"', "timeout"),
        ("retries = 1", "retries = 1e3", "retries"),
        ("limit = 4", "limit = 1e12", "limit"),
        ("seed = 7", "seed = 7\nrepetitions = 1e12", "repetitions"),
        ("seed = 7", "seed = 7\nrepetitions = 1000000000000", "repetitions"),
    ],
)
def test_tournament_numbers_are_strict_and_bounded(old, new, key, tmp_path, capsys) -> None:
    err = _refused(config_text().replace(old, new, 1), tmp_path, capsys)
    assert f"key '{key}'" in err


def test_string_is_not_a_bool_in_plugin_options(tmp_path, capsys) -> None:
    err = _refused(config_text(protocol_options='simultaneous = "yes"'), tmp_path, capsys)
    assert "[protocol]" in err and "key 'simultaneous'" in err and "boolean" in err


def test_string_is_not_an_int_in_player_options(tmp_path, capsys) -> None:
    text = config_text().replace("max_quotes = 3", 'max_quotes = "3"')
    err = _refused(text, tmp_path, capsys)
    assert "player 'quoter-3'" in err and "key 'max_quotes'" in err


def test_int_is_still_a_float(write_config) -> None:
    from arena_core.config import load_config
    from arena_core.plugins import get_registry

    cfg = load_config(write_config(), get_registry())  # timeout = 10 for a float option
    assert cfg.raw.tournament.timeout == 10.0


def test_misspelt_schedule_kind_suggests(tmp_path, capsys) -> None:
    err = _refused(config_text(schedule="round-robbin"), tmp_path, capsys)
    assert "did you mean 'round-robin'" in err


def test_misspelt_table_suggests_even_when_it_hides_a_required_one(tmp_path, capsys) -> None:
    err = _refused(config_text().replace("[tournament]", "[tournamnet]"), tmp_path, capsys)
    assert "unknown table [tournamnet]" in err and "did you mean 'tournament'" in err


@pytest.mark.parametrize("name", ["/tmp/pwned", "../x", "a/b", "[/]", "a b", "x\x1b[2J", ""])
def test_unsafe_tournament_names_are_refused(name, tmp_path, capsys) -> None:
    text = config_text().replace('name = "t"', "name = " + _toml_str(name), 1)
    err = _refused(text, tmp_path, capsys)
    assert "[tournament]" in err and "key 'name'" in err
    assert "\x1b" not in err  # the error itself shows the name with its controls made visible


def _toml_str(s: str) -> str:
    return (
        '"'
        + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in s)
        + '"'
    )


@pytest.mark.parametrize("name", ["r\x1b[2J", "r\u202eevil", " r", "a\nb"])
def test_player_names_with_controls_are_refused(name, tmp_path, capsys) -> None:
    text = config_text().replace('name = "random"', "name = " + _toml_str(name))
    err = _refused(text, tmp_path, capsys)
    assert "[players]" in err and "key 'name'" in err and "\x1b" not in err


def test_player_names_may_look_like_markup(write_config) -> None:
    """Player names are labels, escaped wherever shown (tables, HTML), never paths."""
    from arena_core.config import load_config
    from arena_core.plugins import get_registry

    text = config_text().replace('name = "random"', 'name = "<b>x</b> [link=https://e.x]r[/link]"')
    cfg = load_config(write_config(text), get_registry())
    assert cfg.raw.players[-1].name.startswith("<b>x</b>")
