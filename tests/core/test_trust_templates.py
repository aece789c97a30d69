"""Scripted reply templates: braces are text, placeholders are checked when the config is read,
and nothing in a template is evaluated (issue 12)."""

from __future__ import annotations

import pytest
from arena_plugins.agents.fake import check_template, fill

from arena_core.cli.main import main
from arena_core.ledger import Ledger
from arena_core.types import Observation
from tests.conftest import config_text


def _players(reply: str) -> str:
    return (
        f'[[players]]\nname = "s"\nagent = "scripted"\noptions = {{ replies = [{reply}] }}\n'
        '[[players]]\nname = "d"\nagent = "deterministic"\n'
    )


def test_braces_in_a_reply_play_as_text(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    reply = "'JSON {\"answer\": 1} and {{literal}} for {answer}'"
    cfg.write_text(config_text(players=_players(reply), limit=2), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'l.db'}"
    assert main(["run", str(cfg), "--ledger", url, "-q"]) == 0, capsys.readouterr().err
    ledger = Ledger(url, create=False)
    assert ledger.counts("t") == {"done": 8}
    texts = {
        t.text
        for m in ledger.matches(tournament="t")
        for t in ledger.turns(m.id)
        if t.player == "s"
    }
    assert texts and all(x.startswith('JSON {"answer": 1} and {literal} for ') for x in texts)


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ("'{answer.__class__.__mro__}'", "only plain {answer}"),
        ("'{answer[0]}'", "only plain {answer}"),
        ("'{anser}'", "did you mean 'answer'"),
        ("'{question!r}'", "only plain {question}"),
    ],
)
def test_bad_placeholders_are_refused_at_config_time(reply, says, tmp_path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(players=_players(reply), limit=2), encoding="utf-8")
    db = tmp_path / "l.db"
    assert main(["run", str(cfg), "--ledger", f"sqlite:///{db}", "-q"]) == 2
    err = capsys.readouterr().err
    assert says in err and "player 's'" in err and "Traceback" not in err
    assert not db.exists()


def test_a_reply_file_is_checked_too(tmp_path, capsys) -> None:
    replies = tmp_path / "r.txt"
    replies.write_text("fine {answer}\n{seat.__init__.__globals__}\n", encoding="utf-8")
    players = (
        f'[[players]]\nname = "s"\nagent = "scripted"\noptions = {{ file = "{replies}" }}\n'
        '[[players]]\nname = "d"\nagent = "deterministic"\n'
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(players=players, limit=2), encoding="utf-8")
    assert main(["run", str(cfg), "--ledger", f"sqlite:///{tmp_path / 'l.db'}", "-q"]) == 2
    assert "reply 2" in capsys.readouterr().err


def test_fill_never_evaluates() -> None:
    obs = Observation(
        seat="A", phase="speech", question="Q {answer}", answers=["x {question}", "y"], my_answer=0
    )
    # Substituted values are not templates themselves, and unknown shapes stay as written.
    assert fill("{answer} | {question} | {0} | { }", obs) == "x {question} | Q {answer} | {0} | { }"
    assert check_template("}{") == "}{"
