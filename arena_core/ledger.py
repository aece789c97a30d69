"""The ledger: every tournament, player, match, turn, verdict and rating, in SQLModel tables.

SQLite (WAL) by default; the schema uses only portable types so Postgres follows unchanged. Hot
paths (scheduling thousands of matches, writing finished ones) use SQLAlchemy Core bulk statements
on the same tables: the ORM's per-object bookkeeping would cost more than the matches themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, event, func, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

from arena_core.errors import UsageError, suggest

DEFAULT_LEDGER = "sqlite:///arena.db"

PENDING, DONE, FAILED = "pending", "done", "failed"


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
        Index("ix_match_tournament_status", "tournament", "status"),
        Index("ix_match_finished_seq", "finished_seq"),
    )

    id: str = Field(primary_key=True)  # deterministic hash, see schedule.match_id
    tournament: str = Field(foreign_key="tournament.name")
    protocol: str
    item_id: str
    item: dict[str, Any] = Field(sa_column=Column(JSON))  # snapshot, so `show` needs no dataset
    seats: dict[str, str] = Field(sa_column=Column(JSON))  # seat -> player
    assignment: dict[str, int] = Field(sa_column=Column(JSON))  # seat -> answer index argued
    variant: int = 0
    repetition: int = 0
    order_key: int = 0  # position in the (seeded) schedule
    status: str = Field(default=PENDING)
    attempts: int = 0
    error: str | None = None
    traceback: str | None = None
    worker: str | None = None
    created_at: datetime = Field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    finished_seq: int | None = None  # global finish order: ratings replay in this order


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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("ARENA_LEDGER") or DEFAULT_LEDGER


def open_engine(url: str | None = None, *, create: bool = True) -> Engine:
    """Open (by default create) a ledger; a missing SQLite file is an error when not creating."""
    url = resolve_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not create and path not in ("", ":memory:") and not os.path.exists(path):
            raise UsageError(f"no ledger at {url} (run a tournament first, or pass --ledger)")
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # bad URL, missing driver
        raise UsageError(f"cannot open ledger {url!r}: {exc}") from None
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    if create:
        SQLModel.metadata.create_all(engine)
    return engine


class Ledger:
    """Reads and writes the ledger. One instance per process; sessions are short-lived."""

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        self.url = resolve_url(url)
        self.engine = open_engine(self.url, create=create)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # --- tournaments and players ---------------------------------------------------------------

    def ensure_tournament(
        self,
        name: str,
        protocol: str,
        pool: str,
        config_hash: str,
        config: dict[str, Any],
        source: str,
    ) -> None:
        """Create the tournament row, or check that an existing one has the same identity."""
        with self.session() as s:
            row = s.get(Tournament, name)
            if row is None:
                s.add(
                    Tournament(
                        name=name,
                        protocol=protocol,
                        pool=pool,
                        config_hash=config_hash,
                        config=config,
                        source=source,
                    )
                )
                s.commit()
            elif row.config_hash != config_hash:
                raise UsageError(
                    f"tournament '{name}' is already in the ledger with a different config "
                    f"(players, protocol, judge, dataset or seed changed); give the tournament a "
                    f"new [tournament] name, or use another --ledger"
                )

    def ensure_players(self, players: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        with self.session() as s:
            for name, agent, options in players:
                row = s.get(Player, name)
                if row is None:
                    s.add(Player(name=name, agent=agent, options=options))
                elif row.agent != agent or row.options != options:
                    raise UsageError(
                        f"player '{name}' is already in the ledger as agent '{row.agent}' with "
                        f"options {json.dumps(row.options)}; a player's name must mean one "
                        f"configuration: rename the new one"
                    )
            s.commit()

    def player(self, name: str) -> Player | None:
        with self.session() as s:
            return s.get(Player, name)

    # --- matches --------------------------------------------------------------------------------

    def add_matches(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert pending matches, skipping ids already present. Returns how many were new."""
        if not rows:
            return 0
        table = MatchRow.__table__
        with self.engine.begin() as conn:
            existing = set()
            ids = [r["id"] for r in rows]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                existing.update(
                    conn.execute(select(table.c.id).where(table.c.id.in_(chunk))).scalars()
                )
            new = [r for r in rows if r["id"] not in existing]
            if new:
                conn.execute(table.insert(), new)
        return len(new)

    def pending(self, tournament: str, *, retry_failed: bool = False) -> list[MatchRow]:
        statuses = [PENDING, FAILED] if retry_failed else [PENDING]
        with self.session() as s:
            return list(
                s.exec(
                    select(MatchRow)
                    .where(MatchRow.tournament == tournament, MatchRow.status.in_(statuses))
                    .order_by(MatchRow.order_key)
                )
            )

    def matches(
        self,
        *,
        tournament: str | None = None,
        status: str | None = None,
        player: str | None = None,
        limit: int | None = None,
    ) -> list[MatchRow]:
        with self.session() as s:
            q = select(MatchRow)
            if tournament:
                q = q.where(MatchRow.tournament == tournament)
            if status:
                q = q.where(MatchRow.status == status)
            q = q.order_by(MatchRow.tournament, MatchRow.order_key)
            rows = list(s.exec(q))
        if player:
            rows = [m for m in rows if player in m.seats.values()]
        return rows[:limit] if limit else rows

    def get_match(self, prefix: str) -> MatchRow:
        with self.session() as s:
            rows = list(s.exec(select(MatchRow).where(MatchRow.id.startswith(prefix)).limit(2)))
        if not rows:
            raise UsageError(f"no match with id {prefix!r}")
        if len(rows) > 1:
            raise UsageError(f"match id prefix {prefix!r} is ambiguous; give more characters")
        return rows[0]

    def turns(self, match_id: str) -> list[TurnRow]:
        with self.session() as s:
            return list(
                s.exec(select(TurnRow).where(TurnRow.match_id == match_id).order_by(TurnRow.idx))
            )

    def verdict(self, match_id: str) -> VerdictRow | None:
        """The main verdict (the one ratings use)."""
        with self.session() as s:
            return s.get(VerdictRow, (match_id, -1))

    def node_verdicts(self, match_id: str) -> list[VerdictRow]:
        """Verdicts on parts of a match (leaves of a branched debate, pairwise comparisons)."""
        with self.session() as s:
            return list(
                s.exec(
                    select(VerdictRow)
                    .where(VerdictRow.match_id == match_id, VerdictRow.node >= 0)
                    .order_by(VerdictRow.node)
                )
            )

    def counts(self, tournament: str) -> dict[str, int]:
        with self.session() as s:
            rows = s.exec(
                select(MatchRow.status, func.count())
                .where(MatchRow.tournament == tournament)
                .group_by(MatchRow.status)
            ).all()
        return {status: n for status, n in rows}

    def tournaments(self) -> list[Tournament]:
        with self.session() as s:
            return list(s.exec(select(Tournament).order_by(Tournament.created_at)))

    def done_with_verdicts(
        self, *, tournament: str | None = None, pool: str | None = None, nodes: bool = False
    ) -> list[tuple[MatchRow, VerdictRow]]:
        """Finished matches with their main verdicts (or, with `nodes`, their node verdicts), in
        finish order: the order ratings replay in."""
        with self.session() as s:
            node = VerdictRow.node >= 0 if nodes else VerdictRow.node == -1
            q = (
                select(MatchRow, VerdictRow)
                .join(VerdictRow, (VerdictRow.match_id == MatchRow.id) & node)
                .where(MatchRow.status == DONE)
            )
            if tournament:
                q = q.where(MatchRow.tournament == tournament)
            if pool is not None:
                names = s.exec(select(Tournament.name).where(Tournament.pool == pool)).all()
                q = q.where(MatchRow.tournament.in_(list(names)))
            q = q.order_by(MatchRow.finished_seq, VerdictRow.node)
            return [tuple(r) for r in s.exec(q).all()]

    def tournament(self, name: str) -> Tournament:
        with self.session() as s:
            row = s.get(Tournament, name)
        if row is None:
            known = [t.name for t in self.tournaments()]
            raise UsageError(f"no tournament '{name}' in {self.url}{suggest(name, known)}")
        return row

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                text("SELECT COALESCE(MAX(finished_seq), 0) FROM match")
            ).scalar_one()

    # --- ratings --------------------------------------------------------------------------------

    def ratings(self, pool: str) -> list[Rating]:
        with self.session() as s:
            return list(s.exec(select(Rating).where(Rating.pool == pool)))

    def pools(self) -> list[str]:
        with self.session() as s:
            return sorted(set(s.exec(select(Rating.pool)).all()))
