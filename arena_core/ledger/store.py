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

import contextlib
import hashlib
import itertools
import json
import os
import socket
import warnings
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    JudgeRow,
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
    # Up to 64 MiB of pages per connection (SQLite's default is 2 MB): a million-match ledger
    # is 400 MB, and claims and writes reach its rows by a hashed id, all over the file. With
    # the default, CPU per match there was 1.23x that of a small ledger; 64 MiB cut it by 11%
    # (measured: 1M scheduled, 50k played). A small ledger never fills it.
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def _sqlite_ro_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """A read-only connection: no journal-mode switch (that would be a write)."""
    cur = dbapi_conn.cursor()
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


def raw_engine(url: str, *, readonly: bool = False) -> Engine:
    """An engine with the ledger's connection settings, without touching the schema.

    `readonly` opens a SQLite file with `mode=ro`: read commands then work on a file or mount
    they cannot write, and can never change it.
    """
    kwargs: dict[str, Any] = {}
    path = sqlite_path(url) if readonly else None
    if path is not None:
        from urllib.parse import quote

        url = f"sqlite:///file:{quote(os.path.abspath(path))}?mode=ro&uri=true"
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
        event.listen(engine, "connect", _sqlite_ro_pragmas if path else _sqlite_pragmas)
    return engine


def open_engine(
    url: str | None = None,
    *,
    create: bool = True,
    check_fs: bool = True,
    readonly: bool = False,
    check: bool = False,
) -> Engine:
    """Open (by default create) a ledger; a missing SQLite file is an error when not creating.

    A ledger whose schema is not the head revision is refused with the command that upgrades
    it: reading it with newer models would fail later with a less helpful SQL error.
    `check_fs=False` skips the network-filesystem warning (reading published shards).
    `check` runs SQLite's `quick_check` first: a damaged file is refused instead of read
    (a report of half a table looks like a result).
    """
    url = resolve_url(url)
    path = sqlite_path(url)
    if path is not None:
        if not create and not os.path.exists(path):
            raise UsageError(f"no ledger at {url} (run a tournament first, or pass --ledger)")
        if check_fs:
            warn_if_network_fs(path)
    engine = raw_engine(url, readonly=readonly)
    try:
        with creation_lock(path if create and not readonly else None):
            if check and path is not None:
                check_integrity(engine, url)
            prepare_schema(engine, create=create and not readonly)
    except UsageError:
        engine.dispose()
        raise
    except Exception as exc:  # unreachable server, wrong password, not a database
        engine.dispose()
        raise UsageError(
            explain_db_error(exc, url) or f"cannot open ledger {url!r}: {exc}"
        ) from None
    return engine


@contextlib.contextmanager
def creation_lock(path: str | None) -> Iterator[None]:
    """Hold an exclusive lock on the ledger's folder while the first connection is made.

    The first connection of a new file switches it to WAL, which needs SQLite's exclusive lock;
    two processes doing so at once can deadlock inside SQLite, which answers "database is
    locked" at once instead of waiting. A `flock` on the folder (no extra file) makes openers
    of a new ledger take turns; once the file is in WAL mode the switch is a no-op. Not on
    Windows or where the folder cannot be locked: then SQLite's own locks are all there is.
    """
    if path is None:
        yield
        return
    try:
        import fcntl

        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_integrity(engine: Engine, url: str) -> None:
    """Refuse a SQLite ledger whose pages fail `PRAGMA quick_check` (structure and records)."""
    with engine.connect() as conn:
        problems = [str(r) for r in conn.exec_driver_sql("PRAGMA quick_check(5)").scalars()]
    if problems != ["ok"]:
        raise UsageError(f"{damaged(url)} (quick_check: {'; '.join(problems)[:300]})")


def damaged(url: str) -> str:
    path = sqlite_path(url) or url
    return (
        f"the ledger {url} is damaged: restore a backup, or salvage what is readable with "
        f"`sqlite3 {path} .recover | sqlite3 recovered.db`"
    )


def explain_db_error(exc: BaseException, url: str | None = None) -> str | None:
    """A clear message for a database failure a user can act on; None for anything else.

    Disk full, a read-only file or mount, and a damaged file used to end in raw
    OperationalError/DatabaseError tracebacks. Finished matches are already committed when
    these happen (each write group is one transaction), so a re-run resumes.
    """
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, sqlite3.Error | DBAPIError) and not isinstance(exc, DBAPIError):
        return None
    text_ = str(orig or exc).lower()
    where = url or "the ledger"
    if "disk is full" in text_ or "no space left" in text_:
        return (
            f"{where}: the disk holding the ledger is full; every match finished before this "
            f"is kept: free space, then run the same command again to resume"
        )
    if "readonly" in text_ or "read-only" in text_ or "permission denied" in text_:
        return (
            f"{where}: the ledger cannot be written (a read-only or immutable file, directory "
            f"or mount); read commands still work on it; run on a writable copy"
        )
    if "malformed" in text_ or "not a database" in text_ or "corrupt" in text_:
        return damaged(where)
    if "unable to open" in text_ or "disk i/o error" in text_:
        return f"{where}: the ledger file cannot be opened or read: {orig}"
    if isinstance(exc, DBAPIError) and isinstance(orig, sqlite3.OperationalError):
        return f"{where}: ledger error: {orig}"
    return None


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
        elif conn.dialect.name == "sqlite" and create:
            # SQLite's write lock on the file, taken before looking: two processes creating one
            # new ledger at once otherwise both see it empty ("table already exists").
            conn.exec_driver_sql("BEGIN IMMEDIATE")
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


@dataclass(slots=True)
class Claimed:
    """A match to play, as the engine queues it: the columns a play and its write need, with
    the item dict shared by every row of that item (the process-wide item cache).

    A plain slotted object rather than a `MatchRow`: the ORM's constructor costs ~0.1 ms a row
    and keeps per-object state, which at a page of thousands of rows is most of the run's
    bookkeeping. `to_row()` gives the full MatchRow when a plugin hook wants one.
    """

    id: str
    tournament: str
    protocol: str
    item_id: str
    item: dict[str, Any] | None
    item_key: str | None
    seats: dict[str, str]
    assignment: dict[str, int]
    variant: int = 0
    repetition: int = 0
    order_key: int = 0
    status: str = PENDING
    attempts: int = 0
    worker: str | None = None
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime | None = None

    def to_row(self) -> MatchRow:
        return MatchRow(**{f: getattr(self, f) for f in self.__dataclass_fields__})


_CLAIMED_FIELDS = tuple(Claimed.__dataclass_fields__)


def claimed_rows(conn: Connection, result: Iterable[Any]) -> list[Claimed]:
    """`Claimed` rows from a Core result over the match table's columns, items filled in."""
    rows = []
    for r in result:
        m = r._mapping
        rows.append(Claimed(*(m[f] for f in _CLAIMED_FIELDS)))
    return fill_items(conn, rows)


def fill_items(conn: Connection, rows: list[Claimed]) -> list[Claimed]:
    """Give each row that references a stored item its snapshot (shared, from the cache)."""
    found = load_items(conn, {r.item_key for r in rows if r.item_key is not None and not r.item})
    for r in rows:
        if r.item_key is not None and not r.item:
            r.item = found.get(r.item_key)
    return rows


@event.listens_for(MatchRow, "load")
def _fill_item(target: MatchRow, context: Any) -> None:
    """Every MatchRow the ORM loads carries its item, as when each row stored a copy."""
    if target.item_key is not None and not target.item:
        conn = context.session.connection()
        set_committed_value(target, "item", load_items(conn, [target.item_key])[target.item_key])


def split_items(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Match rows with their item snapshots replaced by keys, and the snapshots by key.

    Rows of one item share one snapshot object (schedule.iter_matches), so each is hashed once.
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
        self,
        url: str | None = None,
        *,
        create: bool = True,
        check_fs: bool = True,
        readonly: bool = False,
        check: bool | None = None,
    ) -> None:
        """`readonly`: never write (SQLite `mode=ro`), for the read commands; `check` (default:
        with `readonly`) refuses a SQLite file that fails `quick_check`."""
        self.url = resolve_url(url)
        self.engine = open_engine(
            self.url,
            create=create,
            check_fs=check_fs,
            readonly=readonly,
            check=readonly if check is None else check,
        )

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

    # --- judges that learners produced ------------------------------------------------------------

    def judge(self, name: str) -> JudgeRow | None:
        with self.session() as s:
            return s.get(JudgeRow, name)

    def judges(self) -> list[JudgeRow]:
        """Every registered judge, oldest first."""
        with self.session() as s:
            return list(s.exec(select(JudgeRow).order_by(JudgeRow.created_at, JudgeRow.name)))

    # --- matches --------------------------------------------------------------------------------

    def add_matches(self, rows: Iterable[dict[str, Any]], *, chunk: int = 5000) -> int:
        """Insert pending matches, skipping ids already present. Returns how many were new.

        `rows` may be a generator (`schedule.iter_matches`): it is consumed `chunk` rows at a
        time, so a million-match schedule never sits in memory, and written in one transaction,
        so a worker never sees half a schedule.
        """
        table = MatchRow.__table__
        added = 0
        it = iter(rows)
        with self.engine.begin() as conn:
            while batch := list(itertools.islice(it, chunk)):
                existing: set[str] = set()
                ids = [r["id"] for r in batch]
                for i in range(0, len(ids), 500):
                    existing.update(
                        conn.execute(
                            select(table.c.id).where(table.c.id.in_(ids[i : i + 500]))
                        ).scalars()
                    )
                new, items = split_items([r for r in batch if r["id"] not in existing])
                if new:
                    insert_items(conn, items)
                    # Several processes may schedule the same tournament at once: a row another
                    # one inserted meanwhile is skipped, not an error.
                    if conn.dialect.name == "sqlite":
                        _insert_matches_sqlite(conn, new)
                    else:
                        conn.execute(_insert(conn, table).on_conflict_do_nothing(), new)
                added += len(new)
        return added

    def statuses(self, ids: Sequence[str]) -> dict[str, str]:
        """id -> status of those of `ids` stored (a dry run's plan, a chunk at a time)."""
        mt = MatchRow.__table__
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = select(mt.c.id, mt.c.status).where(mt.c.id.in_(ids[i : i + 500]))
                out.update({k: v for k, v in conn.execute(q)})
        return out

    def pending_page(
        self,
        tournament: str,
        limit: int,
        *,
        after: tuple[int, str] | None = None,
        retry_failed: bool = False,
    ) -> list[Claimed]:
        """The next `limit` pending (and failed) matches after `after` = (order_key, id), in
        schedule order: the exclusive run pages through its work instead of loading it all.

        Keyset on (order_key, id), not an offset: rows written meanwhile leave `pending`
        without shifting the pages, and order keys of a schedule extended later may repeat.
        """
        mt = MatchRow.__table__
        statuses = [PENDING, FAILED] if retry_failed else [PENDING]
        q = select(*mt.c).where(mt.c.tournament == tournament, mt.c.status.in_(statuses))
        if after is not None:
            key, mid = after
            q = q.where((mt.c.order_key > key) | ((mt.c.order_key == key) & (mt.c.id > mid)))
        q = q.order_by(mt.c.order_key, mt.c.id).limit(limit)
        with self.engine.connect() as conn:
            return claimed_rows(conn, conn.execute(q))

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

    def claim(self, tournament: str, worker: str, limit: int) -> list[Claimed]:
        """Mark up to `limit` pending matches `running` under `worker` and return them.

        Postgres: `SELECT ... FOR UPDATE SKIP LOCKED` in a materialised CTE, so concurrent
        claimers skip each other's rows instead of queueing on them, and each row is claimed
        once. SQLite: one UPDATE statement holds the database's write lock, which serialises
        claimers the same way. Rows come back as `Claimed` (plain slots, the item shared by
        every row of it), not ORM objects: building a MatchRow costs about 0.1 ms.
        """
        if not self.shared:
            return self._claim_sqlite(tournament, worker, limit)
        mt = MatchRow.__table__
        clock = self.db_now()
        pick = (
            select(mt.c.id)
            .where(mt.c.tournament == tournament, mt.c.status == PENDING)
            .order_by(mt.c.order_key)
            .limit(limit)
        )
        cte = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        stmt = (
            mt.update()
            .where(mt.c.id == cte.c.id)
            .values(status=RUNNING, worker=worker, claimed_at=clock, heartbeat_at=clock)
            .returning(*mt.c)
        )
        with self.engine.begin() as conn:
            rows = claimed_rows(conn, conn.execute(stmt))
        rows.sort(key=lambda r: (r.order_key, r.id))
        return rows

    def _claim_sqlite(self, tournament: str, worker: str, limit: int) -> list[Claimed]:
        """`claim` on SQLite: one UPDATE, then the claimed rows read back as ONE row holding a
        JSON array (SQLite's json_group_array), parsed by json.loads.

        Written by hand: a RETURNING of a page of rows steps the statement once per row, and the
        sqlite3 module hands the GIL over at every step. In a run the ledger thread then waited
        for the event loop's thread once per row, and a page of 1000 claims took 50-100 ms of
        wall for 10-30 ms of work while every task waited for it. Values are the stored ones
        through the column types' own processors, as Core would read them.
        """
        mt = MatchRow.__table__
        dialect = self.engine.dialect
        put = mt.c.claimed_at.type.dialect_impl(dialect).bind_processor(dialect)
        get = mt.c.claimed_at.type.dialect_impl(dialect).result_processor(dialect, None)
        stamp = put(now()) if put else now()
        clock = get(stamp) if get else stamp  # what reading the stored stamp gives
        picked = (
            'UPDATE "match" SET status = ?, worker = ?, claimed_at = ?, heartbeat_at = ? '
            'WHERE id IN (SELECT id FROM "match" WHERE tournament = ? AND status = ? '
            "ORDER BY order_key LIMIT ?)"
        )
        read = (
            "SELECT json_group_array(json_array(id, protocol, item_id, json(item), item_key, "
            "json(seats), json(assignment), variant, repetition, order_key, attempts, "
            'created_at)) FROM "match" '
            "WHERE tournament = ? AND status = ? AND worker = ? AND claimed_at = ?"
        )
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                picked, (RUNNING, worker, stamp, stamp, tournament, PENDING, limit)
            )
            doc = conn.exec_driver_sql(read, (tournament, RUNNING, worker, stamp)).scalar()
            created: dict[str, Any] = {}  # a schedule stamps its rows with a few times only
            rows = []
            for v in json.loads(doc or "[]"):
                made = v[11]
                if made not in created:
                    created[made] = get(made) if get and made is not None else made
                rows.append(
                    Claimed(
                        id=v[0],
                        tournament=tournament,
                        protocol=v[1],
                        item_id=v[2],
                        item=v[3],
                        item_key=v[4],
                        seats=v[5],
                        assignment=v[6],
                        variant=v[7],
                        repetition=v[8],
                        order_key=v[9],
                        status=RUNNING,
                        attempts=v[10],
                        worker=worker,
                        claimed_at=clock,
                        heartbeat_at=clock,
                        created_at=created[made],
                    )
                )
            fill_items(conn, rows)
        rows.sort(key=lambda r: (r.order_key, r.id))
        return rows

    def claim_all(
        self,
        tournament: str,
        worker: str,
        *,
        ids: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[Claimed]:
        """Claim every pending match of the tournament for one process, in schedule order
        (only those of `ids`, and at most `limit`, when given: `arena run --items/--limit`).

        One UPDATE, then the rows read back with Core. The engine pages through big runs with
        `claim` instead; this is for an explicit set of ids (`--items`), held in memory anyway.
        """
        mt = MatchRow.__table__
        clock = self.db_now()
        values = {"status": RUNNING, "worker": worker, "claimed_at": clock, "heartbeat_at": clock}
        mine = [mt.c.tournament == tournament, mt.c.status == PENDING]
        with self.engine.begin() as conn:
            if ids is None and limit is None:
                conn.execute(mt.update().where(*mine).values(**values))
            else:
                wanted = sorted(ids) if ids is not None else [None]
                left = limit
                for i in range(0, len(wanted), 5000):  # under SQLite's bound-parameter limit
                    pick = select(mt.c.id).where(*mine).order_by(mt.c.order_key)
                    if ids is not None:
                        pick = pick.where(mt.c.id.in_(wanted[i : i + 5000]))
                    if left is not None:
                        pick = pick.limit(left)
                    done = conn.execute(
                        mt.update().where(mt.c.id.in_(pick.scalar_subquery())).values(**values)
                    ).rowcount
                    if left is not None:
                        left -= done
                        if left <= 0:
                            break
            q = (
                select(*mt.c)
                .where(mt.c.tournament == tournament, mt.c.status == RUNNING, mt.c.worker == worker)
                .order_by(mt.c.order_key, mt.c.id)
            )
            return claimed_rows(conn, conn.execute(q))

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

    def heartbeat(self, worker: str, tournament: str | None = None) -> int:
        """Refresh every claim of `worker` (in `tournament`, when given); returns how many it
        still holds. Naming the tournament lets the claim index find the rows: without it
        every heartbeat scanned the whole match table (a second a beat at a million rows)."""
        mt = MatchRow.__table__
        conds = [mt.c.worker == worker, mt.c.status == RUNNING]
        if tournament is not None:
            conds.append(mt.c.tournament == tournament)
        return self._update_unlocked(conds, {"heartbeat_at": self.db_now()})

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

    def release(self, worker: str, tournament: str | None = None) -> int:
        """Give back every claim `worker` still holds (it is stopping): pending again at once."""
        mt = MatchRow.__table__
        conds = [mt.c.worker == worker, mt.c.status == RUNNING]
        if tournament is not None:
            conds.append(mt.c.tournament == tournament)
        return self._update_unlocked(conds, _UNCLAIMED)

    def take_back_dead(self, tournament: str | None) -> int:
        """Return to pending at once the claims of workers on this host whose process is gone.

        Worker names are `host:pid` (`engine.default_worker`); a killed `arena run --workers`
        or a SIGKILLed run would otherwise hold its matches until the stale timeout. Workers on
        other hosts are left to `take_back`: their liveness is only known by their heartbeat.
        """
        host = socket.gethostname()
        freed = 0
        for worker, _n, _beat in self.holders(tournament):
            who, _, pid = worker.rpartition(":")
            if who == host and pid.isdigit() and not _pid_alive(int(pid)):
                freed += self.release(worker)
        return freed

    def holders(
        self, tournament: str | None, *, besides: str | None = None
    ) -> list[tuple[str, int, Any]]:
        """(worker, matches it holds running, its latest heartbeat) per claiming worker."""
        mt = MatchRow.__table__
        q = select(mt.c.worker, func.count(), func.max(mt.c.heartbeat_at)).where(
            mt.c.status == RUNNING, mt.c.worker.is_not(None)
        )
        if tournament is not None:
            q = q.where(mt.c.tournament == tournament)
        if besides is not None:
            q = q.where(mt.c.worker != besides)
        with self.engine.connect() as conn:
            rows = conn.execute(q.group_by(mt.c.worker).order_by(mt.c.worker)).all()
        return [(str(w), int(n), beat) for w, n, beat in rows]

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


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


_JSON_COLUMNS = frozenset({"item", "seats", "assignment"})


def _insert_matches_sqlite(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert pending match rows on SQLite through the driver, written as SQLAlchemy would.

    Scheduling a million matches through Core spent most of its time per row in parameter
    processing (a `json.dumps` per JSON column, a datetime conversion, a default per column).
    Here JSON is serialised once per distinct object (rows share seat maps, assignments and the
    `None` of a stored item) with the JSON type's own serialiser, the creation time once per
    group in SQLAlchemy's SQLite datetime format, and the other defaults are the model's.
    """
    table = MatchRow.__table__
    cols = [c.name for c in table.columns]
    stamp = now().strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME text
    defaults: dict[str, Any] = {
        c.name: c.default.arg
        for c in table.columns
        if c.default is not None and not callable(c.default.arg)
    }
    defaults["created_at"] = stamp
    memo: dict[int, str] = {}

    def text_of(value: Any) -> str:
        key = id(value)
        if key not in memo:
            memo[key] = json.dumps(value)
        return memo[key]

    values = [
        tuple(text_of(r.get(c)) if c in _JSON_COLUMNS else r.get(c, defaults.get(c)) for c in cols)
        for r in rows
    ]
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    conn.exec_driver_sql(
        f'INSERT INTO "match" ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING', values
    )


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
