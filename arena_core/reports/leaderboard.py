"""Leaderboards and judge metrics from the ledger, and their CSV / JSON / Markdown forms."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from arena_core.ledger import Ledger
from arena_core.ratings import outcome
from arena_core.reports.stats import bradley_terry, wilson_interval


@dataclass
class Row:
    rank: int
    player: str
    mu: float
    sigma: float
    conservative: float  # mu - 3 sigma, the TrueSkill sort key
    matches: int
    wins: int
    losses: int
    draws: int
    win_rate: float  # draws count half
    bt: float | None = None
    bt_lower: float | None = None
    bt_upper: float | None = None


def leaderboard(ledger: Ledger, pool: str, *, bt: bool = True, bootstrap: int = 100) -> list[Row]:
    """TrueSkill table sorted by mu - 3 sigma, with the order-free Bradley-Terry fit beside it."""
    ratings = ledger.ratings(pool)
    fits = {}
    if bt:
        outcomes = []
        for match, verdict in ledger.done_with_verdicts(pool=pool):
            res = outcome(match.seats, verdict.winner_seat)
            if res is not None and res[0] != res[1]:
                a, b, w = res
                outcomes.append((a, b, 0.5 if w is None else float(w == a)))
        fits = {r.player: r for r in bradley_terry(outcomes, bootstrap=bootstrap)}
    rows = []
    for r in ratings:
        f = fits.get(r.player)
        rows.append(
            Row(
                rank=0,
                player=r.player,
                mu=r.mu,
                sigma=r.sigma,
                conservative=r.mu - 3 * r.sigma,
                matches=r.matches,
                wins=r.wins,
                losses=r.losses,
                draws=r.draws,
                win_rate=(r.wins + 0.5 * r.draws) / r.matches if r.matches else 0.0,
                bt=f.rating if f else None,
                bt_lower=f.lower if f else None,
                bt_upper=f.upper if f else None,
            )
        )
    rows.sort(key=lambda r: (-r.conservative, r.player))
    for i, r in enumerate(rows, 1):
        r.rank = i
    return rows


@dataclass
class JudgeStats:
    matches: int
    graded: int  # verdicts on items with a known gold answer
    correct: int
    undecided: int
    accuracy: float
    lower: float
    upper: float
    first_seat_wins: float | None  # share of decided two-seat verdicts won by the first speaker


def graded_verdicts(ledger: Ledger, tournament: str) -> list[tuple[Any, Any]]:
    """(match, verdict) pairs the judge metrics count: every node verdict of a match that has
    them (each leaf of a branched debate), else its main verdict."""
    nodes: dict[str, list[Any]] = {}
    for m, v in ledger.done_with_verdicts(tournament=tournament, nodes=True):
        nodes.setdefault(m.id, []).append((m, v))
    out: list[tuple[Any, Any]] = []
    for m, v in ledger.done_with_verdicts(tournament=tournament):
        out.extend(nodes.get(m.id) or [(m, v)])
    return out


def judge_stats(ledger: Ledger, tournament: str) -> JudgeStats:
    """How often the judge sided with the gold answer, with a Wilson 95% interval."""
    pairs = graded_verdicts(ledger, tournament)
    graded = [v for _, v in pairs if v.correct is not None]
    correct = sum(1 for v in graded if v.correct)
    lo, hi = wilson_interval(correct, len(graded))
    firsts = [(m, v) for m, v in pairs if len(m.seats) == 2 and v.winner_seat is not None]
    first = sum(1 for m, v in firsts if v.winner_seat == next(iter(m.seats)))
    return JudgeStats(
        matches=len(pairs),
        graded=len(graded),
        correct=correct,
        undecided=sum(1 for _, v in pairs if v.chosen is None),
        accuracy=correct / len(graded) if graded else 0.0,
        lower=lo,
        upper=hi,
        first_seat_wins=first / len(firsts) if firsts else None,
    )


def judge_accuracy_by_matchup(ledger: Ledger, tournament: str) -> list[dict[str, Any]]:
    """Judge accuracy per unordered pairing (self-play included), with Wilson intervals.

    Overall accuracy mixes strong-vs-weak pairings, where the stronger debater wins whichever side
    it argues; the judge's accuracy between equals is the figure debate research reports.
    """
    groups: dict[tuple[str, ...], list[bool]] = {}
    for m, v in graded_verdicts(ledger, tournament):
        if v.correct is None:
            continue
        groups.setdefault(tuple(sorted(m.seats.values())), []).append(bool(v.correct))
    out = []
    for key, results in sorted(groups.items()):
        lo, hi = wilson_interval(sum(results), len(results))
        out.append(
            {
                "players": list(key),
                "verdicts": len(results),
                "correct": sum(results),
                "accuracy": sum(results) / len(results),
                "lower": lo,
                "upper": hi,
            }
        )
    return out


COLUMNS = (
    "rank",
    "player",
    "mu",
    "sigma",
    "conservative",
    "matches",
    "wins",
    "losses",
    "draws",
    "win_rate",
    "bt",
    "bt_lower",
    "bt_upper",
)
HEADERS = (
    "#",
    "player",
    "mu",
    "sigma",
    "mu-3σ",
    "matches",
    "W",
    "L",
    "D",
    "win rate",
    "BT",
    "BT 95% CI",
    "",
)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def table_cells(rows: Sequence[Row]) -> Iterator[list[str]]:
    for r in rows:
        ci = f"{r.bt_lower:.0f}–{r.bt_upper:.0f}" if r.bt_lower is not None else "-"
        yield [
            str(r.rank),
            r.player,
            f"{r.mu:.2f}",
            f"{r.sigma:.2f}",
            f"{r.conservative:.2f}",
            str(r.matches),
            str(r.wins),
            str(r.losses),
            str(r.draws),
            f"{r.win_rate:.1%}",
            f"{r.bt:.0f}" if r.bt is not None else "-",
            ci,
        ]


def to_markdown(rows: Sequence[Row]) -> str:
    head = list(HEADERS[:-1])
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += [
        "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        for cells in table_cells(rows)
    ]
    return "\n".join(out) + "\n"


def to_csv(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        d = asdict(r)
        w.writerow([_fmt(d[c]) if isinstance(d[c], float) else d[c] for c in COLUMNS])
    return buf.getvalue()


def to_json(rows: Sequence[Row], **extra: Any) -> str:
    return json.dumps({**extra, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"


def export_matches(
    ledger: Ledger, *, tournament: str | None = None, status: str | None = None
) -> Iterator[dict[str, Any]]:
    """One JSON-ready record per match: the match, its item, every turn and the verdict."""
    for m in ledger.matches(tournament=tournament, status=status):
        v = ledger.verdict(m.id)
        yield {
            "id": m.id,
            "tournament": m.tournament,
            "protocol": m.protocol,
            "status": m.status,
            "item": m.item,
            "seats": m.seats,
            "assignment": m.assignment,
            "repetition": m.repetition,
            "attempts": m.attempts,
            "error": m.error,
            "started_at": m.started_at.isoformat() if m.started_at else None,
            "finished_at": m.finished_at.isoformat() if m.finished_at else None,
            "turns": [t.model_dump(exclude={"id", "match_id"}) for t in ledger.turns(m.id)],
            "verdict": v.model_dump(exclude={"match_id"}) if v else None,
        }
