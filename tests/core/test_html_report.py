"""`arena report --html DIR` and `--format json`: what the page holds, that it is inert, and what
a real browser shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from arena_core.cli.main import main
from arena_core.ledger import Ledger
from arena_core.reports.html import CSP, render_report
from arena_core.reports.leaderboard import Row
from arena_core.reports.overview import build_overview, head_to_head, interval_warnings
from arena_core.reports.svg import heatmap, interval_plot, line_chart
from tests.core import browser


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return browser.build_ledger(tmp_path_factory.mktemp("html-report"))


@pytest.fixture(scope="module")
def data(url: str) -> dict:
    ledger = Ledger(url, create=False)
    try:
        return build_overview(ledger)
    finally:
        ledger.close()


def test_json_holds_what_the_page_shows(url, tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    args = ["report", "--ledger", url, "--tournament", "hostile", "--tournament", "tree"]
    assert main([*args, "--format", "json", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert [t["tournament"] for t in d["tournaments"]] == ["hostile", "tree"]
    assert {p["pool"] for p in d["pools"]} == {"hostile", "tree"}
    hostile = next(p for p in d["pools"] if p["pool"] == "hostile")
    board = {r["player"]: r for r in hostile["leaderboard"]}
    assert set(board) == {"quoter", browser.EVIL_NAME}
    assert [r["rank"] for r in hostile["leaderboard"]] == [1, 2]
    assert hostile["leaderboard"][0]["bt"] >= hostile["leaderboard"][1]["bt"]
    # 8 matches: the interval rests on too few, and the record is perfect either way
    assert all(any("too few" in w for w in r["warnings"]) for r in board.values())
    h2h = hostile["head_to_head"]
    assert h2h["games"][0][1] == h2h["games"][1][0] == 8
    assert h2h["wins"][0][1] + h2h["wins"][1][0] == 8
    t = d["tournaments"][0]
    assert t["first_speaker"]["n"] > 0 and t["calibration"]
    assert sum(b["n"] for b in t["calibration"]) <= t["graded"]
    assert t["position"]["chose_first"]["n"] > 0
    assert t["by_matchup"][0]["verdicts"] == t["graded"]
    quotes = {q["player"]: q["overall"] for q in t["quotes"]}
    evil = quotes[browser.EVIL_NAME]  # one fabricated quote a speech; the forged mark uncounted
    assert evil["invalid"] == evil["speeches"] == evil["quotes"] == 16 and evil["valid"] == 0
    assert quotes["quoter"]["valid_rate"] == 1.0
    assert {h for h in hostile["history"]} == {"quoter", browser.EVIL_NAME}
    assert [p["player"] for p in d["lineage"]] == ["quoter", browser.EVIL_NAME, "brancher"]
    assert d["learner_runs"] == []


def test_degenerate_intervals_are_named() -> None:
    def row(**kw) -> Row:
        base = dict(
            rank=1,
            player="p",
            mu=25.0,
            sigma=1.0,
            conservative=22.0,
            matches=40,
            wins=20,
            losses=20,
            draws=0,
            win_rate=0.5,
            bt=1000.0,
            bt_lower=950.0,
            bt_upper=1050.0,
        )
        return Row(**{**base, **kw})

    assert interval_warnings(row()) == []
    assert "undefeated" in interval_warnings(row(losses=0))[0]
    assert "winless" in interval_warnings(row(wins=0))[0]
    assert "no spread" in interval_warnings(row(bt_lower=1000.0, bt_upper=1000.4))[0]
    assert "too few" in interval_warnings(row(matches=3))[0]
    assert "no Bradley-Terry" in interval_warnings(row(bt=None, bt_lower=None, bt_upper=None))[0]


def test_head_to_head_counts_draws_half(url) -> None:
    ledger = Ledger(url, create=False)
    try:
        h = head_to_head(ledger, "hostile", ["quoter", browser.EVIL_NAME, "absent"])
    finally:
        ledger.close()
    assert h["games"][2] == [0, 0, 0] and h["win_rate"][0][2] is None
    assert h["win_rate"][0][1] + h["win_rate"][1][0] == pytest.approx(1.0)


def test_plots_escape_labels() -> None:
    evil = "<script>alert(1)</script>"
    for svg in (
        interval_plot([(evil, 1.0, 0.5, 1.5, True)], evil),
        heatmap([evil, "b"], [[None, 0.25], [0.75, None]], evil),
        line_chart({evil: [(0, 1), (1, 2)]}, evil, xlabel=evil),
    ):
        assert "<script>" not in svg and "&lt;script&gt;" in svg
        assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_page_escapes_every_name_and_carries_no_script(data) -> None:
    html, plots = render_report(data)
    assert "<script" not in html.lower()
    assert browser.EVIL_NAME not in html and "&lt;b&gt;bold&lt;/b&gt;&amp;co" in html
    assert CSP in html
    assert plots and all("<script" not in p for p in plots.values())


def test_report_folder_in_a_real_browser(url, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    assert main(["report", "--ledger", url, "--html", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    index = out / "index.html"
    files = sorted(p.name for p in (out / "plots").iterdir())
    assert "hostile-ratings.svg" in files and "hostile-winrate.svg" in files
    assert json.loads((out / "report.json").read_text())["tournaments"]
    dom = browser.dump_dom(index.as_uri())
    assert not browser.pwned(dom)
    assert "Pool hostile" in dom and "&lt;b&gt;bold&lt;/b&gt;" in dom
    # Escaping alone keeps it inert: the same page without its CSP still runs nothing.
    bare = tmp_path / "bare.html"
    bare.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", index.read_text())
    )
    dom = browser.dump_dom(bare.as_uri())
    assert not browser.pwned(dom) and "<b>bold</b>" not in dom
    browser.screenshot(index.as_uri(), "report.png", tmp_path, size="1200,2400")


def test_html_of_one_tournament(url, tmp_path: Path) -> None:
    out = tmp_path / "one"
    assert main(["report", "--ledger", url, "--tournament", "tree", "--html", str(out)]) == 0
    html = (out / "index.html").read_text()
    assert "Tournament tree" in html and "Tournament hostile" not in html
    assert "No ratings" in html  # self-play rates no one: said, not an empty table


def test_learner_curves_and_lineage(tmp_path) -> None:
    from arena_core.ledger.tables import LearnerRun, Player

    ledger = Ledger(f"sqlite:///{tmp_path / 'learn.db'}")
    try:
        steps = [{"step": k, "loss": 0.7 - 0.05 * k, "rewards/accuracies": 0.1 * k} for k in (1, 2)]
        with ledger.session() as s:
            s.add(LearnerRun(learner="dpo", metrics={"steps": steps}, pairs=12, status="done"))
            s.add(Player(name="base", agent="transformers"))
            s.add(Player(name="base-dpo-1", agent="transformers", parent="base", learner_run=1))
            s.add(Player(name="base-dpo-2", agent="transformers", parent="base-dpo-1"))
            s.add(Player(name="orphan", agent="transformers", parent="gone"))
            s.commit()
        data = build_overview(ledger)
    finally:
        ledger.close()
    (run,) = data["learner_runs"]
    assert run["player"] == "base-dpo-1" and run["pairs"] == 12
    assert run["curves"]["loss"] == [[s["step"], s["loss"]] for s in steps]
    assert run["curves"]["rewards/accuracies"] == [
        [s["step"], s["rewards/accuracies"]] for s in steps
    ]
    html, plots = render_report(data)
    assert {"learner-loss", "learner-reward-accuracy"} <= set(plots)
    # base > base-dpo-1 > base-dpo-2 nested; a parent not in the ledger is said, not lost
    tree = html[html.index("id=lineage") :]
    assert tree.index("base-dpo-1") < tree.index("base-dpo-2") < tree.index("</ul></li></ul></li>")
    assert "parent gone not in the ledger" in tree
