"""The ledger's tables: tournament, player, match, turn, verdict, rating, learner run and judge
(SQLModel).

Only portable column types, so SQLite and Postgres share one schema; alembic's scripts in
`migrations/` upgrade older ledgers to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


def now() -> datetime:
    return datetime.now(UTC)


class Tournament(SQLModel, table=True):
    name: str = Field(primary_key=True)
    protocol: str
    pool: str  # the rating pool its matches count in
    config_hash: str
    config: dict[str, Any] = Field(sa_column=Column(JSON))
    source: str = ""  # the config file as written
    created_at: datetime = Field(default_factory=now)


class Player(SQLModel, table=True):
    name: str = Field(primary_key=True)
    agent: str
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    parent: str | None = None  # lineage: the player this one was trained from
    learner_run: int | None = None
    created_at: datetime = Field(default_factory=now)


class MatchRow(SQLModel, table=True):
    __tablename__ = "match"
    __table_args__ = (
        # Serves `pending` and `claim`: the next pending matches of a tournament in schedule order.
        Index("ix_match_claim", "tournament", "status", "order_key"),
        Index("ix_match_finished_seq", "finished_seq"),
    )

    id: str = Field(primary_key=True)  # deterministic hash, see schedule.match_id
    tournament: str = Field(foreign_key="tournament.name")
    protocol: str
    item_id: str
    # The item is stored once in `item` (by content hash) and referenced here; a row read through
    # the ORM or `Ledger` gets `item` filled from it (store._fill_item, store.claimed_rows), so
    # `show` and exports need no dataset. Ledgers before revision 0003 kept a copy in `item` itself.
    item: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    item_key: str | None = None
    seats: dict[str, str] = Field(sa_column=Column(JSON))  # seat -> player
    assignment: dict[str, int] = Field(sa_column=Column(JSON))  # seat -> answer index argued
    variant: int = 0
    repetition: int = 0
    order_key: int = 0  # position in the (seeded) schedule
    status: str = Field(default=PENDING)
    attempts: int = 0
    error: str | None = None
    traceback: str | None = None
    worker: str | None = None  # who claimed (status running) or wrote it
    created_at: datetime = Field(default_factory=now)
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None  # a running match whose heartbeat is stale goes back
    started_at: datetime | None = None
    finished_at: datetime | None = None
    finished_seq: int | None = None  # global finish order: ratings replay in this order


class ItemRow(SQLModel, table=True):
    """One item snapshot, keyed by the hash of its content: matches of the same item (in any
    tournament) share it instead of each copying it."""

    __tablename__ = "item"

    key: str = Field(primary_key=True)
    data: dict[str, Any] = Field(sa_column=Column(JSON))


class TurnRow(SQLModel, table=True):
    __tablename__ = "turn"
    __table_args__ = (Index("ix_turn_match", "match_id", "idx"),)

    id: int | None = Field(default=None, primary_key=True)
    match_id: str = Field(foreign_key="match.id")
    idx: int
    seat: str
    player: str | None = None
    round: int = 0
    phase: str = "speech"
    text: str
    shown: str
    visible_to: list[str] | None = Field(default=None, sa_column=Column(JSON))
    parent: int | None = None
    branch: int = 0
    tokens: int | None = None
    latency: float = 0.0
    cost: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class VerdictRow(SQLModel, table=True):
    __tablename__ = "verdict"

    match_id: str = Field(primary_key=True, foreign_key="match.id")
    node: int = Field(default=-1, primary_key=True)  # -1: the match's main verdict
    judge: str
    probs: dict[str, float] = Field(sa_column=Column(JSON))
    chosen: str | None = None
    winner_seat: str | None = None
    winner: str | None = None  # player
    correct: bool | None = None
    confidence: float | None = None
    raw: str = ""
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Rating(SQLModel, table=True):
    pool: str = Field(primary_key=True)
    player: str = Field(primary_key=True)
    mu: float
    sigma: float
    matches: int = 0
    wins: int = 0
    losses: int = 0
    draws: int = 0
    updated_at: datetime = Field(default_factory=now)


class LearnerRun(SQLModel, table=True):
    __tablename__ = "learner_run"

    id: int | None = Field(default=None, primary_key=True)
    learner: str
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    data_query: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    pairs: int = 0
    checkpoint: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    wall_time: float | None = None
    status: str = "running"
    created_at: datetime = Field(default_factory=now)


class JudgeRow(SQLModel, table=True):
    """A judge a learner produced (reward model, cost model, discriminator), with its lineage.

    `plugin` and `options` build it exactly as a tournament's `[judge]` table would; `parent` is
    the judge it was trained from (None when it started from `base_model`, a model directory);
    `learner_run` is the run that trained it, whose row holds the data query and the metrics.
    """

    __tablename__ = "judge"

    name: str = Field(primary_key=True)
    plugin: str
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    kind: str = "reward"  # reward (higher is better) or cost (lower is better; <= 0 is safe)
    parent: str | None = None  # lineage: the judge this one was trained from
    base_model: str | None = None  # the weights training started from
    learner_run: int | None = None
    created_at: datetime = Field(default_factory=now)
