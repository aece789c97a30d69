"""The engine: schedules a tournament into the ledger and plays what is not done yet.

Matches run as asyncio tasks, `concurrency` at a time, so agents that batch (local models) or
overlap (APIs) see many requests at once. Finished matches are written in small groups, each in
one transaction with its rating updates: a crash loses at most the matches in flight or not yet
written, and a re-run plays exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam

from arena_core.config import TournamentConfig
from arena_core.errors import ConfigError, UsageError
from arena_core.interfaces import Agent, Judge, Protocol
from arena_core.ledger import DONE, FAILED, Ledger, MatchRow, Rating, TurnRow, VerdictRow, now
from arena_core.match import CallPolicy, Match
from arena_core.ratings import RatingBook, outcome
from arena_core.registry import Registry
from arena_core.schedule import build_matches, sample_items
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

    @property
    def rate(self) -> float:
        return (self.done + self.failed) / self.wall if self.wall else 0.0


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
    ) -> None:
        self.ledger = ledger
        self.book = book
        self.worker = worker
        self.buffer: list[Result] = []
        self.seq = ledger.max_seq()
        self.stored = {r.player for r in ledger.ratings(book.pool)}
        self.on_written = on_written
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
        batch = self.take()
        self.write(batch)
        if self.on_written:
            for r in batch:
                self.on_written(r)

    def write(self, batch: list[Result]) -> None:
        """One transaction: turns, verdicts, match rows and the rating updates they cause.

        Runs off the event loop; only one write is in progress at a time, so the rating book
        and `seq` need no lock.
        """
        if not batch:
            return
        turns: list[dict[str, Any]] = []
        verdicts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        touched: set[str] = set()
        seq = self.seq
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
        rows = self.book.rows(sorted(touched))
        new = [r for r in rows if r["player"] not in self.stored]
        old = [
            {**r, "b_pool": r["pool"], "b_player": r["player"]}
            for r in rows
            if r["player"] in self.stored
        ]
        with self.ledger.engine.begin() as conn:
            if turns:
                conn.execute(TurnRow.__table__.insert(), turns)
            if verdicts:
                conn.execute(VerdictRow.__table__.insert(), verdicts)
            conn.execute(self._update_match, updates)
            if old:
                conn.execute(self._update_rating, old)
            if new:
                conn.execute(Rating.__table__.insert(), new)
        self.seq = seq
        self.stored.update(r["player"] for r in new)


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

    def __init__(self, config: TournamentConfig, registry: Registry, source: str = "") -> None:
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
        self.items = sample_items(
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
        self.agents: dict[str, Agent] = {
            p.name: self._build(
                "agent", p.agent, config.player_options[p.name], "players", f"player '{p.name}'"
            )
            for p in raw.players
        }
        self.judge: Judge = self._build(
            "judge", raw.judge.plugin, config.judge_options, "judge", None
        )

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

    def schedule(self, ledger: Ledger) -> int:
        """Write the tournament, its players and its pending matches; return the match count."""
        cfg, raw = self.config, self.config.raw
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
    ) -> RunSummary:
        """Play every pending (and with `retry_failed`, failed) match of the tournament."""
        cfg, raw = self.config, self.config.raw
        summary = RunSummary(tournament=cfg.name)
        summary.scheduled = self.schedule(ledger)
        todo = ledger.pending(cfg.name, retry_failed=retry_failed)
        summary.to_play = len(todo)
        if hook is not None:
            hook.arena_tournament_started(tournament=cfg.name, matches=len(todo))
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

        writer = Writer(ledger, book, worker or default_worker())
        queue: asyncio.Queue[MatchRow] = asyncio.Queue()
        for row in todo:
            queue.put_nowait(row)
        start = time.perf_counter()
        last_flush = start
        flushing: asyncio.Task[None] | None = None

        async def flush() -> None:
            # Writing (SQL and TrueSkill, ~0.3 ms a match) runs in a thread so the event loop
            # keeps serving agents meanwhile; one write at a time keeps finish order exact.
            batch = writer.take()
            if batch:
                await asyncio.to_thread(writer.write, batch)
                for r in batch:
                    written(r)
            summary.wall = time.perf_counter() - start
            if progress:
                progress(summary)

        def maybe_flush() -> None:
            nonlocal last_flush, flushing
            if flushing is not None and not flushing.done():
                return
            t = time.perf_counter()
            if len(writer.buffer) >= max_buffer or t - last_flush >= flush_every:
                last_flush = t
                flushing = asyncio.create_task(flush())

        async def work() -> None:
            while True:
                try:
                    row = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                writer.add(await self.play_one(row, agents, judge, policy))
                maybe_flush()

        tasks = [
            asyncio.create_task(work())
            for _ in range(min(raw.tournament.concurrency, max(1, len(todo))))
        ]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            summary.interrupted = True
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            if flushing is not None:
                await asyncio.gather(flushing, return_exceptions=True)
                if flushing.exception() is not None:
                    raise flushing.exception()  # type: ignore[misc]
            await flush()
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
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return Result(
                row=row,
                status=FAILED,
                started_at=started,
                finished_at=now(),
                error=f"{type(exc).__name__}: {exc}",
                tb=traceback.format_exc(),
            )
        return Result(
            row=row,
            status=DONE,
            started_at=started,
            finished_at=now(),
            match=match,
            verdict=verdict,
        )
