"""Everything the HTML report and the viewer show, as one JSON-ready dict (`arena report --format
json` prints it).

Per rating pool: the leaderboard ranked by the order-free Bradley-Terry fit with bootstrap 95%
intervals (TrueSkill beside it, since it depends on match order), a warning where an interval
says little (few matches, a perfect record, no bootstrap spread), the head-to-head win-rate and
match-count matrices, and each player's TrueSkill mean replayed over the pool's finish order.
Per tournament: the judge metrics of `reports.tournament` with per-matchup accuracy, the binned
reliability of the judge's confidence, positional bias (does the judge favour the option shown
first, and is it more accurate when gold is shown first?), and quote statistics per player.
Across the ledger: learner runs with their logged step metrics, and the lineage of players.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from arena_core.ledger import Ledger
from arena_core.ledger.tables import LearnerRun, Player
from arena_core.ratings import RatingBook, outcome, pool_settings
from arena_core.reports.leaderboard import (
    Row,
    graded_verdicts,
    judge_accuracy_by_matchup,
    leaderboard,
)
from arena_core.reports.stats import wilson_interval
from arena_core.reports.tournament import TournamentReport, tournament_report

FEW_MATCHES = 10  # below this a player's interval is flagged as resting on too few matches
HISTORY_POINTS = 200  # rating-history samples kept per player (the plot needs no more)
CALIBRATION_BINS = 10
STEP_KEYS = ("loss", "rewards/accuracies", "rewards/margins", "eval_loss")


def proportion(k: int, n: int) -> dict[str, Any]:
    """k of n with its rate and Wilson 95% interval (None rate when n is 0)."""
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "lower": lo, "upper": hi}


def safe_url(url: str) -> str:
    """The ledger URL without a password: the report may be mailed or published."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


# --- pools ---------------------------------------------------------------------------------------


def interval_warnings(row: Row) -> list[str]:
    """Why a player's Bradley-Terry interval should not be read as a measurement."""
    out = []
    decided = row.wins + row.losses
    if row.matches < FEW_MATCHES:
        out.append(f"too few matches ({row.matches}) for a meaningful interval")
    if decided and row.losses == 0:
        out.append("undefeated: the rating is bounded only by the fit's prior")
    elif decided and row.wins == 0:
        out.append("winless: the rating is bounded only by the fit's prior")
    if row.bt is None:
        out.append("no decided two-player match: no Bradley-Terry rating")
    elif row.bt_upper is not None and row.bt_lower is not None and row.bt_upper - row.bt_lower < 1:
        out.append("the bootstrap interval has no spread (every resample gave the same result)")
    return out


def pool_leaderboard(ledger: Ledger, pool: str, bootstrap: int = 200) -> list[dict[str, Any]]:
    """Rows ranked by Bradley-Terry rating, with the CI-aware rank (1 + players whose lower bound
    is above this one's upper bound) and the TrueSkill figures beside them."""
    rows = leaderboard(ledger, pool, bootstrap=bootstrap)
    rows.sort(key=lambda r: (r.bt is None, -(r.bt or 0.0), -r.conservative, r.player))
    out = []
    for i, r in enumerate(rows, 1):
        d = asdict(r)
        d["trueskill_rank"] = d.pop("rank")
        d["rank"] = i
        d["ci_rank"] = (
            1 + sum(1 for o in rows if o.bt_lower is not None and o.bt_lower > r.bt_upper)
            if r.bt_upper is not None
            else None
        )
        d["warnings"] = interval_warnings(r)
        out.append(d)
    return out


def head_to_head(ledger: Ledger, pool: str, players: Sequence[str]) -> dict[str, Any]:
    """wins[i][j]: matches i won against j (draws half); games[i][j]: matches i and j played."""
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    wins = [[0.0] * n for _ in range(n)]
    games = [[0] * n for _ in range(n)]
    for m, v in ledger.done_with_verdicts(pool=pool):
        res = outcome(m.seats, v.winner_seat)
        if res is None or res[0] == res[1] or res[0] not in index or res[1] not in index:
            continue
        a, b, w = index[res[0]], index[res[1]], res[2]
        games[a][b] += 1
        games[b][a] += 1
        if w is None:
            wins[a][b] += 0.5
            wins[b][a] += 0.5
        else:
            wins[index[w]][b if index[w] == a else a] += 1
    rate = [[wins[i][j] / games[i][j] if games[i][j] else None for j in range(n)] for i in range(n)]
    return {"players": list(players), "wins": wins, "games": games, "win_rate": rate}


def rating_history(ledger: Ledger, pool: str) -> dict[str, list[list[float]]]:
    """Each player's TrueSkill (mu, sigma) after each of its matches, x = the match's position in
    the pool's finish order; thinned to at most HISTORY_POINTS per player, the last one kept."""
    book = RatingBook.create(pool, pool_settings(ledger, pool))
    series: dict[str, list[list[float]]] = {}
    k = 0
    for m, v in ledger.done_with_verdicts(pool=pool):
        res = outcome(m.seats, v.winner_seat)
        if res is None:
            continue
        k += 1
        if book.update(*res) is None:
            continue
        for p in {res[0], res[1]}:
            r = book.get(p)
            series.setdefault(p, []).append([k, round(r.mu, 4), round(r.sigma, 4)])
    for p, pts in series.items():
        if len(pts) > HISTORY_POINTS:
            step = len(pts) / HISTORY_POINTS
            series[p] = [pts[int(i * step)] for i in range(HISTORY_POINTS - 1)] + [pts[-1]]
    return dict(sorted(series.items()))


def pool_overview(ledger: Ledger, pool: str, tournaments: Sequence[str]) -> dict[str, Any]:
    rows = pool_leaderboard(ledger, pool)
    return {
        "pool": pool,
        "tournaments": list(tournaments),
        "leaderboard": rows,
        "head_to_head": head_to_head(ledger, pool, [r["player"] for r in rows]),
        "history": rating_history(ledger, pool),
    }


# --- tournaments -----------------------------------------------------------------------------


def calibration_bins(pairs: Sequence[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Reliability diagram data: the judge's probability for its chosen answer, binned, against
    how often that answer was gold (with a Wilson interval per bin)."""
    bins: list[list[tuple[float, int]]] = [[] for _ in range(CALIBRATION_BINS)]
    for _, v in pairs:
        if v.correct is None or v.chosen is None or v.chosen not in v.probs:
            continue
        p = min(max(float(v.probs[v.chosen]), 0.0), 1.0)
        bins[min(int(p * CALIBRATION_BINS), CALIBRATION_BINS - 1)].append((p, int(bool(v.correct))))
    out = []
    for i, b in enumerate(bins):
        if not b:
            continue
        right = sum(o for _, o in b)
        out.append(
            {
                "lower_edge": i / CALIBRATION_BINS,
                "upper_edge": (i + 1) / CALIBRATION_BINS,
                "confidence": sum(p for p, _ in b) / len(b),
                **proportion(right, len(b)),
            }
        )
    return out


def position_bias(pairs: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
    """How often the judge picked the option shown first (A: the first seat's answer), and its
    accuracy when gold was shown first versus second. An unbiased judge picks A about half the
    time on a balanced schedule and is equally accurate either way."""
    decided = [(m, v) for m, v in pairs if v.chosen is not None]
    chose_first = sum(1 for _, v in decided if v.chosen == "A")
    by_gold: dict[str, list[bool]] = {"gold_first": [], "gold_second": []}
    for m, v in pairs:
        gold = m.item.get("gold")
        seats = list(m.assignment.items())
        if v.correct is None or gold is None or not seats:
            continue
        key = "gold_first" if seats[0][1] == gold else "gold_second"
        by_gold[key].append(bool(v.correct))
    return {
        "chose_first": proportion(chose_first, len(decided)),
        **{k: proportion(sum(r), len(r)) for k, r in by_gold.items()},
    }


def first_speaker(pairs: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
    """Share of decided two-seat verdicts the first speaker won, with its interval."""
    firsts = [(m, v) for m, v in pairs if len(m.seats) == 2 and v.winner_seat is not None]
    won = sum(1 for m, v in firsts if v.winner_seat == next(iter(m.seats)))
    return proportion(won, len(firsts))


def tournament_overview(ledger: Ledger, name: str) -> dict[str, Any]:
    row = ledger.tournament(name)
    rep: TournamentReport = tournament_report(ledger, name)
    pairs = graded_verdicts(ledger, name)
    d = asdict(rep)
    for pq in d["quotes"]:
        o = pq["overall"]
        o["valid_rate"] = o["valid"] / o["quotes"] if o["quotes"] else None
    d.update(
        pool=row.pool,
        counts=ledger.counts(name),
        first_speaker=first_speaker(pairs),
        by_matchup=judge_accuracy_by_matchup(ledger, name) if rep.gradable else [],
        calibration=calibration_bins(pairs) if rep.gradable else [],
        position=position_bias(pairs) if rep.gradable else None,
    )
    return d


# --- learners --------------------------------------------------------------------------------


def learner_runs(ledger: Ledger) -> list[dict[str, Any]]:
    """Each run with its logged curves (step -> loss, reward accuracy ...) and summary figures."""
    from sqlmodel import select

    with ledger.session() as s:
        runs = list(s.exec(select(LearnerRun).order_by(LearnerRun.id)))
        players = list(s.exec(select(Player).where(Player.learner_run.is_not(None))))
    made = {p.learner_run: p.name for p in players}
    out = []
    for r in runs:
        steps = [st for st in (r.metrics or {}).get("steps", []) if isinstance(st, dict)]
        curves: dict[str, list[list[float]]] = {}
        for i, st in enumerate(steps):
            x = st.get("step", i + 1)
            for key in STEP_KEYS:
                if isinstance(st.get(key), int | float):
                    curves.setdefault(key, []).append([x, float(st[key])])
        out.append(
            {
                "id": r.id,
                "learner": r.learner,
                "status": r.status,
                "pairs": r.pairs,
                "wall_time": r.wall_time,
                "checkpoint": r.checkpoint,
                "player": made.get(r.id),
                "curves": curves,
                "before": (r.metrics or {}).get("before"),
                "after": (r.metrics or {}).get("after"),
                "error": (r.metrics or {}).get("error"),
            }
        )
    return out


def lineage(ledger: Ledger) -> list[dict[str, Any]]:
    """Every player with its parent and the learner run that made it (roots have no parent)."""
    from sqlmodel import select

    with ledger.session() as s:
        players = list(s.exec(select(Player).order_by(Player.created_at, Player.name)))
    return [
        {"player": p.name, "agent": p.agent, "parent": p.parent, "learner_run": p.learner_run}
        for p in players
    ]


# --- all of it -------------------------------------------------------------------------------


def build_overview(ledger: Ledger, tournaments: Sequence[str] | None = None) -> dict[str, Any]:
    """The whole report. With `tournaments`, only those and the pools they count in."""
    rows = ledger.tournaments()
    names = list(tournaments) if tournaments else [t.name for t in rows]
    for n in names:
        ledger.tournament(n)  # an unknown name is a UsageError with a suggestion
    by_pool: dict[str, list[str]] = {}
    for t in rows:
        by_pool.setdefault(t.pool, []).append(t.name)
    wanted = {ledger.tournament(n).pool for n in names}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ledger": safe_url(ledger.url),
        "pools": [pool_overview(ledger, p, ts) for p, ts in by_pool.items() if p in wanted],
        "tournaments": [tournament_overview(ledger, n) for n in names],
        "learner_runs": learner_runs(ledger),
        "lineage": lineage(ledger),
    }
