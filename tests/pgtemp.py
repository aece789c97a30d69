"""A throwaway PostgreSQL server on loopback, for tests and benchmarks of the shared ledger.

It runs the distribution's own binaries (`initdb`, `pg_ctl`; Debian keeps them in
/usr/lib/postgresql/<version>/bin, off PATH) on a free 127.0.0.1 port with its data in a temporary
directory, and removes everything on exit. PostgreSQL refuses to run as root, so under root
(CI) the server runs as the `postgres` user (or `nobody`) that the Debian package creates.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

SEARCH = "/usr/lib/postgresql/*/bin"
PREFIX = "arena-pg-"


def find_binaries() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`: PATH first, then Debian's versioned dirs."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    dirs = [Path(d) for d in glob.glob(SEARCH) if (Path(d) / "initdb").exists()]
    dirs.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return dirs[-1] if dirs else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drop(uid: int, gid: int) -> None:
    os.setgid(gid)
    os.setgroups([])
    os.setuid(uid)


def _demote() -> tuple[Callable[[], None] | None, int | None, int | None]:
    """Under root: a preexec function that drops to an unprivileged user, and its uid/gid."""
    if os.geteuid() != 0:
        return None, None, None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return functools.partial(_drop, pw.pw_uid, pw.pw_gid), pw.pw_uid, pw.pw_gid
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans(bin_dir: Path) -> int:
    """Stop and remove servers of this kind whose owning process is gone (a killed test run)."""
    reaped = 0
    for root in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        drop, _, _ = _demote()
        with contextlib.suppress(Exception):
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                preexec_fn=drop,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
        reaped += 1
    return reaped


class TempPostgres:
    """`with TempPostgres() as pg: url = pg.create_database("t")` — a server for one session.

    `durable=False` (tests) turns off fsync and synchronous commit: a crashed test server is
    thrown away anyway. Benchmarks keep the defaults so the figures mean something.
    """

    def __init__(self, *, durable: bool = False, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_binaries()
        if found is None:
            raise FileNotFoundError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                f"{SEARCH}; install Debian's `postgresql` package"
            )
        self.bin = found
        self.durable = durable
        self.port = 0
        self.root: Path | None = None
        self.user = "arena"

    def _run(self, *args: str) -> None:
        drop, _, _ = _demote()
        proc = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            preexec_fn=drop,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LC_ALL": "C"},
        )
        if proc.returncode != 0:
            log = ""
            if self.root is not None and (self.root / "server.log").exists():
                log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr}{log}")

    def start(self) -> TempPostgres:
        reap_orphans(self.bin)
        _, uid, gid = _demote()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        if uid is not None:
            os.chown(self.root, uid, gid or 0)
        data, sock = self.root / "data", self.root
        self._run("initdb", "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        self.port = free_port()
        opts = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={sock}",
            "-c max_connections=200",
        ]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            " ".join(opts),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """An empty database on this server; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
