"""The static HTML report: one folder with index.html (plots inline), each plot as an .svg file
and report.json, readable offline and safe to mail or publish.

Every name and every piece of ledger text passes through `esc`; the page carries no script and a
Content-Security-Policy that forbids scripts, so even a missed escape could not run one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from arena_core.reports import svg
from arena_core.reports.svg import esc

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"

CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 48px;
color:#222;line-height:1.4}
h1{margin-top:24px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}
h3{margin-top:28px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border-bottom:1px solid #e5e5e5;padding:4px 10px;text-align:right;white-space:nowrap}
th{background:#f6f6f6}td.l,th.l{text-align:left}
.warn{color:#b34700}.muted{color:#777}.ok{color:#2a7a2a}.bad{color:#b00}
.note{background:#fff8e6;border-left:4px solid #e6a100;padding:6px 10px;margin:8px 0}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plots svg{max-width:100%;height:auto}
nav a{margin-right:14px}code{background:#f3f3f3;padding:1px 4px}
ul.tree{list-style:none;padding-left:18px}ul.tree li{margin:2px 0}
.turn{border:1px solid #ddd;border-radius:6px;margin:10px 0;padding:8px 12px}
.turn .who{font-weight:bold}.turn pre{white-space:pre-wrap;font-family:inherit;margin:6px 0}
.turn.scratchpad{background:#f4f4fb;border-style:dashed}.turn.question{background:#eef7ee}
.tag{display:inline-block;font-size:12px;border-radius:4px;padding:0 6px;margin-left:6px;
background:#eee}
mark.verified{background:#c9f0c9}mark.repaired{background:#fff0a8}
mark.fabricated{background:#ffc9c9;text-decoration:line-through}mark.spoofed{background:#e0c9ff}
.node{border-left:2px solid #ccc;margin-left:14px;padding-left:10px}
form.filters label{margin-right:10px}
"""


def page(title: str, body: str, *, nav: str = "") -> str:
    """A whole HTML document around `body` (already escaped markup)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"{nav}{body}</body></html>"
    )


def table(head: Sequence[str], rows: Iterable[Sequence[str]], *, left: Sequence[int] = (0,)) -> str:
    """Cells are markup: escape text before passing it (`esc`), or pass built markup."""
    th = "".join(
        f'<th class="{"l" if i in left else ""}">{esc(h)}</th>' for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"l" if i in left else ""}">{c}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def prop(d: dict[str, Any] | None) -> str:
    """'54.2% [51.0–57.3%] (n=960)' for a `proportion` dict."""
    if not d or not d.get("n"):
        return '<span class="muted">–</span>'
    return (
        f"{d['rate']:.1%} <span class=muted>[{d['lower']:.1%}–{d['upper']:.1%}] "
        f"({d['k']}/{d['n']})</span>"
    )


def num(v: float | None, f: str = "{:.3f}") -> str:
    return "–" if v is None else f.format(v)


def slug(text: str) -> str:
    """A file-name-safe form of a name (plots/…svg); never a path."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-")[:60] or "x"


# --- sections ------------------------------------------------------------------------------


class Plots:
    """Collects the SVGs a page shows so the report folder can also hold them as files."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def add(self, name: str, content: str) -> str:
        if not content:
            return ""
        base, k = slug(name), 1
        key = base
        while key in self.files:
            k += 1
            key = f"{base}-{k}"
        self.files[key] = content
        return f'<figure id="plot-{esc(key)}">{content}</figure>'


def leaderboard_section(pool: dict[str, Any], plots: Plots) -> str:
    rows = pool["leaderboard"]
    name = pool["pool"]
    if not rows:
        return (
            f'<h2 id="pool-{esc(slug(name))}">Pool {esc(name)}</h2><p class=muted>No ratings: '
            "no finished two-player match between different players (self-play rates no one)."
            "</p>"
        )
    cells = []
    for r in rows:
        ci = f"{r['bt_lower']:.0f}–{r['bt_upper']:.0f}" if r["bt_lower"] is not None else "–"
        warn = "; ".join(r["warnings"])
        cells.append(
            [
                str(r["rank"]),
                "–" if r["ci_rank"] is None else str(r["ci_rank"]),
                esc(r["player"]),
                "–" if r["bt"] is None else f"{r['bt']:.0f}",
                ci + (f' <span class="warn" title="{esc(warn)}">⚠</span>' if warn else ""),
                f"{r['mu']:.2f} ± {r['sigma']:.2f}",
                f"{r['conservative']:.2f}",
                str(r["matches"]),
                f"{r['wins']}/{r['losses']}/{r['draws']}",
                pct(r["win_rate"]),
            ]
        )
    out = [
        f'<h2 id="pool-{esc(slug(name))}">Pool {esc(name)}</h2>',
        "<p class=muted>Tournaments: "
        + ", ".join(f"<code>{esc(t)}</code>" for t in pool["tournaments"])
        + ". Ranked by the Bradley-Terry fit (order-free; 95% bootstrap interval). "
        "<em>CI rank</em> is 1 + the players whose interval lies wholly above this one's. "
        "TrueSkill (mu ± sigma, and mu − 3 sigma, the live sort key) depends on match order.</p>",
        table(
            [
                "#",
                "CI rank",
                "player",
                "BT",
                "BT 95% CI",
                "TrueSkill",
                "mu−3σ",
                "matches",
                "W/L/D",
                "win rate",
            ],
            cells,
            left=(2,),
        ),
    ]
    flagged = [r for r in rows if r["warnings"]]
    if flagged:
        out.append(
            '<div class="note">'
            + "<br>".join(
                f"<b>{esc(r['player'])}</b>: {esc('; '.join(r['warnings']))}" for r in flagged
            )
            + "</div>"
        )
    points = [
        (r["player"], r["bt"], r["bt_lower"], r["bt_upper"], bool(r["warnings"]))
        for r in rows
        if r["bt"] is not None
    ]
    h2h = pool["head_to_head"]
    figs = [
        plots.add(
            f"{name}-ratings",
            svg.interval_plot(
                points, f"Bradley-Terry rating, 95% CI — {name}", "rating (Elo scale)"
            ),
        ),
        plots.add(
            f"{name}-winrate",
            svg.heatmap(h2h["players"], h2h["win_rate"], "Win rate of row vs column"),
        ),
        plots.add(
            f"{name}-games",
            svg.heatmap(
                h2h["players"],
                [[g or None for g in row] for row in h2h["games"]],
                "Matches played",
                fmt="{:.0f}",
                scale_max=None,
            ),
        ),
        plots.add(
            f"{name}-history",
            svg.line_chart(
                {p: [(x, mu) for x, mu, _ in pts] for p, pts in pool["history"].items()},
                "TrueSkill mu over the pool's finished matches",
                xlabel="match (finish order)",
                ylabel="mu",
            ),
        ),
    ]
    out.append('<div class="plots">' + "".join(figs) + "</div>")
    return "".join(out)


def tournament_section(t: dict[str, Any], plots: Plots) -> str:
    name = t["tournament"]
    counts = t["counts"]
    out = [
        f'<h2 id="t-{esc(slug(name))}">Tournament {esc(name)}</h2>',
        f"<p>protocol <code>{esc(t['protocol'])}</code>, judge <code>{esc(t['judge'])}</code>, "
        f"pool <code>{esc(t['pool'])}</code>; matches: {counts.get('done', 0)} done, "
        f"{counts.get('failed', 0)} failed, {counts.get('pending', 0)} pending; "
        f"{t['verdicts']} verdicts counted.</p>",
    ]
    acc = (
        {
            "k": t["correct"],
            "n": t["graded"],
            "rate": t["accuracy"],
            "lower": t["lower"],
            "upper": t["upper"],
        }
        if t["accuracy"] is not None
        else None
    )
    rows = [
        ["judge accuracy", prop(acc) if t["gradable"] else "n/a (answers compared, not argued)"],
        ["accuracy, undecided = ½", pct(t["accuracy_ties_half"])],
        ["undecided verdicts", str(t["undecided"])],
        ["first speaker wins", prop(t["first_speaker"])],
        ["correct side wins", pct(t["correct_side_wins"])],
        ["incorrect side wins", pct(t["incorrect_side_wins"])],
        ["mean confidence", pct(t["mean_confidence"])],
        ["Brier score", num(t["brier"])],
        ["ECE", num(t["ece"])],
    ]
    out.append(table(["metric", "value"], rows))
    if t["by_matchup"]:
        out.append("<h3>Judge accuracy per matchup</h3>")
        out.append(
            table(
                ["players", "accuracy", "95% CI", "verdicts"],
                [
                    [
                        esc(" vs ".join(g["players"])),
                        pct(g["accuracy"]),
                        f"{g['lower']:.1%}–{g['upper']:.1%}",
                        str(g["verdicts"]),
                    ]
                    for g in t["by_matchup"]
                ],
            )
        )
    figs = []
    if t["calibration"]:
        bins = t["calibration"]
        figs.append(
            plots.add(
                f"{name}-reliability",
                svg.line_chart(
                    {"judge": [(b["confidence"], b["rate"]) for b in bins]},
                    f"Reliability — Brier {num(t['brier'])}, ECE {num(t['ece'])}",
                    xlabel="confidence in the chosen answer (bin mean)",
                    ylabel="share correct",
                    y_range=(0.0, 1.0),
                    diagonal=True,
                    points=True,
                ),
            )
        )
        out.append("<h3>Calibration</h3>")
        out.append(
            table(
                ["confidence bin", "mean confidence", "share correct", "verdicts"],
                [
                    [
                        f"{b['lower_edge']:.1f}–{b['upper_edge']:.1f}",
                        pct(b["confidence"]),
                        prop(b),
                        str(b["n"]),
                    ]
                    for b in bins
                ],
            )
        )
    if t["position"]:
        p = t["position"]
        out.append("<h3>Positional bias</h3>")
        out.append(
            table(
                ["", "share"],
                [
                    ["judge chose the option shown first (A)", prop(p["chose_first"])],
                    ["accuracy when gold is shown first", prop(p["gold_first"])],
                    ["accuracy when gold is shown second", prop(p["gold_second"])],
                ],
            )
        )
    if figs:
        out.append('<div class="plots">' + "".join(figs) + "</div>")
    if t["quotes"]:
        out.append("<h3>Quotes per player</h3>")
        qrows = []
        for q in t["quotes"]:
            o = q["overall"]
            qrows.append(
                [
                    esc(q["player"]),
                    str(o["speeches"]),
                    str(o["quotes"]),
                    str(o["valid"]),
                    pct(o["valid_rate"]),
                    str(o["repaired"]),
                    str(o["invalid"]),
                    str(o["valid_words"]),
                    f"{q['correct']['valid']}/{q['correct']['quotes']} · "
                    f"{q['incorrect']['valid']}/{q['incorrect']['quotes']}",
                    f"{q['winner']['valid']}/{q['winner']['quotes']} · "
                    f"{q['loser']['valid']}/{q['loser']['quotes']}",
                ]
            )
        out.append(
            table(
                [
                    "player",
                    "speeches",
                    "quotes",
                    "verified",
                    "verified %",
                    "repaired",
                    "fabricated",
                    "verified words",
                    "verified/quotes: correct · incorrect side",
                    "winner · loser",
                ],
                qrows,
            )
        )
    return "".join(out)


def judges_section(tournaments: Sequence[dict[str, Any]], plots: Plots) -> str:
    """Judge accuracy of every tournament, labelled with its protocol and judge: the comparison
    debate research makes (debate vs consultancy vs the judge alone, one judge or several)."""
    graded = [t for t in tournaments if t["gradable"] and t["graded"]]
    if not graded:
        return ""
    rows = [
        [
            esc(t["tournament"]),
            esc(t["protocol"]),
            esc(t["judge"]),
            prop(
                {
                    "k": t["correct"],
                    "n": t["graded"],
                    "rate": t["accuracy"],
                    "lower": t["lower"],
                    "upper": t["upper"],
                }
            ),
            prop(t["first_speaker"]),
        ]
        for t in graded
    ]
    points = [
        (
            f"{t['protocol']} · {t['tournament']}",
            t["accuracy"],
            t["lower"],
            t["upper"],
            t["graded"] < 30,
        )
        for t in graded
    ]
    return (
        "<h2 id=judges>Judge accuracy by protocol</h2>"
        + table(
            ["tournament", "protocol", "judge", "accuracy (95% CI)", "first speaker wins"],
            rows,
            left=(0, 1, 2),
        )
        + plots.add(
            "judge-accuracy",
            svg.interval_plot(
                points,
                "Judge accuracy, 95% Wilson CI (orange: n < 30; dashed: chance)",
                "accuracy",
                x_range=(0.0, 1.0),
                reference=0.5,
            ),
        )
    )


def learner_section(runs: Sequence[dict[str, Any]], plots: Plots) -> str:
    if not runs:
        return "<h2 id=learners>Learner runs</h2><p class=muted>No learner run in this ledger.</p>"
    out = ["<h2 id=learners>Learner runs</h2>"]
    out.append(
        table(
            ["run", "learner", "status", "pairs", "wall time", "player", "checkpoint"],
            [
                [
                    str(r["id"]),
                    esc(r["learner"]),
                    esc(r["status"]),
                    str(r["pairs"]),
                    "–" if r["wall_time"] is None else f"{r['wall_time']:.1f}s",
                    esc(r["player"] or "–"),
                    esc(r["checkpoint"] or "–"),
                ]
                for r in runs
            ],
            left=(1, 2, 5, 6),
        )
    )
    loss = {f"run {r['id']}": r["curves"].get("loss", []) for r in runs}
    acc = {f"run {r['id']}": r["curves"].get("rewards/accuracies", []) for r in runs}
    figs = [
        plots.add("learner-loss", svg.line_chart(loss, "Training loss", xlabel="step")),
        plots.add(
            "learner-reward-accuracy",
            svg.line_chart(
                acc, "Reward accuracy (chosen above rejected)", xlabel="step", y_range=(0, 1)
            ),
        ),
    ]
    out.append('<div class="plots">' + "".join(figs) + "</div>")
    return "".join(out)


def lineage_html(players: Sequence[dict[str, Any]]) -> str:
    """Players as a tree: children (trained from a parent) nested under it."""
    names = {p["player"] for p in players}
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for p in players:
        parent = p["parent"] if p["parent"] in names else None
        kids.setdefault(parent, []).append(p)

    def sub(parent: str | None, seen: frozenset[str]) -> str:
        items = []
        for p in kids.get(parent, []):
            if p["player"] in seen:
                continue
            run = f' <span class="tag">run {p["learner_run"]}</span>' if p["learner_run"] else ""
            orphan = (
                f' <span class="muted">(parent {esc(p["parent"])} not in the ledger)</span>'
                if parent is None and p["parent"]
                else ""
            )
            items.append(
                f"<li><b>{esc(p['player'])}</b> <span class=muted>{esc(p['agent'])}</span>"
                f"{run}{orphan}{sub(p['player'], seen | {p['player']})}</li>"
            )
        return f'<ul class="tree">{"".join(items)}</ul>' if items else ""

    return sub(None, frozenset())


def render_report(data: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The page and its plots (name -> SVG)."""
    plots = Plots()
    nav = (
        "<nav>"
        + "".join(
            f'<a href="#pool-{esc(slug(p["pool"]))}">pool {esc(p["pool"])}</a>'
            for p in data["pools"]
        )
        + "".join(
            f'<a href="#t-{esc(slug(t["tournament"]))}">{esc(t["tournament"])}</a>'
            for t in data["tournaments"]
        )
        + '<a href="#judges">judges</a><a href="#learners">learners</a>'
        '<a href="#lineage">lineage</a></nav>'
    )
    body = [
        "<h1>Arena report</h1>",
        f"<p class=muted>Ledger <code>{esc(data['ledger'])}</code>, generated "
        f"{esc(data['generated_at'])}. Intervals are 95%: Wilson for proportions, bootstrap for "
        "ratings.</p>",
        nav,
    ]
    body.append(judges_section(data["tournaments"], plots))
    body += [leaderboard_section(p, plots) for p in data["pools"]]
    body += [tournament_section(t, plots) for t in data["tournaments"]]
    body.append(learner_section(data["learner_runs"], plots))
    body.append("<h2 id=lineage>Lineage of players</h2>" + lineage_html(data["lineage"]))
    return page("Arena report", "".join(body)), plots.files


def write_report(data: dict[str, Any], out_dir: str | Path) -> Path:
    """index.html, plots/*.svg and report.json into `out_dir` (created); returns index.html."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    html, files = render_report(data)
    for name, content in files.items():
        (out / "plots" / f"{name}.svg").write_text(content, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
