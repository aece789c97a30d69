"""TrueSkill ratings per pool: live updates as matches finish, and a recompute from the ledger.

TrueSkill depends on match order, so both paths replay matches in the ledger's finish order
(`finished_seq`): the live ratings always equal a recompute. The order-free Bradley-Terry fit that
the leaderboard also shows lives in `stats.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import trueskill

from arena_core.ledger import Ledger, Rating, now
from arena_core.trueskill1v1 import rate_1vs1


@dataclass
class PlayerRating:
    mu: float
    sigma: float
    matches: int = 0
    wins: int = 0
    losses: int = 0
    draws: int = 0


@dataclass
class RatingBook:
    """The ratings of one pool, held in memory by the single writer that updates them."""

    pool: str
    env: trueskill.TrueSkill
    players: dict[str, PlayerRating] = field(default_factory=dict)

    @classmethod
    def create(cls, pool: str, settings: dict[str, Any] | None = None) -> RatingBook:
        s = settings or {}
        env = trueskill.TrueSkill(
            mu=s.get("mu", 25.0),
            sigma=s.get("sigma", 25.0 / 3),
            beta=s.get("beta", 25.0 / 6),
            tau=s.get("tau", 25.0 / 300),
            draw_probability=s.get("draw_probability", 0.1),
        )
        return cls(pool=pool, env=env)

    def get(self, player: str) -> PlayerRating:
        if player not in self.players:
            self.players[player] = PlayerRating(self.env.mu, self.env.sigma)
        return self.players[player]

    def update(self, a: str, b: str, winner: str | None) -> tuple[str, str] | None:
        """Rate one two-player result (`winner` is a, b or None for a draw).

        Self-play (a == b) changes nothing: a player cannot gain skill against itself.
        """
        if a == b:
            return None
        ra, rb = self.get(a), self.get(b)
        ta, tb = (ra.mu, ra.sigma), (rb.mu, rb.sigma)
        if winner is None:
            ta, tb = rate_1vs1(self.env, ta, tb, drawn=True)
            ra.draws += 1
            rb.draws += 1
        elif winner == a:
            ta, tb = rate_1vs1(self.env, ta, tb)
            ra.wins += 1
            rb.losses += 1
        else:
            tb, ta = rate_1vs1(self.env, tb, ta)
            rb.wins += 1
            ra.losses += 1
        (ra.mu, ra.sigma), (rb.mu, rb.sigma) = ta, tb
        ra.matches += 1
        rb.matches += 1
        return a, b

    def rows(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        keys = self.players if names is None else names
        t = now()
        return [
            {
                "pool": self.pool,
                "player": n,
                "mu": r.mu,
                "sigma": r.sigma,
                "matches": r.matches,
                "wins": r.wins,
                "losses": r.losses,
                "draws": r.draws,
                "updated_at": t,
            }
            for n in keys
            for r in (self.players[n],)
        ]

    @classmethod
    def load(cls, ledger: Ledger, pool: str, settings: dict[str, Any] | None = None) -> RatingBook:
        book = cls.create(pool, settings)
        for row in ledger.ratings(pool):
            book.players[row.player] = PlayerRating(
                row.mu, row.sigma, row.matches, row.wins, row.losses, row.draws
            )
        return book


def outcome(seats: dict[str, str], winner_seat: str | None) -> tuple[str, str, str | None] | None:
    """(player a, player b, winning player or None) for a two-seat match; None otherwise."""
    if len(seats) != 2:
        return None
    a, b = seats.values()
    return a, b, seats.get(winner_seat) if winner_seat else None


def recompute(
    ledger: Ledger, pool: str, settings: dict[str, Any] | None = None, *, write: bool = True
) -> RatingBook:
    """Replay every finished match of the pool in finish order; optionally replace stored rows."""
    book = RatingBook.create(pool, settings)
    for seats, winner_seat in ledger.outcomes(pool):
        res = outcome(seats, winner_seat)
        if res is not None:
            book.update(*res)
    if write:
        table = Rating.__table__
        with ledger.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.pool == pool))
            if book.players:
                conn.execute(table.insert(), book.rows())
    return book


def pool_settings(ledger: Ledger, pool: str) -> dict[str, Any]:
    """The [ratings] settings stored with the pool's first tournament."""
    for t in ledger.tournaments():
        if t.pool == pool:
            return dict(t.config.get("ratings") or {})
    return {}
