"""`arena report`: judge metrics per tournament, side by side, and quote statistics per player.

Per tournament: judge accuracy with a Wilson 95% interval (every leaf of a branched debate
counts, via `reports.graded_verdicts`), the same with undecided verdicts counted as half right
(so a judge that cannot decide scores chance, not zero), first-speaker and correct- and
incorrect-side win rates, and the calibration of the judge's confidence: Brier score and expected
calibration error of the probability it gave its chosen answer against whether that answer was
gold. Protocols whose verdicts compare free answers rather than argued sides (self-play, duel;
`Protocol.gradable = False`) have no judge accuracy. Per player: quotes made, valid, invalid,
repaired, valid words, overall and split by side (correct / incorrect) and by result (winner /
loser), from the quote checks stored in each speech's meta.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from arena_core.ledger import DONE, Ledger, MatchRow, TurnRow
from arena_core.reports.leaderboard import graded_verdicts, judge_stats
from arena_core.reports.stats import brier_score, expected_calibration_error

if TYPE_CHECKING:
    from arena_core.registry import Registry

QUOTE_KEYS = ("quotes", "valid", "invalid", "repaired", "valid_words")
SPOKEN = ("speech", "answer")  # not scratchpads or unspoken best-of-n candidates


@dataclass
class QuoteStats:
    speeches: int = 0
    quotes: int = 0
    valid: int = 0
    invalid: int = 0
    repaired: int = 0
    valid_words: int = 0

    def add(self, meta: dict[str, Any]) -> None:
        self.speeches += 1
        for k in QUOTE_KEYS:
            setattr(self, k, getattr(self, k) + int(meta.get(k, 0) or 0))

    @property
    def valid_rate(self) -> float | None:
        return self.valid / self.quotes if self.quotes else None


@dataclass
class PlayerQuotes:
    player: str
    overall: QuoteStats = field(default_factory=QuoteStats)
    correct: QuoteStats = field(default_factory=QuoteStats)  # speeches arguing the gold answer
    incorrect: QuoteStats = field(default_factory=QuoteStats)
    winner: QuoteStats = field(default_factory=QuoteStats)  # speeches of the match's winner
    loser: QuoteStats = field(default_factory=QuoteStats)


@dataclass
class TournamentReport:
    tournament: str
    protocol: str
    judge: str
    matches: int
    verdicts: int  # every verdict the judge metrics count (each leaf of a tree)
    gradable: bool
    graded: int = 0
    correct: int = 0
    undecided: int = 0
    accuracy: float | None = None
    lower: float | None = None
    upper: float | None = None
    accuracy_ties_half: float | None = None
    first_speaker_wins: float | None = None
    correct_side_wins: float | None = None  # draws count half
    incorrect_side_wins: float | None = None
    brier: float | None = None
    ece: float | None = None
    mean_confidence: float | None = None
    quotes: list[PlayerQuotes] = field(default_factory=list)


def gradable(ledger: Ledger, tournament: str, registry: Registry | None = None) -> bool:
    """Whether the tournament's verdicts say which argued answer the judge believed."""
    from arena_core.engine import build_protocol

    if registry is None:
        from arena_core.plugins import get_registry

        registry = get_registry()
    try:
        protocol = build_protocol(registry, ledger.tournament(tournament))
    except Exception:  # a protocol no longer installed: its verdicts are still graded as stored
        return True
    return bool(getattr(protocol, "gradable", True))


def _rate(outcomes: list[float]) -> float | None:
    return sum(outcomes) / len(outcomes) if outcomes else None


def quote_stats(ledger: Ledger, tournament: str) -> list[PlayerQuotes]:
    """Quote checks of every speech or answer actually spoken (copies of branched speeches and
    unspoken best-of-n candidates excluded), per player."""
    winners = {m.id: v.winner_seat for m, v in ledger.done_with_verdicts(tournament=tournament)}
    with ledger.session() as s:
        rows = s.exec(
            select(TurnRow, MatchRow)
            .join(MatchRow, TurnRow.match_id == MatchRow.id)
            .where(MatchRow.tournament == tournament, MatchRow.status == DONE)
        ).all()
    players: dict[str, PlayerQuotes] = {}
    for t, m in rows:
        if t.phase not in SPOKEN or "quotes" not in t.meta or "copy_of" in t.meta or not t.player:
            continue
        pq = players.setdefault(t.player, PlayerQuotes(t.player))
        pq.overall.add(t.meta)
        gold = m.item.get("gold")
        argued = m.assignment.get(t.seat)
        if gold is not None and argued is not None:
            (pq.correct if argued == gold else pq.incorrect).add(t.meta)
        won = winners.get(m.id)
        if won is not None:
            (pq.winner if won == t.seat else pq.loser).add(t.meta)
    return sorted(players.values(), key=lambda p: p.player)


def tournament_report(
    ledger: Ledger, tournament: str, registry: Registry | None = None
) -> TournamentReport:
    row = ledger.tournament(tournament)
    judge = str((row.config.get("judge") or {}).get("plugin", "?"))
    pairs = graded_verdicts(ledger, tournament)
    rep = TournamentReport(
        tournament=tournament,
        protocol=row.protocol,
        judge=judge,
        matches=ledger.counts(tournament).get(DONE, 0),
        verdicts=len(pairs),
        gradable=gradable(ledger, tournament, registry),
        quotes=quote_stats(ledger, tournament),
    )
    js = judge_stats(ledger, tournament)
    rep.first_speaker_wins = js.first_seat_wins  # position bias: meaningful for any protocol
    if not rep.gradable:
        return rep
    graded = [(m, v) for m, v in pairs if v.correct is not None]
    rep.graded, rep.correct = js.graded, js.correct
    rep.undecided = sum(1 for _, v in graded if v.chosen is None)
    if graded:
        rep.accuracy, rep.lower, rep.upper = js.accuracy, js.lower, js.upper
        rep.accuracy_ties_half = (js.correct + 0.5 * rep.undecided) / len(graded)
    right: list[float] = []
    wrong: list[float] = []
    for m, v in graded:
        gold = m.item.get("gold")
        for seat, answer in m.assignment.items():
            result = 0.5 if v.chosen is None else float(v.winner_seat == seat)
            (right if answer == gold else wrong).append(result)
    rep.correct_side_wins, rep.incorrect_side_wins = _rate(right), _rate(wrong)
    decided = [(v.probs[v.chosen], int(bool(v.correct))) for _, v in graded if v.chosen]
    if decided:
        probs, outcomes = [min(max(p, 0.0), 1.0) for p, _ in decided], [o for _, o in decided]
        rep.brier = brier_score(probs, outcomes)
        rep.ece = expected_calibration_error(probs, outcomes)
        rep.mean_confidence = sum(probs) / len(probs)
    return rep


# --- output ---------------------------------------------------------------------------------

METRICS = (
    ("protocol", "protocol"),
    ("judge", "judge"),
    ("matches", "matches"),
    ("verdicts", "verdicts counted"),
    ("accuracy", "judge accuracy"),
    ("ci", "95% CI"),
    ("accuracy_ties_half", "accuracy (undecided = ½)"),
    ("undecided", "undecided"),
    ("first_speaker_wins", "first speaker wins"),
    ("correct_side_wins", "correct side wins"),
    ("incorrect_side_wins", "incorrect side wins"),
    ("mean_confidence", "mean confidence"),
    ("brier", "Brier score"),
    ("ece", "ECE"),
)


def _cell(rep: TournamentReport, key: str) -> str:
    if key == "ci":
        return "-" if rep.lower is None else f"{rep.lower:.1%}–{rep.upper:.1%}"
    if key == "accuracy" and rep.accuracy is not None:
        return f"{rep.accuracy:.1%} ({rep.correct}/{rep.graded})"
    if not rep.gradable and key in ("accuracy", "undecided"):
        return "n/a (answers compared)" if key == "accuracy" else "-"
    value = getattr(rep, key)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if key in ("brier", "ece") else f"{value:.1%}"
    return str(value)


def metric_rows(reports: Sequence[TournamentReport]) -> list[list[str]]:
    """Metric name, then one cell per tournament: the side-by-side table."""
    return [[label, *(_cell(r, key) for r in reports)] for key, label in METRICS]


def quote_rows(rep: TournamentReport) -> list[list[str]]:
    out = []
    for pq in rep.quotes:
        o = pq.overall
        rate = "-" if o.valid_rate is None else f"{o.valid_rate:.1%}"

        def split(a: QuoteStats, b: QuoteStats) -> str:
            return f"{a.valid}/{a.quotes} · {b.valid}/{b.quotes}"

        out.append(
            [
                pq.player,
                str(o.speeches),
                str(o.quotes),
                str(o.valid),
                rate,
                str(o.invalid),
                str(o.repaired),
                str(o.valid_words),
                split(pq.correct, pq.incorrect),
                split(pq.winner, pq.loser),
            ]
        )
    return out


QUOTE_HEADERS = (
    "player",
    "speeches",
    "quotes",
    "valid",
    "valid %",
    "invalid",
    "repaired",
    "valid words",
    "valid/quotes correct · incorrect side",
    "winner · loser",
)


def to_markdown(reports: Sequence[TournamentReport]) -> str:
    def table(head: Sequence[str], rows: list[list[str]]) -> list[str]:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]

    out = table(["metric", *(r.tournament for r in reports)], metric_rows(reports))
    for r in reports:
        if r.quotes:
            out += ["", f"Quotes per player — {r.tournament}", ""]
            out += table(QUOTE_HEADERS, quote_rows(r))
    return "\n".join(out) + "\n"


def to_json(reports: Sequence[TournamentReport]) -> str:
    def one(r: TournamentReport) -> dict[str, Any]:
        d = asdict(r)
        for pq in d["quotes"]:
            o = pq["overall"]
            o["valid_rate"] = o["valid"] / o["quotes"] if o["quotes"] else None
        return d

    return json.dumps({"tournaments": [one(r) for r in reports]}, indent=2) + "\n"
