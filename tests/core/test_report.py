"""`arena report`: judge accuracy, side win rates, calibration and quote statistics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from arena_core.cli.main import add_report_arguments
from arena_core.cli.reports import report_command
from arena_core.errors import UsageError
from arena_core.hookspecs import hookimpl
from arena_core.interfaces import Judge
from arena_core.ledger import Ledger
from arena_core.plugins import register_plugin, unregister_plugin
from arena_core.registry import NoOptions, Registry
from arena_core.reports.tournament import (
    metric_rows,
    to_json,
    to_markdown,
    tournament_report,
)
from arena_core.testing import run_tournament
from arena_core.types import Decision, JudgeView


class FirstJudge(Judge):
    """Always 0.8 for the first option: right exactly when the first option is gold."""

    async def decide(self, view: JudgeView) -> Decision:
        return Decision(probs=[0.8, 0.2] + [0.0] * (len(view.options) - 2))


class Plugin:
    @hookimpl
    def arena_register(self, registry: Registry) -> None:
        registry.add("judge", "first-test", lambda _: FirstJudge(), NoOptions)


QUOTERS = [
    {"name": "quoter", "agent": "extractive", "options": {"max_quotes": 2}},
    {"name": "liar", "agent": "random", "options": {"quotes": 2, "fabricate": 1.0}},
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'l.db'}"
    register_plugin(Plugin(), "report-test")
    try:
        data = {"plugin": "bundled", "limit": 4}
        for name, protocol, judge, extra in [
            ("first-debate", "debate", "first-test", {"players": QUOTERS}),
            ("gold-first", "empty", "first-test", {"protocol": {"order": "gold-first"}}),
            ("gold-second", "empty", "first-test", {"protocol": {"order": "gold-second"}}),
            ("quotes", "debate", "quote", {"players": QUOTERS}),
            ("consult", "consultancy", "quote", {"players": QUOTERS[:1]}),
            (
                "tree",
                "branched",
                "quote",
                {
                    "players": QUOTERS[:1],
                    "protocol": {"mode": "half"},
                    "schedule": {"kind": "self-play"},
                },
            ),
            (
                "duel",
                "duel",
                "length",
                {"players": [{"name": "s", "agent": "sampler"}, {"name": "t", "agent": "sampler"}]},
            ),
        ]:
            run_tournament(
                {
                    "tournament": {"name": name, "protocol": protocol, "seed": 1},
                    "dataset": data,
                    "judge": {"plugin": judge},
                    **extra,
                },
                url,
            )
    finally:
        unregister_plugin("report-test")
    return url


def _report(url: str, name: str):
    ledger = Ledger(url)
    try:
        return tournament_report(ledger, name)
    finally:
        ledger.close()


def test_accuracy_side_rates_and_calibration_of_a_judge_that_always_picks_first(url) -> None:
    r = _report(url, "first-debate")
    # 4 items x 2 sides x 2 orders; A is right in exactly half
    assert (r.matches, r.verdicts, r.graded, r.correct, r.undecided) == (16, 16, 16, 8, 0)
    assert r.accuracy == 0.5 and r.lower < 0.5 < r.upper
    assert r.first_speaker_wins == 1.0
    assert r.correct_side_wins == 0.5 and r.incorrect_side_wins == 0.5
    assert r.mean_confidence == pytest.approx(0.8)
    assert r.brier == pytest.approx(0.5 * 0.2**2 + 0.5 * 0.8**2)
    assert r.ece == pytest.approx(0.3)


def test_the_empty_baseline_is_graded_by_where_gold_is_shown(url) -> None:
    first, second = _report(url, "gold-first"), _report(url, "gold-second")
    assert (first.accuracy, second.accuracy) == (1.0, 0.0)
    assert first.first_speaker_wins is None and first.correct_side_wins is None


def test_undecided_verdicts_count_half_in_the_tie_adjusted_accuracy(url) -> None:
    r = _report(url, "quotes")
    assert r.accuracy == pytest.approx(r.correct / r.graded)
    assert r.accuracy_ties_half == pytest.approx((r.correct + 0.5 * r.undecided) / r.graded)


def test_every_leaf_counts(url) -> None:
    r = _report(url, "tree")
    assert r.matches == 8 and r.verdicts == r.graded == 8 * 4


def test_consultancy_side_rates(url) -> None:
    r = _report(url, "consult")
    assert r.first_speaker_wins is None  # one seat: no speaking order
    assert r.correct_side_wins is not None and r.incorrect_side_wins is not None


def test_answer_comparisons_have_no_accuracy(url) -> None:
    r = _report(url, "duel")
    assert not r.gradable and r.accuracy is None and r.brier is None
    assert r.first_speaker_wins is not None  # position bias still shows
    rows = {row[0]: row[1] for row in metric_rows([r])}
    assert rows["judge accuracy"].startswith("n/a") and rows["undecided"] == "-"


def test_quote_stats_add_up_the_turn_meta_per_player(url) -> None:
    r = _report(url, "quotes")
    ledger = Ledger(url)
    expected: dict[str, dict[str, int]] = {}
    for m in ledger.matches(tournament="quotes", status="done"):
        for t in ledger.turns(m.id):
            e = expected.setdefault(t.player, {"quotes": 0, "valid": 0, "invalid": 0, "words": 0})
            e["quotes"] += t.meta["quotes"]
            e["valid"] += t.meta["valid"]
            e["invalid"] += t.meta["invalid"]
            e["words"] += t.meta["valid_words"]
    ledger.close()
    got = {
        p.player: {
            "quotes": p.overall.quotes,
            "valid": p.overall.valid,
            "invalid": p.overall.invalid,
            "words": p.overall.valid_words,
        }
        for p in r.quotes
    }
    assert got == expected
    liar = next(p for p in r.quotes if p.player == "liar")
    quoter = next(p for p in r.quotes if p.player == "quoter")
    assert liar.overall.valid_rate == 0.0 and quoter.overall.valid_rate == 1.0
    assert liar.correct.speeches + liar.incorrect.speeches == liar.overall.speeches
    assert quoter.winner.speeches > quoter.loser.speeches  # real evidence beats fabrication


def test_outputs_side_by_side(url, tmp_path: Path, capsys) -> None:
    reports = [_report(url, "first-debate"), _report(url, "gold-first")]
    md = to_markdown(reports)
    assert md.splitlines()[0] == "| metric | first-debate | gold-first |"
    assert "| judge accuracy | 50.0% (8/16) | 100.0% (4/4) |" in md
    data = json.loads(to_json(reports))
    assert [t["tournament"] for t in data["tournaments"]] == ["first-debate", "gold-first"]
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    args = parser.parse_args(
        ["--ledger", url, "--tournament", "gold-first", "--tournament", "gold-second"]
    )
    assert report_command(args) == 0
    out = capsys.readouterr().out
    assert "gold-first" in out and "gold-second" in out and "100.0%" in out
    args = parser.parse_args(["--ledger", url, "--format", "json", "--out", str(tmp_path / "r")])
    assert report_command(args) == 0
    assert len(json.loads((tmp_path / "r").read_text())["tournaments"]) == 7
    with pytest.raises(UsageError, match="no tournament 'nope'"):
        report_command(parser.parse_args(["--ledger", url, "--tournament", "nope"]))
