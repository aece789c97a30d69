"""The engine: schedules a tournament into the ledger and plays what is not done yet.

Matches run as asyncio tasks, `concurrency` at a time, so agents that batch (local models) or
overlap (APIs) see many requests at once. Finished matches are written in small groups, each in
one transaction with its rating updates: a crash loses at most the matches in flight or not yet
written, and a re-run plays exactly those.

Work comes a page at a time (`Claimer`), so memory stays flat however long the schedule: a
single process on SQLite claims pages of pending matches for itself and never waits for others;
on a shared ledger (Postgres, or several local workers) each process claims batches of pending
matches (`Ledger.claim`), heartbeats its claims, takes back claims whose worker went silent,
and writes a match only while it still holds the claim. Queued matches are plain `Claimed` rows
(ids, seats, a shared item dict), and each item is parsed once per process, not once a match.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import json
import logging
import operator
import os
import signal
import socket
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, func, select, text
from sqlalchemy.engine import Connection

from arena_core.config import TournamentConfig
from arena_core.errors import ConfigError, UsageError
from arena_core.interfaces import Agent, Judge, Protocol
from arena_core.ledger import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    Claimed,
    Ledger,
    MatchRow,
    Player,
    Rating,
    TurnRow,
    VerdictRow,
    advisory_key,
    now,
)
from arena_core.ledger import Tournament as TournamentRow
from arena_core.match import CallPolicy, Match, StopRun
from arena_core.ratings import PlayerRating, RatingBook, outcome
from arena_core.registry import Registry
from arena_core.schedule import count_matches, iter_matches, sample_items
from arena_core.textsafe import redact
from arena_core.types import Item, Verdict


@dataclass
class RunSummary:
    tournament: str
    scheduled: int = 0  # matches in the tournament
    to_play: int = 0  # matches this run set out to play
    done: int = 0
    failed: int = 0
    wall: float = 0.0
    interrupted: bool = False
    errors: dict[str, int] = field(default_factory=dict)
    lost: int = 0  # played, but the claim had been taken back meanwhile: not written
    # (worker, matches, latest heartbeat) of other processes holding this tournament's matches
    held_elsewhere: list[tuple[str, int, Any]] = field(default_factory=list)
    claim_latencies: list[float] = field(default_factory=list)  # seconds per claim call
    most_queued: int = 0  # the most matches waiting in memory at once: at most about a page

    @property
    def rate(self) -> float:
        return (self.done + self.failed) / self.wall if self.wall else 0.0


@dataclass
class Plan:
    """What a run would do (`arena run --dry-run`): nothing in it is played or written."""

    tournament: str
    protocol: str
    items: int
    scheduled: int  # matches in the tournament, as this config lists them
    per_pair: dict[tuple[str, str], int]  # (protocol, "a vs b") -> matches
    stored: dict[str, int]  # status -> matches of this tournament already in the ledger
    to_play: int  # what this run would play
    agents: list[tuple[str, str, dict[str, Any]]]  # (player, agent plugin, options)
    judge: tuple[str, dict[str, Any]]
    refused: str | None = None  # why the run would be refused, if it would


@dataclass
class Result:
    """A finished match, waiting to be written."""

    row: Claimed
    status: str
    started_at: Any
    finished_at: Any
    match: Match | None = None
    verdict: Verdict | None = None
    error: str | None = None
    tb: str | None = None


_TURN_COLUMNS = (
    "match_id", "idx", "seat", "player", "round", "phase", "text", "shown", "visible_to",
    "parent", "branch", "tokens", "latency", "cost", "meta",
)  # fmt: skip
_VERDICT_COLUMNS = (
    "match_id", "node", "judge", "probs", "chosen", "winner_seat", "winner", "correct",
    "confidence", "raw", "meta",
)  # fmt: skip
_MATCH_UPDATE = (
    "status", "attempts", "error", "traceback", "worker", "started_at", "finished_at",
    "finished_seq",
)  # fmt: skip
_RATING_UPDATE = ("mu", "sigma", "matches", "wins", "losses", "draws", "updated_at")


class DriverStatement:
    """An INSERT (or, with `where`, an UPDATE by key) of many rows through the DBAPI directly.

    Written by hand for the writer's hot path: SQLAlchemy Core's executemany of dicts cost about
    25 us a row on SQLite, 5-7 us of it SQLite's own. The values still go through each column
    type's own bind processor (JSON, DateTime), taken from SQLAlchemy for this dialect, so what
    is stored is what Core would store. `where` maps key columns to the row keys holding them.

    On SQLite the rows go as multi-row statements (INSERT ... VALUES (..), (..); UPDATE ... FROM
    (VALUES ...)) of `_ROWS_PER_STATEMENT` rows rather than one executemany: the sqlite3 module
    releases the GIL at every row it steps, and the ledger thread then waited for the event
    loop's thread to hand it back once per row. Postgres (psycopg pipelines executemany) keeps
    executemany.
    """

    def __init__(
        self,
        dialect: Any,
        table: Any,
        columns: tuple[str, ...],
        *,
        where: dict[str, str] | None = None,
    ) -> None:
        q = dialect.identifier_preparer.quote
        # UPDATE ... FROM came with SQLite 3.33 (2020); an older library updates row by row.
        self.multi = dialect.name == "sqlite" and (
            where is None or dialect.dbapi.sqlite_version_info >= (3, 33)
        )
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        names = [*columns, *(where or {})]
        row = f"({', '.join(mark for _ in names)})"
        rows = ", ".join([row] * _ROWS_PER_STATEMENT)
        name = q(table.name)
        if where is None:
            head = f"INSERT INTO {name} ({', '.join(q(c) for c in columns)}) VALUES "
            self.sql = head + row
            self.sql_many = head + rows
            keys = list(columns)
        else:
            sets = ", ".join(f"{q(c)} = {mark}" for c in columns)
            cond = " AND ".join(f"{q(c)} = {mark}" for c in where)
            self.sql = f"UPDATE {name} SET {sets} WHERE {cond}"
            # SQLite names a VALUES list's columns column1, column2, ... in order.
            sets = ", ".join(f"{q(c)} = v.column{i + 1}" for i, c in enumerate(columns))
            cond = " AND ".join(
                f"{name}.{q(c)} = v.column{len(columns) + i + 1}" for i, c in enumerate(where)
            )
            self.sql_many = f"UPDATE {name} SET {sets} FROM (VALUES {rows}) AS v WHERE {cond}"
            keys = [*columns, *where.values()]
        procs = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
        if self.multi:  # SQLite stores JSON as the text json.dumps gives (SQLAlchemy's default)
            procs = [
                _json_text if isinstance(table.c[n].type, JSON) else p
                for n, p in zip(names, procs, strict=True)
            ]
        self.get = operator.itemgetter(*keys)
        self.procs = [(i, p) for i, p in enumerate(procs) if p is not None]

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        get, procs = self.get, self.procs
        params: list[Any] = []
        for r in rows:
            values = get(r)  # a tuple in column order, taken in C
            if procs:
                out = list(values)
                for i, p in procs:
                    out[i] = p(out[i])
                values = tuple(out)  # drivers take tuples (or dicts), not lists
            params.append(values)
        if not self.multi:
            conn.exec_driver_sql(self.sql, params)
            return
        # Whole chunks of _ROWS_PER_STATEMENT rows, one SQL text, and the rest row by row: the
        # sqlite3 module caches a prepared statement per distinct text, and one text per group
        # size (a statement of hundreds of rows is a large program) grew the run by 100 MB.
        whole = len(params) - len(params) % _ROWS_PER_STATEMENT
        for i in range(0, whole, _ROWS_PER_STATEMENT):
            chunk = params[i : i + _ROWS_PER_STATEMENT]
            conn.exec_driver_sql(self.sql_many, tuple(itertools.chain.from_iterable(chunk)))
        if whole < len(params):
            conn.exec_driver_sql(self.sql, params[whole:])


_ROWS_PER_STATEMENT = 32  # under SQLite's 999-variable limit of old builds at 15 columns (480)


def _json_text(value: Any) -> str:
    """What SQLAlchemy's JSON type writes on SQLite (`json.dumps`, None as 'null'), with the
    values most turns and verdicts hold (None, {}, []) answered without encoding."""
    if value is None:
        return "null"
    if not value and type(value) in (dict, list):
        return "{}" if type(value) is dict else "[]"
    return json.dumps(value)


class Writer:
    """Writes finished matches and their rating updates, a group per transaction."""

    def __init__(
        self,
        ledger: Ledger,
        book: RatingBook,
        worker: str,
        on_written: Callable[[Result], None] | None = None,
        *,
        claimed: bool = False,
    ) -> None:
        self.ledger = ledger
        self.book = book
        self.worker = worker
        self.claimed = claimed  # matches come from claims: write only those still held
        self.buffer: list[Result] = []
        self.seq = ledger.max_seq()
        self.stored = {r.player for r in ledger.ratings(book.pool)}
        self.on_written = on_written
        # In claim mode the book is re-read under the write lock before the first write: another
        # process may have written between loading the book and reading `seq` above.
        self._stale_book = claimed
        dialect = ledger.engine.dialect
        self._insert_turns = DriverStatement(dialect, TurnRow.__table__, _TURN_COLUMNS)
        self._insert_verdicts = DriverStatement(dialect, VerdictRow.__table__, _VERDICT_COLUMNS)
        self._update_match = DriverStatement(
            dialect, MatchRow.__table__, _MATCH_UPDATE, where={"id": "b_id"}
        )
        self._update_rating = DriverStatement(
            dialect, Rating.__table__, _RATING_UPDATE, where={"pool": "pool", "player": "player"}
        )
        self._insert_ratings = DriverStatement(
            dialect, Rating.__table__, ("pool", "player", *_RATING_UPDATE)
        )

    def add(self, result: Result) -> None:
        self.buffer.append(result)

    def take(self) -> list[Result]:
        batch, self.buffer = self.buffer, []
        return batch

    def flush(self) -> None:
        """Write everything buffered, in this thread (the async engine uses `write` in a thread)."""
        written = self.write(self.take())
        if self.on_written:
            for r in written:
                self.on_written(r)

    def write(self, batch: list[Result]) -> list[Result]:
        """One transaction: turns, verdicts, match rows and the rating updates they cause.

        Runs off the event loop; only one write is in progress at a time, so the rating book
        and `seq` need no lock. Returns the results written (in claim mode, those whose claim
        was still held).
        """
        if not batch:
            return []
        if self.claimed:
            return self._write_claimed(batch)
        turns, verdicts, updates, rows, seq = self._prepare(batch, self.seq)
        new = [r for r in rows if r["player"] not in self.stored]
        old = [r for r in rows if r["player"] in self.stored]
        with self.ledger.engine.begin() as conn:
            self._execute(conn, turns, verdicts, updates, old, new)
        self.seq = seq
        self.stored.update(r["player"] for r in new)
        return batch

    def _write_claimed(self, batch: list[Result]) -> list[Result]:
        """Write the results whose claims this worker still holds, with serialised ratings.

        Ratings under several writers: serialised, not recomputed. The transaction first locks
        this worker's claimed rows (a conditional UPDATE: a match taken back meanwhile is not
        matched, so its turns and verdict are dropped), then takes one ledger-wide lock (a
        Postgres advisory lock; SQLite's write lock already is one), reads the newest
        `finished_seq` and the pool's stored ratings, and applies TrueSkill on top of them in
        `finished_seq` order. Live ratings therefore equal a replay at every commit, at the cost
        of one lock and one small read per written group (up to `max_buffer` matches), whereas
        recomputing would replay the whole pool on every write or leave ratings stale.
        """
        mt = MatchRow.__table__
        ids = sorted({r.row.id for r in batch})
        mine = (mt.c.id.in_(ids), mt.c.worker == self.worker, mt.c.status == RUNNING)
        with self.ledger.engine.begin() as conn:
            touched = conn.execute(
                mt.update().where(*mine).values(heartbeat_at=self.ledger.db_now())
            ).rowcount
            if touched == len(ids) == len(batch):  # every claim held, one play each: the rule
                held = {r.row.id: r.row.claimed_at for r in batch}  # below would keep them all
            else:  # reading rows back costs a GIL hand-off per row: only when some were lost
                held = dict(conn.execute(select(mt.c.id, mt.c.claimed_at).where(*mine)).all())
            kept = live_results(batch, held)
            if not kept:
                return []
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FINISH_LOCK})
            seq = conn.execute(select(func.coalesce(func.max(mt.c.finished_seq), 0))).scalar_one()
            if seq != self.seq or self._stale_book:
                self._reload(conn)
            self._stale_book = True  # until this transaction commits
            turns, verdicts, updates, rows, seq = self._prepare(kept, seq)
            new = [r for r in rows if r["player"] not in self.stored]
            old = [r for r in rows if r["player"] in self.stored]
            self._execute(conn, turns, verdicts, updates, old, new)
        self.seq = seq
        self.stored.update(r["player"] for r in new)
        self._stale_book = False
        return kept

    def _reload(self, conn: Connection) -> None:
        """Replace the in-memory ratings with the stored ones (other workers wrote since)."""
        rt = Rating.__table__
        rows = conn.execute(select(rt).where(rt.c.pool == self.book.pool)).all()
        self.book.players = {
            r.player: PlayerRating(r.mu, r.sigma, r.matches, r.wins, r.losses, r.draws)
            for r in rows
        }
        self.stored = {r.player for r in rows}

    def _execute(
        self,
        conn: Connection,
        turns: list[dict[str, Any]],
        verdicts: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        old: list[dict[str, Any]],
        new: list[dict[str, Any]],
    ) -> None:
        if turns:
            self._insert_turns.run(conn, turns)
        if verdicts:
            self._insert_verdicts.run(conn, verdicts)
        self._update_match.run(conn, updates)
        if old:
            self._update_rating.run(conn, old)
        if new:
            self._insert_ratings.run(conn, new)

    def _prepare(
        self, batch: list[Result], seq: int
    ) -> tuple[
        list[dict[str, Any]],
        list[dict[str, Any]],
        list[dict[str, Any]],
        list[dict[str, Any]],
        int,
    ]:
        """Rows to write for `batch`, rating the done matches in order after `seq`."""
        turns: list[dict[str, Any]] = []
        verdicts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        touched: set[str] = set()
        for r in batch:
            row = r.row
            upd = {
                "b_id": row.id,
                "status": r.status,
                "attempts": row.attempts + 1,
                "error": r.error,
                "traceback": r.tb,
                "worker": self.worker,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "finished_seq": None,
            }
            if r.status == DONE and r.match is not None and r.verdict is not None:
                seq += 1
                upd["finished_seq"] = seq
                for t in r.match.turns:
                    turns.append(
                        {
                            "match_id": row.id,
                            "idx": t.index,
                            "seat": t.seat,
                            "player": t.player,
                            "round": t.round,
                            "phase": t.phase,
                            "text": t.text,
                            "shown": t.shown,
                            "visible_to": t.visible_to,
                            "parent": t.parent,
                            "branch": t.branch,
                            "tokens": t.tokens,
                            "latency": t.latency,
                            "cost": t.cost,
                            "meta": t.meta,
                        }
                    )
                v = r.verdict
                verdicts.append(verdict_row(row, -1, v))
                verdicts.extend(verdict_row(row, n, nv) for n, nv in r.match.node_verdicts())
                res = outcome(row.seats, v.winner)
                if res is not None and self.book.update(*res):
                    touched.update(res[:2])
            updates.append(upd)
        return turns, verdicts, updates, self.book.rows(sorted(touched)), seq


def live_results(batch: list[Result], held: dict[str, Any]) -> list[Result]:
    """One result per match still held (id -> its live claim's `claimed_at`), in batch order.

    A batch can hold two plays of one match: its claim was taken back (a stalled loop, a skewed
    clock) and claimed again by this same worker while the first play was in flight. The play
    started under the live claim is the one written; the other is dropped as lost.
    """
    chosen: dict[str, Result] = {}
    for r in batch:
        mid = r.row.id
        if mid not in held:
            continue
        prev = chosen.get(mid)
        if prev is None or (r.row.claimed_at == held[mid] and prev.row.claimed_at != held[mid]):
            chosen[mid] = r
    return [r for r in batch if chosen.get(r.row.id) is r]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (`kill`, SLURM preemption, a container stop) like Ctrl-C while inside.

    The run then stops the same way: finished matches are written, claims are released at once
    instead of after the stale timeout, and the command exits 130 with its message. Inside
    `asyncio.run` the SIGINT handler cancels the main task; elsewhere it raises KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job): still stop like an interrupt
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_FINISH_LOCK = advisory_key("arena:finish")  # serialises finish writes: ratings and finished_seq
log = logging.getLogger("arena.engine")


Offload = Callable[..., Awaitable[Any]]


def ledger_lane(ledger: Ledger) -> tuple[Offload, ThreadPoolExecutor | None]:
    """How a run hands ledger work (claims, writes, heartbeats) to a thread.

    On SQLite, one thread for all of it: a claim and a write in two pool threads hold two
    connections that queue on the file's one write lock, and SQLite's busy handler waits by
    sleeping (1, 2, 5, 10 ... ms), which cost fake debates a third of their time per match.
    Postgres locks rows, not the database, so there each call takes its own thread as before.
    """
    if ledger.shared:
        return asyncio.to_thread, None
    lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arena-ledger")

    async def offload(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(lane, call)

    return offload, lane


class Claimer:
    """Feeds the engine's tasks a page of matches at a time, so a run holds one page, not all.

    Tops up in the background when half a page is left, so tasks rarely wait. By default it
    claims from a shared ledger (`Ledger.claim`); when nothing is pending it takes back stale
    claims of dead workers, and waits (bounded polling) while other workers still hold matches
    that could come back; then it is finished. With `wait=False` (one process on its own
    ledger) it is finished as soon as a page comes back empty. `fetch` replaces the claim (the
    exclusive path reads pages without claiming); `limit` caps the matches it hands out.
    """

    def __init__(
        self,
        ledger: Ledger,
        tournament: str,
        worker: str,
        batch: int,
        *,
        stale_after: float,
        poll: float,
        forever: bool = False,
        idle: Callable[[], Awaitable[None]] | None = None,
        wait: bool = True,
        limit: int | None = None,
        fetch: Callable[[int], list[Claimed]] | None = None,
        offload: Offload = asyncio.to_thread,
    ) -> None:
        self.ledger = ledger
        self.offload = offload
        self.idle = idle  # called before waiting: results still buffered must be written first
        self.tournament = tournament
        self.worker = worker
        self.batch = max(1, batch)
        self.stale_after = stale_after
        self.poll = poll
        self.forever = forever
        self.wait = wait
        self.limit = limit
        self.fetch = fetch or (lambda n: ledger.claim(tournament, worker, n))
        self.rows: deque[Claimed] = deque()
        self.lock = asyncio.Lock()
        self.finished = False
        self.claimed = 0
        self.most_held = 0  # the most rows queued at once (a test checks paging with it)
        self.latencies: list[float] = []
        self._topping: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[list[Claimed]]] = set()

    async def _claim(self) -> int:
        n = self.batch
        if self.limit is not None:
            n = min(n, self.limit - self.claimed)
            if n <= 0:
                self.finished = True
                return 0
        t0 = time.perf_counter()
        # Shielded and remembered: a run cancelled (Ctrl-C, SIGTERM) while a claim is in its
        # thread must wait for that claim to commit before releasing, or the rows it claims
        # stay `running` under a worker that is gone.
        claiming = asyncio.ensure_future(self.offload(self.fetch, n))
        self._inflight.add(claiming)
        claiming.add_done_callback(self._inflight.discard)
        rows = await asyncio.shield(claiming)
        self.latencies.append(time.perf_counter() - t0)
        self.rows.extend(rows)
        self.most_held = max(self.most_held, len(self.rows))
        self.claimed += len(rows)
        if not rows and not self.wait:
            self.finished = True
        return len(rows)

    async def _top_up(self) -> None:
        async with self.lock:
            if len(self.rows) < self.batch // 2 and not self.finished:
                await self._claim()

    async def next(self) -> Claimed | None:
        while True:
            if self.rows:
                row = self.rows.popleft()
                if (
                    len(self.rows) < self.batch // 2
                    and (self._topping is None or self._topping.done())
                    and not self.lock.locked()
                    and not self.finished
                ):  # one top-up at a time: until it holds the lock, the lock looks free
                    self._topping = asyncio.create_task(self._top_up())
                return row
            if self.finished:
                return None
            async with self.lock:
                if self.rows or self.finished:
                    continue
                if await self._claim() or self.finished:
                    continue
                if self.idle is not None:
                    # Write what this worker has finished before waiting on others: they may be
                    # waiting for exactly these matches to stop being `running`.
                    await self.idle()
                ledger, t = self.ledger, self.tournament
                # Never its own claims: a worker starved of CPU past `stale_after` would
                # otherwise take back its own matches in flight and drop their results.
                if await self.offload(ledger.take_back, t, self.stale_after, keep=self.worker):
                    continue
                if await self.offload(ledger.take_back_dead, t):
                    continue
                busy = await self.offload(ledger.running_elsewhere, t, self.worker)
                if not busy and not self.forever:
                    self.finished = True
                    continue
                await asyncio.sleep(self.poll)  # others hold matches: wait for them or their death

    async def close(self) -> list[Claimed]:
        """Stop topping up; the claimed matches that were never started."""
        self.finished = True
        if self._topping is not None:
            await asyncio.gather(self._topping, return_exceptions=True)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        left = list(self.rows)
        self.rows.clear()
        return left


class Pages:
    """The exclusive path's `fetch`: the next page of pending matches after the last one read,
    without claiming (a SLURM shard's own file, `claim=False`); with `only`, those ids alone."""

    def __init__(
        self, ledger: Ledger, tournament: str, *, retry_failed: bool, only: set[str] | None
    ) -> None:
        self.ledger = ledger
        self.tournament = tournament
        self.retry_failed = retry_failed
        self.only = only
        self.after: tuple[int, str] | None = None

    def __call__(self, n: int) -> list[Claimed]:
        while True:  # an empty page means the end, so pages filtered empty are skipped
            rows = self.ledger.pending_page(
                self.tournament, n, after=self.after, retry_failed=self.retry_failed
            )
            if not rows:
                return []
            self.after = (rows[-1].order_key, rows[-1].id)
            if self.only is not None:
                rows = [r for r in rows if r.id in self.only]
            if rows:
                return rows


class HandOut:
    """A `fetch` over rows already claimed (an explicit `--items` set): a page at a time."""

    def __init__(self, rows: list[Claimed]) -> None:
        self.rows = deque(rows)

    def __call__(self, n: int) -> list[Claimed]:
        return [self.rows.popleft() for _ in range(min(n, len(self.rows)))]


def verdict_row(row: Claimed, node: int, v: Verdict) -> dict[str, Any]:
    return {
        "match_id": row.id,
        "node": node,
        "judge": v.judge,
        "probs": v.probs,
        "chosen": v.chosen,
        "winner_seat": v.winner,
        "winner": row.seats.get(v.winner) if v.winner else None,
        "correct": v.correct,
        "confidence": v.confidence,
        "raw": v.raw,
        "meta": v.meta,
    }


_LOOP_SHARE = 0.002  # s a task may play matches without letting the event loop run others
_NOT_COUNTED = ("tournament", "protocol_name", "seed")  # no bearing on how many matches
_PARSED_ITEMS = 1024  # parsed items kept per tournament (a page rarely spans more)


def _listened(hook: Any) -> bool:
    """Whether any plugin implements this pluggy hook (anything else: assume so)."""
    impls = getattr(hook, "get_hookimpls", None)
    return True if impls is None else bool(impls())


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Tournament:
    """A config made ready to play: items sampled, matches listed, agents and judge built.

    Everything that can fail on bad input happens here, before the ledger is opened, so a bad
    config or dataset leaves the ledger untouched.
    """

    def __init__(
        self,
        config: TournamentConfig,
        registry: Registry,
        source: str = "",
        items: list[Item] | None = None,
        *,
        build: bool = True,
    ) -> None:
        """`items`: play these instead of the dataset's (a loop's evolved item set).
        `build=False` lists the matches without building agents and judge (a dry run's plan,
        which must not load a model or open an API client)."""
        self.config = config
        self.registry = registry
        self.source = source
        raw = config.raw
        self.protocol: Protocol = self._build(
            "protocol", raw.tournament.protocol, config.protocol_options, "protocol", None
        )
        dataset = self._build(
            "dataset", raw.dataset.plugin, config.dataset_options, "dataset", None
        )
        self.items = items or sample_items(
            dataset,
            split=raw.dataset.split,
            limit=raw.dataset.limit,
            seed=raw.tournament.seed,
            shuffle=raw.dataset.shuffle,
        )
        self._rows: list[dict[str, Any]] | None = None  # only when listed (`rows`) or set
        self._slice: tuple[int, int] | None = None  # (index, count): see `take_slice`
        self._parsed: OrderedDict[str, Item] = OrderedDict()  # item key -> parsed item
        self._schedule_args: dict[str, Any] = {
            "tournament": config.name,
            "protocol_name": raw.tournament.protocol,
            "protocol": self.protocol,
            "items": self.items,
            "players": [p.name for p in raw.players],
            "kind": raw.schedule.kind,
            "red": raw.schedule.red,
            "repetitions": raw.tournament.repetitions,
            "seed": raw.tournament.seed,
        }
        # Counted now, so a bad schedule (too few players for round-robin) fails before the
        # ledger is opened, as listing the rows here used to.
        self.scheduled = count_matches(
            **{k: v for k, v in self._schedule_args.items() if k not in _NOT_COUNTED}
        )
        self.agents: dict[str, Agent] = {}
        self._judge: Judge | None = None
        if build:
            self.agents = {
                p.name: self._build(
                    "agent", p.agent, config.player_options[p.name], "players", f"player '{p.name}'"
                )
                for p in raw.players
            }
            self._judge = self._build(
                "judge", raw.judge.plugin, config.judge_options, "judge", None
            )

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every match row in schedule order, as a list: for small tournaments and tests. A run
        streams `iter_rows` instead, so a million matches are never all held."""
        if self._rows is None:
            self._rows = sorted(self.iter_rows(), key=lambda r: r["order_key"])
        return self._rows

    @rows.setter
    def rows(self, rows: list[dict[str, Any]]) -> None:
        """Play exactly these rows."""
        self._rows = rows
        self.scheduled = len(rows)

    def take_slice(self, index: int, count: int) -> None:
        """Keep slice `index` of `count` of the schedule (the matches whose `order_key % count ==
        index`: a SLURM array task's share), still built one row at a time as it is consumed."""
        if not 0 <= index < count:
            raise UsageError(f"slice {index} of {count}: the index must be in 0..{count - 1}")
        self._slice = (index, count)
        self._rows = None
        # order_key is each match's rank, 0 .. scheduled - 1: the slice's size is arithmetic.
        self.scheduled = max(0, (self.scheduled - index + count - 1) // count)

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """The match rows, built one at a time (or the rows set, if any)."""
        if self._rows is not None:
            return iter(self._rows)
        rows = iter_matches(**self._schedule_args)
        if self._slice is None:
            return rows
        index, count = self._slice
        return (r for r in rows if r["order_key"] % count == index)

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            raise RuntimeError("this tournament was made with build=False: it can only plan")
        return self._judge

    def _build(self, kind: str, name: str, options: Any, table: str, entry: str | None) -> Any:
        try:
            return self.registry.build(kind, name, options)
        except UsageError:
            raise
        except (ValueError, TypeError, OSError, ImportError) as exc:
            raise ConfigError(
                f"{kind} '{name}' could not be built: {exc}",
                file=self.config.path,
                table=table,
                entry=entry,
            ) from exc

    def check(self, ledger: Ledger) -> None:
        """Refuse (UsageError) what `schedule` would refuse, reading only: run before writing.

        `ensure_tournament` commits before `ensure_players` can object, so without this a
        refused run left a tournament row behind that then blocked the corrected config.
        """
        cfg, raw = self.config, self.config.raw
        with ledger.session() as s:
            row = s.get(TournamentRow, cfg.name)
            if row is not None and row.config_hash != cfg.identity_hash():
                raise UsageError(
                    f"tournament '{cfg.name}' is already in the ledger with a different config "
                    f"(players, protocol, judge, dataset or seed changed); give the tournament a "
                    f"new [tournament] name, or use another --ledger"
                )
            for p in raw.players:
                known = s.get(Player, p.name)
                options = cfg.player_options[p.name].model_dump(mode="json")
                if known is not None and (known.agent != p.agent or known.options != options):
                    raise UsageError(
                        f"player '{p.name}' is already in the ledger as agent '{known.agent}' "
                        f"with options {json.dumps(known.options)}; a player's name must mean "
                        f"one configuration: rename the new one"
                    )

    def schedule(self, ledger: Ledger) -> int:
        """Write the tournament, its players and its pending matches; return the match count."""
        cfg, raw = self.config, self.config.raw
        self.check(ledger)  # nothing is written unless every check passes
        ledger.ensure_tournament(
            cfg.name,
            raw.tournament.protocol,
            cfg.pool,
            cfg.identity_hash(),
            cfg.identity(),
            self.source,
        )
        ledger.ensure_players(
            (p.name, p.agent, cfg.player_options[p.name].model_dump(mode="json"))
            for p in raw.players
        )
        ledger.add_matches(self.iter_rows())
        return self.scheduled

    def plan(
        self,
        ledger: Ledger | None,
        *,
        retry_failed: bool = False,
        limit: int | None = None,
        only: set[str] | None = None,
    ) -> Plan:
        """What `run` would do, reading the ledger (if there is one) and writing nothing."""
        cfg, raw = self.config, self.config.raw
        refused = None
        stored: dict[str, int] = {}  # status -> matches of this tournament already stored
        if ledger is not None:
            try:
                self.check(ledger)
            except UsageError as exc:
                refused = str(exc)
                ledger = None
            else:
                stored = ledger.counts(cfg.name)
        wanted = {PENDING, FAILED} if retry_failed else {PENDING}
        per: dict[tuple[str, str], int] = {}
        n = 0  # scheduled matches this run would play (not stored yet, or stored in `wanted`)
        in_schedule = 0  # stored matches of the schedule in `wanted`, whatever `only` says
        only_seen: set[str] = set()
        # A chunk at a time, looking up only that chunk's stored statuses: a dry run of a
        # million matches holds neither the schedule nor the ledger's status of every match.
        rows = self.iter_rows()
        while chunk := list(itertools.islice(rows, 5000)):
            status = ledger.statuses([r["id"] for r in chunk]) if ledger is not None else {}
            for r in chunk:
                key = (r["protocol"], " vs ".join(sorted(r["seats"].values())) or "(no seats)")
                per[key] = per.get(key, 0) + 1
                st = status.get(r["id"])
                if st in wanted:
                    in_schedule += 1
                if only is not None and r["id"] in only:
                    only_seen.add(r["id"])
                elif only is not None:
                    continue
                n += (st or PENDING) in wanted
        # Stored matches the schedule no longer lists (a dataset that shrank) are played too.
        if only is None:
            n += sum(c for st, c in stored.items() if st in wanted) - in_schedule
        elif ledger is not None:
            extra = ledger.statuses(sorted(only - only_seen))
            n += sum(1 for st in extra.values() if st in wanted)
        return Plan(
            tournament=cfg.name,
            protocol=raw.tournament.protocol,
            items=len(self.items),
            scheduled=self.scheduled,
            per_pair=per,
            stored=stored,
            to_play=min(n, limit) if limit is not None else n,
            agents=[
                (p.name, p.agent, cfg.player_options[p.name].model_dump(mode="json"))
                for p in raw.players
            ],
            judge=(raw.judge.plugin, cfg.judge_options.model_dump(mode="json")),
            refused=refused,
        )

    async def run(
        self,
        ledger: Ledger,
        *,
        retry_failed: bool = False,
        progress: Callable[[RunSummary], None] | None = None,
        hook: Any = None,
        worker: str | None = None,
        flush_every: float = 0.05,
        max_buffer: int = 256,
        claim: bool | None = None,
        schedule: bool = True,
        claim_batch: int | None = None,
        heartbeat_every: float = 5.0,
        stale_after: float = 60.0,
        poll: float = 0.5,
        forever: bool = False,
        limit: int | None = None,
        only: set[str] | None = None,
        page: int = 1000,
    ) -> RunSummary:
        """Play every pending (and with `retry_failed`, failed) match of the tournament.

        `claim` (default: on for a shared ledger such as Postgres) plays by claiming matches, so
        any number of processes can run this at once; `schedule=False` skips writing the
        schedule (a worker joining a tournament someone else scheduled). A claim whose
        heartbeat (every `heartbeat_every` s) is older than `stale_after` s is taken back.
        `limit` plays at most that many matches and `only` only the matches with these ids (a
        smoke test); the rest stay pending. Neither goes with claim mode (several workers).

        By default a single process on SQLite claims, in one statement, every pending match it
        reads (after taking back claims of dead or silent workers), heartbeats them and writes
        under the same serialised rating update as claim mode. So two `arena run`s on one
        file, of one tournament or of two sharing a pool, never play a match twice nor write
        ratings from a stale book; what another live process holds is reported in
        `summary.held_elsewhere`. `claim=False` is the exclusive path (a SLURM shard's own file).

        Outside claim mode the matches come `page` at a time (claimed, or read on the exclusive
        path), so memory does not grow with the schedule: a million-match run holds one page.
        """
        cfg, raw = self.config, self.config.raw
        local = claim is None and not ledger.shared  # one process: claims a page at a time
        claim = ledger.shared if claim is None else claim
        if claim and (limit is not None or only is not None):
            raise UsageError(
                "--limit and --items play from one process: not with --workers or a shared "
                "(Postgres) ledger"
            )
        summary = RunSummary(tournament=cfg.name)
        summary.scheduled = self.schedule(ledger) if schedule else self.scheduled
        me = worker or default_worker()
        offload, lane = ledger_lane(ledger)
        if claim:
            if retry_failed:
                ledger.reset_failed(cfg.name)
            counts = ledger.counts(cfg.name)
            summary.to_play = counts.get(PENDING, 0) + counts.get(RUNNING, 0)
            claimer = Claimer(
                ledger,
                cfg.name,
                me,
                claim_batch or raw.tournament.concurrency,
                stale_after=stale_after,
                poll=poll,
                forever=forever,
                offload=offload,
            )
        else:
            fetch: Callable[[int], list[Claimed]] | None = None
            if local:
                if retry_failed:
                    ledger.reset_failed(cfg.name)
                # Claims left by an earlier run under this very name (a write that failed, say):
                # no other process plays under it, so they are this run's to play.
                ledger.release(me, cfg.name)
                ledger.take_back_dead(cfg.name)
                ledger.take_back(cfg.name, stale_after)
                if only is not None:  # an explicit set of ids: claimed at once, held anyway
                    held = ledger.claim_all(cfg.name, me, ids=only, limit=limit)
                    fetch = HandOut(held)
                    summary.to_play = len(held)
                else:  # claimed a page at a time, so a run holds one page, not the schedule
                    summary.to_play = ledger.counts(cfg.name).get(PENDING, 0)
                summary.held_elsewhere = ledger.holders(cfg.name, besides=me)
            else:
                fetch = Pages(ledger, cfg.name, retry_failed=retry_failed, only=only)
                counts = ledger.counts(cfg.name)
                summary.to_play = counts.get(PENDING, 0) + (
                    counts.get(FAILED, 0) if retry_failed else 0
                )
                if only is not None:
                    summary.to_play = min(summary.to_play, len(only))
            if limit is not None:
                summary.to_play = min(summary.to_play, limit)
            claimer = Claimer(
                ledger,
                cfg.name,
                me,
                page,
                stale_after=stale_after,
                poll=poll,
                wait=False,
                limit=limit,
                fetch=fetch,
                offload=offload,
            )
        if hook is not None:
            hook.arena_tournament_started(tournament=cfg.name, matches=summary.to_play)
        agents, judge = self.agents, self.judge
        book = RatingBook.load(ledger, cfg.pool, raw.ratings.model_dump())
        policy = CallPolicy(
            timeout=raw.tournament.timeout,
            retries=raw.tournament.retries,
            backoff=raw.tournament.backoff,
        )

        def written(r: Result) -> None:
            if r.status == DONE:
                summary.done += 1
            else:
                summary.failed += 1
                key = (r.error or "").split(":", 1)[0]
                summary.errors[key] = summary.errors.get(key, 0) + 1
            if announce:
                hook.arena_match_finished(
                    match=r.row.to_row().model_dump(mode="json"), verdict=r.verdict, error=r.error
                )

        # The match dict costs a MatchRow a match (~0.1 ms): built only for a plugin that listens.
        announce = hook is not None and _listened(hook.arena_match_finished)
        writer = Writer(ledger, book, me, claimed=claim or local)
        start = time.perf_counter()
        last_flush = start
        flushing: asyncio.Task[None] | None = None

        async def flush() -> None:
            # Writing (SQL and TrueSkill, ~0.3 ms a match) runs in a thread so the event loop
            # keeps serving agents meanwhile; one write at a time keeps finish order exact.
            batch = writer.take()
            if batch:
                done = await offload(writer.write, batch)
                summary.lost += len(batch) - len(done)
                for r in done:
                    written(r)
            summary.wall = time.perf_counter() - start
            if progress:
                progress(summary)

        async def flush_now() -> None:
            nonlocal flushing
            # While this waits, another task may start the next flush: wait until none is
            # running (reading `.exception()` of a running one raised InvalidStateError).
            while flushing is not None and not flushing.done():
                await asyncio.wait([flushing])
            if flushing is not None and flushing.exception() is not None:
                raise flushing.exception()  # type: ignore[misc]
            if writer.buffer:
                flushing = asyncio.create_task(flush())
                await asyncio.wait([flushing])

        claimer.idle = flush_now

        def maybe_flush() -> None:
            nonlocal last_flush, flushing
            if flushing is not None and not flushing.done():
                return
            if flushing is not None and flushing.exception() is not None:
                raise flushing.exception()  # type: ignore[misc]  # a failed write ends the run
            t = time.perf_counter()
            if len(writer.buffer) >= max_buffer or t - last_flush >= flush_every:
                last_flush = t
                flushing = asyncio.create_task(flush())

        passed = time.perf_counter()  # when a task last let the loop run others

        async def work() -> None:
            nonlocal passed
            while (row := await claimer.next()) is not None:
                writer.add(await self.play_one(row, agents, judge, policy))
                maybe_flush()
                # Back-pressure: results pile up while a slow write runs (a loaded disk or a
                # starved thread); past a few groups, wait for it rather than hold them all.
                if len(writer.buffer) >= 4 * max_buffer and flushing is not None:
                    await asyncio.wait([flushing])
                # A match of in-process agents can finish without waiting once, and a task
                # that never waits keeps the loop from everything else: the writes, the
                # heartbeat, progress, the other tasks. So every few ms a task steps aside.
                t = time.perf_counter()
                if t - passed >= _LOOP_SHARE:
                    passed = t
                    await asyncio.sleep(0)

        async def beat() -> None:
            # From the event loop on purpose: a loop that hangs stops heartbeating, and its
            # claims go to a live worker.
            while True:
                await asyncio.sleep(heartbeat_every)
                try:
                    await offload(ledger.heartbeat, me, cfg.name)
                    # Taking back is for claiming: once the claimer is finished nobody here
                    # would play what it freed, so it is left to a worker still claiming.
                    if claim and not claimer.finished:
                        await offload(ledger.take_back, cfg.name, stale_after, keep=me)
                except Exception as exc:  # a blip of the database must not end the run
                    log.warning("heartbeat failed: %s", exc)

        n_tasks = raw.tournament.concurrency if claim else max(1, summary.to_play)
        tasks = [
            asyncio.create_task(work()) for _ in range(min(raw.tournament.concurrency, n_tasks))
        ]
        beating = asyncio.create_task(beat()) if claim or local else None
        # Everything alive now (modules, plugins, models, the config) lives as long as the run,
        # and the cyclic collector rescanned all of it on every full collection: with fake
        # agents that was a third to half of the time per match. Frozen, it is skipped; what
        # the run allocates is collected as before, and the end of the run unfreezes.
        gc.freeze()
        try:
            await asyncio.gather(*tasks)
        except (asyncio.CancelledError, StopRun):  # StopRun: a plugin says going on is no use
            summary.interrupted = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            if beating is not None:
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
            try:
                if flushing is not None:
                    await asyncio.gather(flushing, return_exceptions=True)
                    if flushing.exception() is not None:
                        raise flushing.exception()  # type: ignore[misc]
                await flush()
            finally:  # a failed write (disk full) still gives its claims back
                await claimer.close()
                summary.most_queued = claimer.most_held
                if claim:
                    summary.claim_latencies = claimer.latencies
                if claim or local:
                    # Claims not written (never started, interrupted, or failed to write) go
                    # back now rather than after the stale timeout.
                    with contextlib.suppress(Exception):
                        await offload(ledger.release, me, cfg.name)
            gc.unfreeze()
            if lane is not None:
                lane.shutdown(wait=True)
            summary.wall = time.perf_counter() - start
            for closer in [*agents.values(), judge]:
                with contextlib.suppress(Exception):  # closing must not hide the run's outcome
                    await closer.aclose()
            if hook is not None:
                hook.arena_tournament_finished(
                    tournament=cfg.name,
                    summary={
                        "done": summary.done,
                        "failed": summary.failed,
                        "interrupted": summary.interrupted,
                    },
                )
        return summary

    def item(self, row: Claimed) -> Item:
        """The row's item, parsed once per item (by content key) and shared by its matches:
        items are frozen, and a page of matches of one item need not each hold a copy."""
        key = row.item_key
        if key is None:
            return Item.model_validate(row.item)
        item = self._parsed.get(key)
        if item is None:
            item = self._parsed[key] = Item.model_validate(row.item)
            while len(self._parsed) > _PARSED_ITEMS:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(key)
        return item

    async def play_one(
        self, row: Claimed, agents: dict[str, Agent], judge: Judge, policy: CallPolicy
    ) -> Result:
        started = now()
        item = self.item(row)
        match = Match(
            match_id=row.id,
            protocol=row.protocol,
            item=item,
            players=row.seats,
            assignment=row.assignment,
            agents={seat: agents[p] for seat, p in row.seats.items()},
            judge=judge,
            judge_name=self.config.raw.judge.plugin,
            policy=policy,
            attempt=row.attempts,
        )
        try:
            await self.protocol.play(match)
            verdict = match.verdict()
        except (asyncio.CancelledError, StopRun):
            raise
        except Exception as exc:
            return Result(
                row=row,
                status=FAILED,
                started_at=started,
                finished_at=now(),
                # An API key a provider echoes back (a 401 body) is never stored.
                error=redact(f"{type(exc).__name__}: {exc}"),
                tb=redact(traceback.format_exc()),
            )
        return Result(
            row=row,
            status=DONE,
            started_at=started,
            finished_at=now(),
            match=match,
            verdict=verdict,
        )


def build_protocol(registry: Registry, tournament: Any) -> Any:
    """The tournament's protocol, rebuilt from the config stored with it."""
    config = tournament.config or {}
    name = config.get("protocol", tournament.protocol)
    return registry.build("protocol", name, config.get("protocol_options") or {})
