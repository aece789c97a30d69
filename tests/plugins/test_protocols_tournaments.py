"""The ready tournament files of the protocols run offline and give what they promise."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from arena_core.cli.main import add_report_arguments
from arena_core.cli.reports import report_command
from arena_core.learning.pairs import PairQuery, PairStats, pairs
from arena_core.ledger import Ledger
from arena_core.reports.tournament import tournament_report
from arena_core.testing import run_tournament

ROOT = Path(__file__).resolve().parents[2] / "tournaments"
DVC = sorted((ROOT / "debate-vs-consultancy").glob("*.toml"))
FILES = [
    ROOT / "branched-dpo.toml",
    ROOT / "best-of-n.toml",
    ROOT / "red-blue-duel.toml",
    *DVC,
]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    url = f"sqlite:///{tmp_path_factory.mktemp('files') / 'l.db'}"
    for path in FILES:
        summary = run_tournament(path, url)
        assert summary.failed == 0 and summary.done == summary.scheduled > 0, path.name
    led = Ledger(url)
    yield led
    led.close()


def test_debate_vs_consultancy_files_differ_only_in_the_protocol() -> None:
    import tomllib

    configs = [tomllib.loads(p.read_text()) for p in DVC]
    assert len(configs) == 4
    for c in configs:
        for key in ("dataset", "judge"):
            assert c[key] == configs[0][key]
        assert c["tournament"]["seed"] == configs[0]["tournament"]["seed"]
    assert {c["tournament"]["protocol"] for c in configs} == {
        "debate",
        "consultancy",
        "double-consultancy",
        "empty",
    }


def test_report_shows_judge_accuracy_side_by_side(ledger: Ledger, capsys) -> None:
    names = ["dvc-debate", "dvc-consultancy", "dvc-double-consultancy", "dvc-empty"]
    items = [{m.item_id for m in ledger.matches(tournament=n)} for n in names]
    assert all(i == items[0] for i in items) and len(items[0]) == 48  # the same items
    reports = {n: tournament_report(ledger, n) for n in names}
    assert all(r.accuracy is not None for r in reports.values())
    # the literature's ordering, reproduced model-free: debate helps the judge, consultancy not
    assert reports["dvc-debate"].lower > 0.5
    assert reports["dvc-consultancy"].accuracy < reports["dvc-debate"].accuracy
    # The judge alone answers by its stated rule (the longer answer), not "all undecided":
    # 35 of the 44 bundled items whose answers differ in length have the longer one gold.
    empty = reports["dvc-empty"]
    assert (empty.graded, empty.undecided, empty.correct) == (48, 4, 35)
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    args = [arg for n in names for arg in ("--tournament", n)]
    assert report_command(parser.parse_args(["--ledger", ledger.url, *args])) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in names) and "judge accuracy" in out


@pytest.mark.parametrize(
    ("tournament", "source"),
    [
        ("branched-dpo", "branched"),
        ("best-of-n", "best-of-n"),
        ("red-blue-duel", "duel"),
    ],
)
def test_learning_files_export_pairs(ledger: Ledger, tournament: str, source: str) -> None:
    stats = PairStats()
    rows = list(pairs(ledger, PairQuery(tournaments=[tournament]), stats=stats))
    assert len(rows) > 50 and stats.by_source == {source: len(rows)}
    assert not stats.dropped["prompts differ"]


def test_red_blue_duel_keeps_both_judges_scores(ledger: Ledger) -> None:
    matches = ledger.matches(tournament="red-blue-duel", status="done")
    assert len(matches) == 48 * 2 * 2  # two blue players, both presentation orders
    for m in matches[:20]:
        v = ledger.verdict(m.id)
        assert set(v.meta["scores"]) == {"reward", "cost"}
