"""Untrusted text never becomes rich markup or a terminal control sequence (issue 12).

Item ids, questions and speeches come from datasets and speakers; player names may come from an
old ledger. `[/]` used to crash `matches`, `leaderboard` and the end of `run` with MarkupError
after every match was played, and ESC/BEL sequences reached the terminal verbatim.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from arena_core.cli.main import main
from arena_core.textsafe import markup, visible
from tests.conftest import config_text

EVIL = "[/]\x1b]0;pwned\x07\x1b[2J[link=https://evil.example]x[/link]\u202e"


def _dataset(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl"
    rows = [
        {
            "id": f"{EVIL}-{i}",
            "question": f"Q{i} {EVIL}?",
            "answers": [f"yes {EVIL}", "no"],
            "gold": 0,
            "context": f"The answer is yes. {EVIL}",
        }
        for i in range(3)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _config(tmp_path: Path) -> Path:
    data = _dataset(tmp_path)
    text = config_text(limit=3, judge="quote").replace(
        'plugin = "bundled"', f'plugin = "jsonl"\noptions = {{ path = "{data}" }}'
    )
    players = (
        '[[players]]\nname = "a"\nagent = "deterministic"\n'
        f"options = {{ text = {json.dumps('I say ' + EVIL + ' {answer}')} }}\n"
        '[[players]]\nname = "b"\nagent = "random"\n'
    )
    text = text.split("[[players]]")[0] + players + "\n[schedule]" + text.split("[schedule]")[1]
    cfg = tmp_path / "evil.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


def _clean(out: str) -> None:
    assert "\x1b]" not in out and "\x1b[2J" not in out and "\x07" not in out
    assert "\u202e" not in out
    assert "Traceback" not in out and "MarkupError" not in out


def test_visible_and_markup_helpers() -> None:
    assert visible("a\x1b[2Jb\x07\n") == "a\\x1b[2Jb\\x07\n"
    assert visible("x\ny", newlines=False) == "x\\x0ay"
    assert markup("[/]") == "\\[/]"
    assert visible("\u202eabc") == "\\u202eabc"


def test_evil_ids_speeches_and_names_print_safely(tmp_path, capsys) -> None:
    db = tmp_path / "l.db"
    url = f"sqlite:///{db}"
    assert main(["run", str(_config(tmp_path)), "--ledger", url]) in (0, 1)
    _clean(capsys.readouterr().out)
    # A player name from an older ledger (names are checked only at config time now).
    con = sqlite3.connect(db)
    con.execute("UPDATE rating SET player = ? WHERE player = 'a'", (EVIL,))
    con.execute("UPDATE turn SET player = ? WHERE player = 'b'", (EVIL,))
    con.commit()
    con.close()
    for argv in (["matches"], ["leaderboard"], ["leaderboard", "--no-bt"], ["report"]):
        assert main([*argv, "--ledger", url]) == 0
        out = capsys.readouterr().out
        _clean(out)
        assert "[/]" in out, argv  # shown literally
    assert main(["matches", "--ledger", url, "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert main(["show", first["id"], "--ledger", url]) == 0
    out = capsys.readouterr().out
    _clean(out)
    assert "\\x1b]0;pwned\\x07" in out  # made visible, not dropped


def test_usage_errors_show_controls(tmp_path, capsys) -> None:
    db = tmp_path / "l.db"
    assert main(["run", str(_config(tmp_path)), "--ledger", f"sqlite:///{db}", "-q"]) in (0, 1)
    capsys.readouterr()
    assert main(["show", "\x1b[2Jzz", "--ledger", f"sqlite:///{db}"]) == 2
    _clean(capsys.readouterr().err)


@pytest.mark.parametrize("cmd", ["show"])
def test_dataset_preview_is_visible(cmd, tmp_path, capsys) -> None:
    data = _dataset(tmp_path)
    assert main(["datasets", cmd, "jsonl", "-o", f"path={data}"]) == 0
    _clean(capsys.readouterr().out)
