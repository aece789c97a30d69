"""Schema migrations for the ledger (alembic), and the revision ids the ledger stamps.

`HEAD` is read by `arena_core.ledger` on every open, so this module must not import alembic:
alembic is only needed to upgrade (`arena ledger upgrade`), not to play.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The newest revision in versions/; a test checks it against alembic's own view of the scripts.
HEAD = "0003_items"
# The schema that ledgers created before versioning have (the first revision).
LEGACY_BASE = "0001_initial"

HERE = Path(__file__).resolve().parent


def alembic_config(connection: Any = None, url: str | None = None) -> Any:
    """An alembic Config for these scripts, bound to an open connection (or a URL)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the ledger at `url` to `revision`; returns (revision before, revision after).

    A ledger made before versioning has no version table: it is stamped as the first revision,
    then upgraded. An empty database is built from the migrations alone.
    """
    try:
        from alembic import command
    except ImportError:
        from arena_core.errors import UsageError

        raise UsageError(
            "upgrading a ledger needs alembic: pip install 'arena-debate[postgres]'"
        ) from None
    from arena_core.ledger import raw_engine, resolve_url, schema_version

    engine = raw_engine(resolve_url(url))
    try:
        with engine.begin() as conn:
            before = schema_version(conn)
            if before == LEGACY_BASE and not _has_version_table(conn):
                command.stamp(alembic_config(conn), LEGACY_BASE)
            command.upgrade(alembic_config(conn), revision)
            after = schema_version(conn)
    finally:
        engine.dispose()
    return before, after


def _has_version_table(conn: Any) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(conn).has_table("alembic_version"))
