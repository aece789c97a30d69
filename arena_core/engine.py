"""The engine: schedules a tournament into the ledger and plays what is not done yet.

Matches run as asyncio tasks, `concurrency` at a time, so agents that batch (local models) or
overlap (APIs) see many requests at once. Finished matches are written in small groups, each in
one transaction with its rating updates: a crash loses at most the matches in flight or not yet
written, and a re-run plays exactly those.

Two ways to find work. A single process on SQLite reads the pending matches once into an
in-memory queue (the fast path). On a shared ledger (Postgres, or several local workers) each
process claims batches of pending matches (`Ledger.claim`), heartbeats its claims, takes back
claims whose worker went silent, and writes a match only while it still holds the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import Connection

from arena_core.config import TournamentConfig
from arena_core.errors import ConfigError, UsageError
from arena_core.interfaces import Agent, Judge, Protocol
from arena_core.ledger import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
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
from arena_core.schedule import build_matches, sample_items
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

    row: MatchRow
    status: str
    started_at: Any
    finished_at: Any
    match: Match | None = None
    verdict: Verdict | None = None
    error: str | None = None
    tb: str | None = None


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
        mt = MatchRow.__table__
        self._update_match = (
            mt.update()
            .where(mt.c.id == bindparam("b_id"))
            .values(
                status=bindparam("status"),
                attempts=bindparam("attempts"),
                error=bindparam("error"),
                traceback=bindparam("traceback"),
                worker=bindparam("worker"),
                started_at=bindparam("started_at"),
                finished_at=bindparam("finished_at"),
                finished_seq=bindparam("finished_seq"),
            )
        )
        rt = Rating.__table__
        self._update_rating = (
            rt.update()
            .where(rt.c.pool == bindparam("b_pool"), rt.c.player == bindparam("b_player"))
            .values(
                mu=bindparam("mu"),
                sigma=bindparam("sigma"),
                matches=bindparam("matches"),
                wins=bindparam("wins"),
                losses=bindparam("losses"),
                draws=bindparam("draws"),
                updated_at=bindparam("updated_at"),
            )
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
        old = [
            {**r, "b_pool": r["pool"], "b_player": r["player"]}
            for r in rows
            if r["player"] in self.stored
        ]
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
        with self.ledger.engine.begin() as conn:
            held = dict(
                conn.execute(
                    mt.update()
                    .where(mt.c.id.in_(ids), mt.c.worker == self.worker, mt.c.status == RUNNING)
                    .values(heartbeat_at=self.ledger.db_now())
                    .returning(mt.c.id, mt.c.claimed_at)
                ).all()
            )
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
            old = [
                {**r, "b_pool": r["pool"], "b_player": r["player"]}
                for r in rows
                if r["player"] in self.stored
            ]
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
            conn.execute(TurnRow.__table__.insert(), turns)
        if verdicts:
            conn.execute(VerdictRow.__table__.insert(), verdicts)
        conn.execute(self._update_match, updates)
        if old:
            conn.execute(self._update_rating, old)
        if new:
            conn.execute(Rating.__table__.insert(), new)

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


class Claimer:
    """Feeds the engine's tasks from a shared ledger, claiming a batch of matches at a time.

    Tops up in the background when half a batch is left, so tasks rarely wait for a claim. When
    nothing is pending it takes back stale claims of dead workers, and waits (bounded polling)
    while other workers still hold matches that could come back; then it is finished.
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
    ) -> None:
        self.ledger = ledger
        self.idle = idle  # called before waiting: results still buffered must be written first
        self.tournament = tournament
        self.worker = worker
        self.batch = max(1, batch)
        self.stale_after = stale_after
        self.poll = poll
        self.forever = forever
        self.rows: deque[MatchRow] = deque()
        self.lock = asyncio.Lock()
        self.finished = False
        self.claimed = 0
        self.latencies: list[float] = []
        self._topping: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[list[MatchRow]]] = set()

    async def _claim(self) -> int:
        t0 = time.perf_counter()
        # Shielded and remembered: a run cancelled (Ctrl-C, SIGTERM) while a claim is in its
        # thread must wait for that claim to commit before releasing, or the rows it claims
        # stay `running` under a worker that is gone.
        claiming = asyncio.ensure_future(
            asyncio.to_thread(self.ledger.claim, self.tournament, self.worker, self.batch)
        )
        self._inflight.add(claiming)
        claiming.add_done_callback(self._inflight.discard)
        rows = await asyncio.shield(claiming)
        self.latencies.append(time.perf_counter() - t0)
        self.rows.extend(rows)
        self.claimed += len(rows)
        return len(rows)

    async def _top_up(self) -> None:
        async with self.lock:
            if len(self.rows) < self.batch // 2 and not self.finished:
                await self._claim()

    async def next(self) -> MatchRow | None:
        while True:
            if self.rows:
                row = self.rows.popleft()
                if (
                    len(self.rows) < self.batch // 2
                    and not self.lock.locked()
                    and not self.finished
                ):
                    self._topping = asyncio.create_task(self._top_up())
                return row
            if self.finished:
                return None
            async with self.lock:
                if self.rows or self.finished:
                    continue
                if await self._claim():
                    continue
                if self.idle is not None:
                    # Write what this worker has finished before waiting on others: they may be
                    # waiting for exactly these matches to stop being `running`.
                    await self.idle()
                ledger, t = self.ledger, self.tournament
                # Never its own claims: a worker starved of CPU past `stale_after` would
                # otherwise take back its own matches in flight and drop their results.
                if await asyncio.to_thread(ledger.take_back, t, self.stale_after, keep=self.worker):
                    continue
                if await asyncio.to_thread(ledger.take_back_dead, t):
                    continue
                busy = await asyncio.to_thread(ledger.running_elsewhere, t, self.worker)
                if not busy and not self.forever:
                    self.finished = True
                    continue
                await asyncio.sleep(self.poll)  # others hold matches: wait for them or their death

    async def close(self) -> list[MatchRow]:
        """Stop topping up; the claimed matches that were never started."""
        self.finished = True
        if self._topping is not None:
            await asyncio.gather(self._topping, return_exceptions=True)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        left = list(self.rows)
        self.rows.clear()
        return left


def verdict_row(row: MatchRow, node: int, v: Verdict) -> dict[str, Any]:
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
        self.rows = build_matches(
            tournament=config.name,
            protocol_name=raw.tournament.protocol,
            protocol=self.protocol,
            items=self.items,
            players=[p.name for p in raw.players],
            kind=raw.schedule.kind,
            red=raw.schedule.red,
            repetitions=raw.tournament.repetitions,
            seed=raw.tournament.seed,
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
        ledger.add_matches(self.rows)
        return len(self.rows)

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
        per: dict[tuple[str, str], int] = {}
        for r in self.rows:
            key = (r["protocol"], " vs ".join(sorted(r["seats"].values())) or "(no seats)")
            per[key] = per.get(key, 0) + 1
        status: dict[str, str] = {}  # match id -> status, of the matches already stored
        refused = None
        if ledger is not None:
            try:
                self.check(ledger)
            except UsageError as exc:
                refused = str(exc)
            else:
                mt = MatchRow.__table__
                q = select(mt.c.id, mt.c.status).where(mt.c.tournament == cfg.name)
                with ledger.engine.connect() as conn:
                    status = {i: st for i, st in conn.execute(q)}
        wanted = {PENDING, FAILED} if retry_failed else {PENDING}
        ids = {r["id"] for r in self.rows} | set(status)
        n = sum(1 for i in ids if status.get(i, PENDING) in wanted and (only is None or i in only))
        return Plan(
            tournament=cfg.name,
            protocol=raw.tournament.protocol,
            items=len(self.items),
            scheduled=len(self.rows),
            per_pair=per,
            stored=dict(Counter(status.values())),
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
        """
        cfg, raw = self.config, self.config.raw
        local = claim is None and not ledger.shared  # one process: claims all it reads at once
        claim = ledger.shared if claim is None else claim
        if claim and (limit is not None or only is not None):
            raise UsageError(
                "--limit and --items play from one process: not with --workers or a shared "
                "(Postgres) ledger"
            )
        summary = RunSummary(tournament=cfg.name)
        summary.scheduled = self.schedule(ledger) if schedule else len(self.rows)
        me = worker or default_worker()
        claimer: Claimer | None = None
        queue: asyncio.Queue[MatchRow] = asyncio.Queue()
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
            )
        elif local:
            if retry_failed:
                ledger.reset_failed(cfg.name)
            # Claims left by an earlier run under this very name (a write that failed, say):
            # no other process plays under it, so they are this run's to play.
            ledger.release(me, cfg.name)
            ledger.take_back_dead(cfg.name)
            ledger.take_back(cfg.name, stale_after)
            todo = ledger.claim_all(cfg.name, me, ids=only, limit=limit)
            summary.to_play = len(todo)
            for row in todo:
                queue.put_nowait(row)
            summary.held_elsewhere = ledger.holders(cfg.name, besides=me)
        else:
            todo = ledger.pending(cfg.name, retry_failed=retry_failed)
            if only is not None:
                todo = [r for r in todo if r.id in only]
            todo = todo[:limit] if limit is not None else todo
            summary.to_play = len(todo)
            for row in todo:
                queue.put_nowait(row)
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
            if hook is not None:
                hook.arena_match_finished(
                    match=r.row.model_dump(mode="json"), verdict=r.verdict, error=r.error
                )

        writer = Writer(ledger, book, me, claimed=claim or local)
        start = time.perf_counter()
        last_flush = start
        flushing: asyncio.Task[None] | None = None

        async def flush() -> None:
            # Writing (SQL and TrueSkill, ~0.3 ms a match) runs in a thread so the event loop
            # keeps serving agents meanwhile; one write at a time keeps finish order exact.
            batch = writer.take()
            if batch:
                done = await asyncio.to_thread(writer.write, batch)
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

        if claimer is not None:
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

        async def work() -> None:
            while True:
                if claimer is not None:
                    row = await claimer.next()
                    if row is None:
                        return
                else:
                    try:
                        row = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                writer.add(await self.play_one(row, agents, judge, policy))
                maybe_flush()

        async def beat() -> None:
            # From the event loop on purpose: a loop that hangs stops heartbeating, and its
            # claims go to a live worker.
            while True:
                await asyncio.sleep(heartbeat_every)
                try:
                    await asyncio.to_thread(ledger.heartbeat, me)
                    # Taking back is for claiming: once the claimer is finished nobody here
                    # would play what it freed, so it is left to a worker still claiming.
                    if claimer is not None and not claimer.finished:
                        await asyncio.to_thread(ledger.take_back, cfg.name, stale_after, keep=me)
                except Exception as exc:  # a blip of the database must not end the run
                    log.warning("heartbeat failed: %s", exc)

        n_tasks = raw.tournament.concurrency if claim else max(1, summary.to_play)
        tasks = [
            asyncio.create_task(work()) for _ in range(min(raw.tournament.concurrency, n_tasks))
        ]
        beating = asyncio.create_task(beat()) if claim or local else None
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
                if claimer is not None:
                    await claimer.close()
                    summary.claim_latencies = claimer.latencies
                if claimer is not None or local:
                    # Claims not written (never started, interrupted, or failed to write) go
                    # back now rather than after the stale timeout.
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(ledger.release, me, cfg.name)
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

    async def play_one(
        self, row: MatchRow, agents: dict[str, Agent], judge: Judge, policy: CallPolicy
    ) -> Result:
        started = now()
        item = Item.model_validate(row.item)
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
