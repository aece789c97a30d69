"""Bad config is refused with a message naming file, table and key, exit 2, ledger untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_core.cli.main import main
from arena_core.config import load_config
from arena_core.errors import ConfigError
from arena_core.plugins import get_registry
from tests.conftest import PLAYERS, config_text


def _refused(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    db = tmp_path / "refused.db"
    code = main(["run", str(path), "--ledger", f"sqlite:///{db}", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not db.exists(), "a refused config must not create or touch the ledger"
    return err


def test_good_config_resolves(write_config) -> None:
    cfg = load_config(write_config(), get_registry())
    assert cfg.name == "t"
    assert [p.name for p in cfg.raw.players] == ["quoter-3", "quoter-1", "random"]
    assert cfg.player_options["quoter-3"].max_quotes == 3  # type: ignore[attr-defined]


def test_unknown_agent_suggests_nearest(write_config, tmp_path, capsys) -> None:
    path = write_config(
        players=PLAYERS.replace(
            'agent = "extractive"\noptions = { max_quotes = 3 }',
            'agent = "extractve"\noptions = { max_quotes = 3 }',
        )
    )
    err = _refused(path, tmp_path, capsys)
    assert str(path) in err
    assert "[players] (player 'quoter-3')" in err
    assert "key 'agent'" in err
    assert "unknown agent 'extractve'" in err and "did you mean 'extractive'" in err


def test_unknown_protocol(write_config, tmp_path, capsys) -> None:
    err = _refused(write_config(protocol="debat"), tmp_path, capsys)
    assert "[tournament]" in err and "key 'protocol'" in err and "did you mean 'debate'" in err


def test_wrong_option_type_names_table_and_key(write_config, tmp_path, capsys) -> None:
    path = write_config(players=PLAYERS.replace("max_quotes = 1", 'max_quotes = "many"'))
    err = _refused(path, tmp_path, capsys)
    assert "[players.options] (player 'quoter-1')" in err
    assert "key 'max_quotes'" in err and "'many'" in err


def test_unknown_option_key_suggests(write_config, tmp_path, capsys) -> None:
    path = write_config(players=PLAYERS.replace("max_quotes = 1", "max_quote = 1"))
    err = _refused(path, tmp_path, capsys)
    assert "unknown option 'max_quote'" in err and "did you mean 'max_quotes'" in err


def test_protocol_option_checked(write_config, tmp_path, capsys) -> None:
    err = _refused(write_config(protocol_options="speeches = 0"), tmp_path, capsys)
    assert "[protocol]" in err and "key 'speeches'" in err


def test_missing_table(write_config, tmp_path, capsys) -> None:
    text = config_text().replace('[judge]\nplugin = "quote"', "")
    err = _refused(write_config(text), tmp_path, capsys)
    assert "missing table [judge]" in err


def test_unknown_table_suggests(write_config, tmp_path, capsys) -> None:
    text = config_text() + '\n[ratting]\npool = "x"\n'
    err = _refused(write_config(text), tmp_path, capsys)
    assert "unknown table [ratting]" in err and "did you mean 'ratings'" in err


def test_unknown_key_in_section(write_config, tmp_path, capsys) -> None:
    text = config_text().replace("seed = 7", "seeds = 7")
    err = _refused(write_config(text), tmp_path, capsys)
    assert "[tournament]" in err and "key 'seeds'" in err and "did you mean 'seed'" in err


def test_missing_file(tmp_path, capsys) -> None:
    err = _refused(tmp_path / "nope.toml", tmp_path, capsys)
    assert "nope.toml: no such file" in err


def test_unreadable_file(tmp_path, capsys) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00bad")
    err = _refused(path, tmp_path, capsys)
    assert "cannot read" in err


def test_invalid_toml(write_config, tmp_path, capsys) -> None:
    err = _refused(write_config("[tournament\nname='x'"), tmp_path, capsys)
    assert "not valid TOML" in err and "line 1" in err


def test_duplicate_player_names(write_config) -> None:
    with pytest.raises(ConfigError, match="used by another player"):
        load_config(write_config(players=PLAYERS + PLAYERS), get_registry())


def test_red_blue_needs_known_red(write_config) -> None:
    with pytest.raises(ConfigError, match="did you mean 'random'"):
        load_config(
            write_config(schedule="red-blue", schedule_extra='red = "randon"'), get_registry()
        )


def test_scripted_agent_with_missing_file_is_usage_error(write_config, tmp_path, capsys) -> None:
    players = '[[players]]\nname = "s"\nagent = "scripted"\noptions = { file = "/nonexistent/x" }\n'
    players += '[[players]]\nname = "d"\nagent = "deterministic"\n'
    err = _refused(write_config(players=players), tmp_path, capsys)
    assert "player 's'" in err and "cannot read" in err


def test_missing_dataset_file_leaves_ledger_untouched(write_config, tmp_path, capsys) -> None:
    text = config_text().replace(
        'plugin = "bundled"', 'plugin = "jsonl"\noptions = { path = "/nonexistent.jsonl" }'
    )
    err = _refused(write_config(text), tmp_path, capsys)
    assert "/nonexistent.jsonl" in err


def test_changed_config_under_same_name_is_refused(write_config, ledger_url, capsys) -> None:
    assert main(["run", str(write_config()), "--ledger", ledger_url, "-q"]) == 0
    code = main(["run", str(write_config(seed=8, name="t2.toml")), "--ledger", ledger_url, "-q"])
    assert code == 2
    assert "already in the ledger with a different config" in capsys.readouterr().err
