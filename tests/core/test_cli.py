"""The commands a user types after a run: leaderboard, matches, show, plugins, export, ratings."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from importlib.metadata import packages_distributions

import pytest

from arena_core.cli.main import main
from tests.core.test_engine import FAULTY

OURS = packages_distributions()["arena_core"][0]  # the distribution name: arena-debate


@pytest.fixture
def played(write_config, ledger_url):
    assert main(["run", str(write_config()), "--ledger", ledger_url, "-q"]) == 0
    return ledger_url


def test_run_prints_leaderboard_and_judge_accuracy(write_config, ledger_url, capsys) -> None:
    assert main(["run", str(write_config()), "--ledger", ledger_url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Leaderboard" in out and "quoter-3" in out
    assert "Judge accuracy (quote):" in out and "95% CI" in out and "by matchup" in out
    assert "played 48 of 48 (48 done, 0 failed)" in out


def test_leaderboard_formats(played, capsys, tmp_path) -> None:
    assert main(["leaderboard", "--ledger", played, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| # | player | mu | sigma | mu-3σ | matches |")
    assert md.count("\n") == 2 + 3
    assert main(["leaderboard", "--ledger", played, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["player"] for r in rows} == {"quoter-3", "quoter-1", "random"}
    assert all(int(r["matches"]) == 32 for r in rows)
    out = tmp_path / "lb.json"
    assert main(["leaderboard", "--ledger", played, "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["pool"] == "t" and data["rows"][0]["rank"] == 1
    top = data["rows"][0]
    assert top["conservative"] == pytest.approx(top["mu"] - 3 * top["sigma"])
    assert top["bt_lower"] <= top["bt"] <= top["bt_upper"]


def test_matches_show_and_failed_listing(write_config, ledger_url, capsys) -> None:
    path = write_config(players=FAULTY.format(rate=0.5), retries=0, limit=3)
    assert main(["run", str(path), "--ledger", ledger_url, "-q"]) == 1  # some matches failed
    capsys.readouterr()
    assert main(["matches", "--ledger", ledger_url, "--status", "failed", "--format", "json"]) == 0
    failed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert failed and all(m["status"] == "failed" and "AgentFault" in m["error"] for m in failed)
    assert main(["matches", "--ledger", ledger_url, "--status", "done", "--format", "json"]) == 0
    done = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["show", done[0]["id"][:10], "--ledger", ledger_url]) == 0
    shown = capsys.readouterr().out
    assert "verdict" in shown and "round 2" in shown
    assert main(["show", failed[0]["id"], "--ledger", ledger_url]) == 0
    assert "AgentFault" in capsys.readouterr().out


def test_show_unknown_match_and_missing_ledger(tmp_path, played, capsys) -> None:
    assert main(["show", "ffffffffff", "--ledger", played]) == 2
    assert "no match with id" in capsys.readouterr().err
    assert main(["leaderboard", "--ledger", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_export_jsonl(played, tmp_path) -> None:
    out = tmp_path / "m.jsonl"
    assert main(["export", "--ledger", played, "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 48
    r = recs[0]
    assert len(r["turns"]) == 4 and r["verdict"]["judge"] == "quote"
    assert r["item"]["context"] and r["seats"].keys() == {"A", "B"}


def test_ratings_recompute_changes_nothing(played, capsys) -> None:
    assert main(["ratings", "recompute", "--ledger", played]) == 0
    assert "largest change 0.000000" in capsys.readouterr().out


def test_plugins_lists_builtins_with_origin_and_options(capsys) -> None:
    assert main(["plugins", "--json"]) == 0
    entries = {(e["kind"], e["name"]): e for e in json.loads(capsys.readouterr().out)}
    for key in [
        ("protocol", "debate"),
        ("protocol", "consultancy"),
        ("agent", "extractive"),
        ("agent", "faulty"),
        ("judge", "quote"),
        ("dataset", "bundled"),
    ]:
        assert key in entries and entries[key]["origin"] == OURS
    opts = {o["name"]: o for o in entries[("agent", "extractive")]["options"]}
    assert opts["max_quotes"]["default"] == "2"


def test_help_is_light() -> None:
    code = (
        "import sys\nfrom arena_core.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'sqlalchemy', 'pydantic', 'rich') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")
