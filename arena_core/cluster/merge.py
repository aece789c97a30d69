"""`arena ledger merge`: fold SQLite shards (one per SLURM array task) into one ledger.

On clusters where no database is reachable from the compute nodes, each task writes its own
SQLite file on local or shared storage (never one file shared by several nodes) and the shards
are merged afterwards. Match ids are deterministic, so a match has the same id in every shard and
in the target: merging is idempotent (merging a shard twice changes nothing) and a match done in
any shard is written to the target once.

Rules per match id: done in the target -> kept as it is; otherwise the best shard copy wins
(done over failed over pending; the earliest finish among done copies) and replaces the target's
row with its turns and verdicts. Newly done matches get `finished_seq` after the target's last, in
order of their finish time, and the ratings of every touched pool are replayed in that order, in
the same transaction and under the same lock as live writers, so live ratings equal a recompute.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from arena_core.errors import UsageError
from arena_core.ledger import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    ItemRow,
    Ledger,
    MatchRow,
    Player,
    Rating,
    Tournament,
    TurnRow,
    VerdictRow,
    advisory_key,
)
from arena_core.ledger.store import _insert, insert_items

_RANK = {DONE: 3, FAILED: 2, PENDING: 1, RUNNING: 1}
_FINISH_LOCK = advisory_key("arena:finish")  # the lock engine.Writer takes to write finishes
_CHUNK = 500


@dataclass
class MergeReport:
    shards: int = 0
    matches: int = 0  # distinct match ids seen in the shards
    added: int = 0  # rows the target did not have
    finished: int = 0  # done results written into the target
    failed: int = 0  # failures recorded (the target had the match pending)
    unchanged: int = 0  # the target already had it done, or in the same state
    conflicts: list[str] = field(default_factory=list)  # done in both, different winner
    pools: list[str] = field(default_factory=list)  # ratings replayed

    @property
    def changed(self) -> bool:
        return bool(self.added or self.finished or self.failed)


def shard_url(shard: str) -> str:
    """A shard may be given as a path to a SQLite file or as a URL."""
    if "://" in shard:
        return shard
    if not os.path.exists(shard):
        raise UsageError(f"no shard at {shard}")
    return f"sqlite:///{os.path.abspath(shard)}"


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _rows(conn: Connection, table: Any, column: Any, ids: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for chunk in _chunks(ids):
        out.extend(dict(r._mapping) for r in conn.execute(select(table).where(column.in_(chunk))))
    return out


def merge(shards: Sequence[str], into: str) -> MergeReport:
    """Merge the ledgers `shards` into the ledger at `into` (created if new). Idempotent."""
    if not shards:
        raise UsageError("give at least one shard to merge")
    target = Ledger(into)
    report = MergeReport(shards=len(shards))
    best: dict[str, tuple[dict[str, Any], int]] = {}  # id -> (match row, shard index)
    # Shards on a network filesystem are fine to read from one host: no warning for them.
    sources = [Ledger(shard_url(s), create=False, check_fs=False) for s in shards]
    mt = MatchRow.__table__
    try:
        for i, src in enumerate(sources):
            for t in src.tournaments():
                target.ensure_tournament(
                    t.name, t.protocol, t.pool, t.config_hash, t.config, t.source
                )
            _merge_players(src, target)
            _merge_items(src, target)
            with src.engine.connect() as conn:
                for r in conn.execute(select(mt)):
                    row = dict(r._mapping)
                    if row["status"] == RUNNING:  # a task killed mid-match: not played
                        row["status"] = PENDING
                    if _better(row, best.get(row["id"], (None, 0))[0]):
                        best[row["id"]] = (row, i)
        report.matches = len(best)
        _fold(target, sources, best, report)
    finally:
        for src in sources:
            src.close()
        target.close()
    return report


def _better(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    if old is None:
        return True
    if _RANK[new["status"]] != _RANK[old["status"]]:
        return _RANK[new["status"]] > _RANK[old["status"]]
    if new["status"] == DONE:
        return _finish_key(new) < _finish_key(old)
    return False


def _finish_key(row: dict[str, Any]) -> tuple[bool, datetime, str]:
    return (row["finished_at"] is None, row["finished_at"] or datetime.min, row["id"])


def _merge_players(src: Ledger, target: Ledger) -> None:
    pt = Player.__table__
    with src.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(pt))]
    if not rows:
        return
    # Same checks as scheduling: a player's name must mean one configuration in the target.
    target.ensure_players((r["name"], r["agent"], r["options"]) for r in rows)
    with target.engine.begin() as conn:
        for r in rows:  # keep lineage (parent, learner run) where the target has none
            if r["parent"] is not None or r["learner_run"] is not None:
                conn.execute(
                    pt.update()
                    .where(pt.c.name == r["name"], pt.c.parent.is_(None))
                    .values(parent=r["parent"], learner_run=r["learner_run"])
                )


def _merge_items(src: Ledger, target: Ledger) -> None:
    """Item snapshots the shard's matches reference (content-keyed: the same key is the same
    item, so the target keeps what it has)."""
    it = ItemRow.__table__
    with src.engine.connect() as conn:
        items = {k: d for k, d in conn.execute(select(it.c.key, it.c.data))}
    with target.engine.begin() as conn:
        insert_items(conn, items)


def _fold(
    target: Ledger,
    sources: list[Ledger],
    best: dict[str, tuple[dict[str, Any], int]],
    report: MergeReport,
) -> None:
    mt, tt, vt = MatchRow.__table__, TurnRow.__table__, VerdictRow.__table__
    ids = sorted(best)
    with target.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FINISH_LOCK})
        have: dict[str, str] = {}
        for chunk in _chunks(ids):
            have.update(conn.execute(select(mt.c.id, mt.c.status).where(mt.c.id.in_(chunk))).all())
        inserts: list[dict[str, Any]] = []
        finished: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for mid in ids:
            row, _ = best[mid]
            status = have.get(mid)
            if status == DONE:
                if row["status"] == DONE:
                    _check_same(conn, sources[best[mid][1]], mid, report)
                report.unchanged += 1
            elif status is None:
                report.added += 1
                inserts.append({**row, "finished_seq": None})
                if row["status"] == DONE:
                    finished.append(row)
                elif row["status"] == FAILED:
                    report.failed += 1
            elif row["status"] == DONE:
                finished.append(row)  # replaces the target's pending, running or failed row
            elif row["status"] == FAILED and status in (PENDING, RUNNING):
                failures.append(row)
            else:
                report.unchanged += 1
        if inserts:
            # Insert as pending first; done ones are completed below like any other.
            pending = [
                {**r, "status": r["status"] if r["status"] != DONE else PENDING} for r in inserts
            ]
            conn.execute(_insert(conn, mt).on_conflict_do_nothing(), pending)
        for row in failures:
            report.failed += 1
            conn.execute(mt.update().where(mt.c.id == row["id"]).values(**_outcome(row)))
        if finished:
            seq = conn.execute(select(func.coalesce(func.max(mt.c.finished_seq), 0))).scalar_one()
            finished.sort(key=_finish_key)
            by_shard: dict[int, list[str]] = {}
            for row in finished:
                by_shard.setdefault(best[row["id"]][1], []).append(row["id"])
            done_ids = [r["id"] for r in finished]
            for chunk in _chunks(done_ids):  # a failed target row has none; be safe anyway
                conn.execute(tt.delete().where(tt.c.match_id.in_(chunk)))
                conn.execute(vt.delete().where(vt.c.match_id.in_(chunk)))
            for i, mids in by_shard.items():
                with sources[i].engine.connect() as sconn:
                    turns = _rows(sconn, tt, tt.c.match_id, mids)
                    verdicts = _rows(sconn, vt, vt.c.match_id, mids)
                for t in turns:
                    t.pop("id", None)
                if turns:
                    conn.execute(tt.insert(), turns)
                if verdicts:
                    conn.execute(vt.insert(), verdicts)
            for row in finished:
                seq += 1
                conn.execute(
                    mt.update()
                    .where(mt.c.id == row["id"])
                    .values(**_outcome(row), finished_seq=seq)
                )
            report.finished = len(finished)
            report.pools = _replay_pools(conn, {r["tournament"] for r in finished})


def _outcome(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "attempts", "error", "traceback", "worker", "started_at", "finished_at")
    return {k: row[k] for k in keys}


def _check_same(conn: Connection, src: Ledger, mid: str, report: MergeReport) -> None:
    """A match done in both places should have the same winner (deterministic agents)."""
    vt = VerdictRow.__table__
    q = select(vt.c.winner_seat).where(vt.c.match_id == mid, vt.c.node == -1)
    mine = conn.execute(q).scalar()
    with src.engine.connect() as sconn:
        theirs = sconn.execute(q).scalar()
    if mine != theirs:
        report.conflicts.append(mid)


def _replay_pools(conn: Connection, tournaments: set[str]) -> list[str]:
    """Recompute the ratings of the pools these tournaments count in, inside `conn`."""
    from arena_core.ratings import RatingBook, outcome

    tb, mt, vt, rt = (
        Tournament.__table__,
        MatchRow.__table__,
        VerdictRow.__table__,
        Rating.__table__,
    )
    rows = conn.execute(select(tb.c.name, tb.c.pool, tb.c.config).order_by(tb.c.created_at)).all()
    pools = sorted({pool for name, pool, _ in rows if name in tournaments})
    for pool in pools:
        names = [name for name, p, _ in rows if p == pool]
        settings = next((dict(c.get("ratings") or {}) for n, p, c in rows if p == pool), {})
        book = RatingBook.create(pool, settings)
        q = (
            select(mt.c.seats, vt.c.winner_seat)
            .join(vt, (vt.c.match_id == mt.c.id) & (vt.c.node == -1))
            .where(mt.c.status == DONE, mt.c.tournament.in_(names))
            .order_by(mt.c.finished_seq)
        )
        for seats, winner in conn.execute(q):
            res = outcome(seats, winner)
            if res is not None:
                book.update(*res)
        conn.execute(rt.delete().where(rt.c.pool == pool))
        if book.players:
            conn.execute(rt.insert(), book.rows())
    return pools
