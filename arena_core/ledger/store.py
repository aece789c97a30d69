"""The Ledger store: opening, creating and querying the tables of `tables.py`, and claims.

SQLite (WAL) by default; the schema uses only portable types so Postgres (psycopg 3) follows
unchanged. Hot paths (scheduling thousands of matches, writing finished ones) use SQLAlchemy Core
bulk statements on the same tables: the ORM's per-object bookkeeping would cost more than the
matches themselves.

Several processes share one ledger by claiming matches (`claim`, `heartbeat`, `take_back`): a
claimed match is `running` under a worker name until that worker writes it; a worker that stops
heartbeating loses its claims to whoever takes them back. The schema is versioned with alembic
(`arena_core/migrations`); a fresh ledger is stamped with the head revision when it is created.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    event,
    func,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, SQLModel, create_engine, select

from arena_core.errors import UsageError, suggest
from arena_core.ledger.migrations import HEAD, LEGACY_BASE
from arena_core.ledger.tables import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    ItemRow,
    MatchRow,
    Player,
    Rating,
    Tournament,
    TurnRow,
    VerdictRow,
    now,
)

DEFAULT_LEDGER = "sqlite:///arena.db"


# Filesystems where SQLite's locks and WAL shared memory do not work across hosts.
NETWORK_FS = {"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "9p"}
MOUNTS = "/proc/mounts"
_UNCLAIMED = {"status": PENDING, "worker": None, "claimed_at": None, "heartbeat_at": None}


# alembic's own bookkeeping table, declared here so a fresh ledger is stamped without importing
# alembic (an optional extra, and slow to import).
VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
_SCHEMA_LOCK = 0x41524E41  # pg advisory lock id: only one process creates the tables


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("ARENA_LEDGER") or DEFAULT_LEDGER


def sqlite_path(url: str) -> str | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1] if "///" in url else ""
    return None if path in ("", ":memory:") else path


def filesystem_type(path: str | os.PathLike[str], mounts: str | None = None) -> str | None:
    """The filesystem type of the mount that holds `path` (Linux /proc/mounts; None elsewhere)."""
    target = os.path.realpath(path)
    best, fstype = "", None
    try:
        with open(mounts or MOUNTS, encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ").replace("\\011", "\t")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, fstype = point, parts[2]
    except OSError:
        return None
    return fstype


class SharedFilesystemWarning(UserWarning):
    """A SQLite ledger on a network filesystem: locking breaks once two hosts open it."""


def warn_if_network_fs(path: str, mounts: str | None = None) -> str | None:
    """Warn when a SQLite ledger lives on NFS, Lustre, GPFS, CIFS or FUSE; return the type.

    SQLite's WAL mode needs shared memory on one host and POSIX locks that these filesystems do
    not honour across nodes, so two nodes writing one file corrupt it or deadlock. The fix is one
    shard per task (`arena slurm submit`) merged afterwards, or a Postgres ledger.
    """
    folder = os.path.dirname(os.path.abspath(path)) or "."
    fstype = filesystem_type(folder, mounts)
    if fstype and (fstype in NETWORK_FS or fstype.startswith("fuse")):
        warnings.warn(
            f"the SQLite ledger {path} is on a {fstype} filesystem: never share one SQLite file "
            f"across nodes (WAL needs shared memory on one host); give each task its own shard "
            f"and `arena ledger merge` them, or use a postgresql+psycopg:// ledger",
            SharedFilesystemWarning,
            stacklevel=3,
        )
        return fstype
    return None


def raw_engine(url: str) -> Engine:
    """An engine with the ledger's connection settings, without touching the schema."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif url.startswith("postgresql"):
        # Every session reads and writes timestamps in UTC, whatever the server's zone.
        kwargs["connect_args"] = {"options": "-c timezone=UTC"}
    try:
        engine = create_engine(url, **kwargs)
    except Exception as exc:  # bad URL, missing driver
        raise UsageError(f"cannot open ledger {url!r}: {exc}") from None
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_engine(url: str | None = None, *, create: bool = True, check_fs: bool = True) -> Engine:
    """Open (by default create) a ledger; a missing SQLite file is an error when not creating.

    A ledger whose schema is not the head revision is refused with the command that upgrades
    it: reading it with newer models would fail later with a less helpful SQL error.
    `check_fs=False` skips the network-filesystem warning (reading published shards).
    """
    url = resolve_url(url)
    path = sqlite_path(url)
    if path is not None:
        if not create and not os.path.exists(path):
            raise UsageError(f"no ledger at {url} (run a tournament first, or pass --ledger)")
        if check_fs:
            warn_if_network_fs(path)
    engine = raw_engine(url)
    try:
        prepare_schema(engine, create=create)
    except UsageError:
        engine.dispose()
        raise
    except Exception as exc:  # unreachable server, wrong password, not a database
        engine.dispose()
        raise UsageError(f"cannot open ledger {url!r}: {exc}") from None
    return engine


def schema_version(conn: Connection) -> str | None:
    """The stamped revision; LEGACY_BASE for tables made before versioning; None when empty."""
    insp = inspect(conn)
    if insp.has_table("alembic_version"):
        return conn.execute(select(VERSION_TABLE.c.version_num)).scalar()
    if insp.has_table("match"):
        return LEGACY_BASE
    return None


def prepare_schema(engine: Engine, *, create: bool) -> None:
    """Create and stamp the tables of an empty ledger; refuse one at another revision."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
        version = schema_version(conn)
        if version is None:
            if not create:
                raise UsageError(f"{engine.url!r} holds no ledger (run a tournament first)")
            SQLModel.metadata.create_all(conn)
            VERSION_TABLE.create(conn, checkfirst=True)
            conn.execute(VERSION_TABLE.insert(), {"version_num": HEAD})
        elif version != HEAD:
            url = engine.url.render_as_string(hide_password=True)
            raise UsageError(
                f"the ledger {url} has schema revision {version!r}; this arena needs {HEAD!r}: "
                f"run `arena ledger upgrade --ledger {url}` (back it up first)"
            )


# --- items: stored once, by content -----------------------------------------------------------

# Content-addressed, so one cache serves every ledger of the process; bounded by count. Matches of
# one item share the cached dict instead of each holding a parsed copy.
_ITEM_CACHE: OrderedDict[str, dict[str, Any]] = OrderedDict()
_ITEM_CACHE_SIZE = 4096


def item_key(snapshot: dict[str, Any]) -> str:
    """The key an item snapshot is stored under: a hash of its canonical JSON."""
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _cache(key: str, data: dict[str, Any]) -> dict[str, Any]:
    _ITEM_CACHE[key] = data
    _ITEM_CACHE.move_to_end(key)
    while len(_ITEM_CACHE) > _ITEM_CACHE_SIZE:
        _ITEM_CACHE.popitem(last=False)
    return data


def load_items(conn: Connection, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The snapshots of these keys, from the cache or in one query per 500 missing."""
    out: dict[str, dict[str, Any]] = {}
    missing = []
    for key in set(keys):
        if key in _ITEM_CACHE:
            out[key] = _ITEM_CACHE[key]
        else:
            missing.append(key)
    it = ItemRow.__table__
    for i in range(0, len(missing), 500):
        rows = conn.execute(select(it.c.key, it.c.data).where(it.c.key.in_(missing[i : i + 500])))
        for key, data in rows:
            out[key] = _cache(key, data)
    return out


def hydrate_items(conn: Connection, rows: Sequence[MatchRow]) -> None:
    """Fill `item` of match rows built outside the ORM's load (claims read with Core)."""
    todo = [r for r in rows if r.item_key is not None and not r.item]
    found = load_items(conn, (r.item_key for r in todo if r.item_key))
    for r in todo:
        set_committed_value(r, "item", found.get(r.item_key or ""))


@event.listens_for(MatchRow, "load")
def _fill_item(target: MatchRow, context: Any) -> None:
    """Every MatchRow the ORM loads carries its item, as when each row stored a copy."""
    if target.item_key is not None and not target.item:
        conn = context.session.connection()
        set_committed_value(target, "item", load_items(conn, [target.item_key])[target.item_key])


def split_items(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Match rows with their item snapshots replaced by keys, and the snapshots by key.

    Rows of one item share one snapshot object (schedule.build_matches), so each is hashed once.
    """
    keys: dict[int, str] = {}
    items: dict[str, Any] = {}
    out = []
    for r in rows:
        snap = r.get("item")
        if snap is None or r.get("item_key"):
            out.append(r)
            continue
        key = keys.get(id(snap))
        if key is None:
            key = keys[id(snap)] = item_key(snap)
            items[key] = snap
        out.append({**r, "item": None, "item_key": key})
    return out, items


def insert_items(conn: Connection, items: dict[str, Any]) -> None:
    """Store snapshots not stored yet (another process may store the same one meanwhile)."""
    if not items:
        return
    it = ItemRow.__table__
    keys = list(items)
    have: set[str] = set()
    for i in range(0, len(keys), 500):
        have.update(conn.execute(select(it.c.key).where(it.c.key.in_(keys[i : i + 500]))).scalars())
    new = [{"key": k, "data": items[k]} for k in keys if k not in have]
    if new:
        conn.execute(_insert(conn, it).on_conflict_do_nothing(), new)


class Ledger:
    """Reads and writes the ledger. One instance per process; sessions are short-lived."""

    def __init__(
        self, url: str | None = None, *, create: bool = True, check_fs: bool = True
    ) -> None:
        self.url = resolve_url(url)
        self.engine = open_engine(self.url, create=create, check_fs=check_fs)

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
                try:
                    s.commit()
                    return
                except IntegrityError:  # another process created it meanwhile: compare with it
                    s.rollback()
                    row = s.get(Tournament, name)
            if row is not None and row.config_hash != config_hash:
                raise UsageError(
                    f"tournament '{name}' is already in the ledger with a different config "
                    f"(players, protocol, judge, dataset or seed changed); give the tournament a "
                    f"new [tournament] name, or use another --ledger"
                )

    def ensure_players(self, players: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        wanted = list(players)
        for tries in range(2):  # a second pass when another process added the same players
            try:
                with self.session() as s:
                    for name, agent, options in wanted:
                        row = s.get(Player, name)
                        if row is None:
                            s.add(Player(name=name, agent=agent, options=options))
                        elif row.agent != agent or row.options != options:
                            raise UsageError(
                                f"player '{name}' is already in the ledger as agent "
                                f"'{row.agent}' with options {json.dumps(row.options)}; a "
                                f"player's name must mean one configuration: rename the new one"
                            )
                    s.commit()
                return
            except IntegrityError:
                if tries:
                    raise

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
            new, items = split_items([r for r in rows if r["id"] not in existing])
            if new:
                insert_items(conn, items)
                # Several processes may schedule the same tournament at once: a row another one
                # inserted meanwhile is skipped, not an error.
                conn.execute(_insert(conn, table).on_conflict_do_nothing(), new)
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

    def outcomes(self, pool: str) -> Iterator[tuple[dict[str, str], str | None]]:
        """(seats, winning seat) of the pool's finished matches in finish order, streamed.

        Only the two columns ratings need, read in chunks: a recompute of 100k matches builds no
        match or verdict objects and holds no item in memory (`done_with_verdicts` does both).
        """
        mt, vt = MatchRow.__table__, VerdictRow.__table__
        names = select(Tournament.name).where(Tournament.pool == pool)
        q = (
            select(mt.c.seats, vt.c.winner_seat)
            .join(vt, (vt.c.match_id == mt.c.id) & (vt.c.node == -1))
            .where(mt.c.status == DONE, mt.c.tournament.in_(names.scalar_subquery()))
            .order_by(mt.c.finished_seq)
            .execution_options(yield_per=2000)
        )
        with self.engine.connect() as conn:
            for seats, winner in conn.execute(q):
                yield (json.loads(seats) if isinstance(seats, str) else seats), winner

    def tournament(self, name: str) -> Tournament:
        with self.session() as s:
            row = s.get(Tournament, name)
        if row is None:
            known = [t.name for t in self.tournaments()]
            raise UsageError(f"no tournament '{name}' in {self.url}{suggest(name, known)}")
        return row

    # --- claims: several workers on one ledger ---------------------------------------------------

    @property
    def shared(self) -> bool:
        """Whether other processes are expected to play this ledger too (a server database)."""
        return self.engine.dialect.name != "sqlite"

    def db_now(self) -> Any:
        """The time claims are stamped and judged with: the server's where there is one, so that
        workers on machines with skewed clocks agree on what is stale."""
        return func.now() if self.shared else now()

    def claim(self, tournament: str, worker: str, limit: int) -> list[MatchRow]:
        """Mark up to `limit` pending matches `running` under `worker` and return them.

        Postgres: `SELECT ... FOR UPDATE SKIP LOCKED` in a materialised CTE, so concurrent
        claimers skip each other's rows instead of queueing on them, and each row is claimed
        once. SQLite: one UPDATE statement holds the database's write lock, which serialises
        claimers the same way.
        """
        mt = MatchRow.__table__
        clock = self.db_now()
        pick = (
            select(mt.c.id)
            .where(mt.c.tournament == tournament, mt.c.status == PENDING)
            .order_by(mt.c.order_key)
            .limit(limit)
        )
        values = {
            "status": RUNNING,
            "worker": worker,
            "claimed_at": clock,
            "heartbeat_at": clock,
        }
        if self.shared:
            cte = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
            stmt = mt.update().where(mt.c.id == cte.c.id)
        else:
            stmt = mt.update().where(mt.c.id.in_(pick.scalar_subquery()))
        stmt = stmt.values(**values).returning(*mt.c)
        with self.engine.begin() as conn:
            rows = [MatchRow(**dict(r._mapping)) for r in conn.execute(stmt)]
            hydrate_items(conn, rows)
        rows.sort(key=lambda r: r.order_key)
        return rows

    def _update_unlocked(self, conds: list[Any], values: dict[str, Any]) -> int:
        """UPDATE the matches meeting `conds`, skipping rows another transaction has locked.

        On Postgres the heartbeat, take-back and release never wait for a row a writer is
        finishing (that row is about to stop being `running` anyway), so they cannot deadlock
        with a writer that locks its rows in another order.
        """
        mt = MatchRow.__table__
        if self.shared:
            cte = (
                select(mt.c.id)
                .where(*conds)
                .with_for_update(skip_locked=True)
                .cte("locked")
                .prefix_with("MATERIALIZED")
            )
            stmt = mt.update().where(mt.c.id == cte.c.id)
        else:
            stmt = mt.update().where(*conds)
        with self.engine.begin() as conn:
            res = conn.execute(stmt.values(**values))
        return int(res.rowcount or 0)

    def heartbeat(self, worker: str) -> int:
        """Refresh every claim of `worker`; returns how many it still holds."""
        mt = MatchRow.__table__
        return self._update_unlocked(
            [mt.c.worker == worker, mt.c.status == RUNNING], {"heartbeat_at": self.db_now()}
        )

    def take_back(
        self, tournament: str | None, stale_after: float, *, keep: str | None = None
    ) -> int:
        """Return to pending every running match whose heartbeat is older than `stale_after` s.

        Its worker died or hung; if it comes back, its finish write finds the match no longer
        claimed by it and is discarded (`Writer` in claim mode), so nothing is written twice.
        Attempts are not counted up: the replay has the same seed as an uninterrupted run.
        `keep` (the caller) never loses its own claims: it is alive, if slow on a loaded host.
        """
        mt = MatchRow.__table__
        cutoff = self.db_now() - timedelta(seconds=stale_after)
        conds = [mt.c.status == RUNNING, mt.c.heartbeat_at < cutoff]
        if tournament is not None:
            conds.append(mt.c.tournament == tournament)
        if keep is not None:
            conds.append(mt.c.worker != keep)
        return self._update_unlocked(conds, _UNCLAIMED)

    def release(self, worker: str) -> int:
        """Give back every claim `worker` still holds (it is stopping): pending again at once."""
        mt = MatchRow.__table__
        return self._update_unlocked([mt.c.worker == worker, mt.c.status == RUNNING], _UNCLAIMED)

    def running_elsewhere(self, tournament: str, worker: str) -> int:
        """Matches of the tournament that other workers hold: they may still come back."""
        mt = MatchRow.__table__
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(mt)
                    .where(
                        mt.c.tournament == tournament,
                        mt.c.status == RUNNING,
                        (mt.c.worker != worker) | mt.c.worker.is_(None),
                    )
                ).scalar_one()
            )

    def reset_failed(self, tournament: str) -> int:
        """Failed matches back to pending, so that claimers play them again (`--retry-failed`)."""
        mt = MatchRow.__table__
        with self.engine.begin() as conn:
            res = conn.execute(
                mt.update()
                .where(mt.c.tournament == tournament, mt.c.status == FAILED)
                .values(status=PENDING, worker=None)
            )
        return int(res.rowcount or 0)

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


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_nothing` (SQLite and Postgres alike)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
