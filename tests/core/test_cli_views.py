"""The CLI as a new user meets it: listings at 80 columns and piped, json/csv everywhere a table is
printed, progress lines in logs, completion, and a missing extra named instead of a traceback."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from arena_core.cli.main import build_parser, main
from arena_core.cli.views import (
    ProgressLines,
    completion_script,
    emit,
    missing_extra_message,
)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from arena_core.testing import run_tournament

    url = f"sqlite:///{tmp_path_factory.mktemp('views') / 'l.db'}"
    run_tournament(
        {
            "tournament": {"name": "views-t", "protocol": "debate", "seed": 1},
            "dataset": {"plugin": "bundled", "limit": 3},
            "judge": {"plugin": "quote"},
            "players": [
                {"name": "a-player-with-a-rather-long-name", "agent": "extractive"},
                {"name": "r", "agent": "random"},
            ],
        },
        url,
    )
    return url


def test_tournaments_lists_pools_and_counts(url, capsys) -> None:
    assert main(["tournaments", "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert "views-t" in out and "12" in out
    assert main(["tournaments", "--ledger", url, "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["tournaments"][0]["done"] == 12 and d["tournaments"][0]["judge"] == "quote"
    assert d["pools"] == [{"pool": "views-t", "tournaments": ["views-t"], "players": 2}]


def test_matches_json_is_whole_and_a_table_says_what_it_left_out(url, capsys) -> None:
    assert main(["matches", "--ledger", url, "--format", "json"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 12 and "left out" not in out.err
    assert main(["matches", "--ledger", url, "--limit", "5"]) == 0
    out = capsys.readouterr()
    assert "5 of 12" in out.out and "7 more match(es) left out" in out.err
    assert main(["matches", "--ledger", url, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][0] == "id" and len(rows) == 13 and len(rows[1][0]) == 24  # whole ids


def test_piped_tables_are_never_cut_and_names_never_split() -> None:
    long = "a-player-with-a-rather-long-name-" * 4
    buf = io.StringIO()
    emit(["id", "player", "note"], [["0123456789ab", long, "x " * 100]], out=buf)
    text = buf.getvalue()
    assert long in text and text.count("x") == 100
    assert all(line == line.rstrip() for line in text.splitlines())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_leaderboard_by_tournament_and_at_80_columns(url, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    term = Terminal()
    monkeypatch.setattr("sys.stdout", term)
    assert main(["leaderboard", "--ledger", url, "--tournament", "views-t"]) == 0
    out = term.getvalue()
    assert "a-player-with-a-rather-long-name" in out  # whole, on one line
    assert max(len(line) for line in out.splitlines()) <= 80
    assert main(["leaderboard", "--ledger", url, "--pool", "views-t", "--tournament", "x"]) == 2


def test_show_and_plugins_speak_json(url, capsys) -> None:
    assert main(["matches", "--ledger", url, "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert main(["show", first["id"][:8], "--ledger", url, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == first["id"] and shown["turns"] and shown["verdict"]["judge"] == "quote"
    assert main(["plugins", "--kind", "judge", "--format", "json"]) == 0
    assert any(e["name"] == "quote" for e in json.loads(capsys.readouterr().out))


def test_run_without_a_terminal_logs_progress_and_json_result(write_config, ledger_url, capfd):
    assert main(["run", str(write_config()), "--ledger", ledger_url, "--format", "json"]) == 0
    out = capfd.readouterr()
    d = json.loads(out.out)
    assert d["done"] == d["to_play"] > 0 and d["leaderboard"] and d["failed"] == 0


def test_progress_lines_come_at_intervals_and_once_at_the_end(capsys) -> None:
    now = [0.0]
    lines = ProgressLines("t", every=10, clock=lambda: now[0])
    s = SimpleNamespace(done=0, failed=0, to_play=100, rate=5.0)
    for k in range(1, 101):
        now[0] = k * 0.5  # 50 s in all
        s.done = k
        lines(s)
    lines(s)  # the engine reports the end again: not printed twice
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and err[-1].startswith("t: 100/100 played")
    assert "about 16s left" in err[0]


def test_completion_script_completes_commands_options_and_choices() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = completion_script(build_parser(), "bash")

    def complete(*words: str) -> list[str]:
        words_q = " ".join(f"'{w}'" for w in words)
        probe = (
            f"{script}\nCOMP_WORDS=(arena {words_q}); COMP_CWORD={len(words)}; _arena; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        res = subprocess.run([bash, "-c", probe], capture_output=True, text=True, check=True)
        return res.stdout.split()

    assert {"run", "report", "view", "tournaments"} <= set(complete("r")) | set(complete(""))
    assert complete("rat") == ["ratings"]
    assert complete("ratings", "") == ["recompute"]
    assert "--html" in complete("report", "--h")
    assert complete("leaderboard", "--format", "") == ["table", "md", "csv", "json"]
    assert "autoload -U +X bashcompinit" in completion_script(build_parser(), "zsh")


def test_arena_completion_prints_the_script(capsys) -> None:
    assert main(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert "_arena_cmds['arena ratings']='recompute'" in out and "complete -o default" in out


def test_a_missing_optional_package_names_its_extra(capsys, monkeypatch) -> None:
    exc = ModuleNotFoundError("No module named 'transformers'", name="transformers")
    assert "pip install 'arena-debate[hf]'" in missing_extra_message(exc)
    assert missing_extra_message(ModuleNotFoundError("x", name="nothing_we_know")) is None
    from arena_core.cli.main import COMMANDS

    def boom(args):
        raise ModuleNotFoundError("No module named 'submitit'", name="submitit")

    monkeypatch.setitem(COMMANDS, "tournaments", boom)
    assert main(["tournaments"]) == 2
    assert "arena-debate[slurm]" in capsys.readouterr().err
