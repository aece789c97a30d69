"""Items stored once: an `item` table keyed by content hash, and match.item_key referencing it.

Before this, every match row copied its item (42% of a fake debate's bytes; a 50 MB item made the
ledger hundreds of MB for 8 matches). The upgrade moves each distinct snapshot into `item` and
clears the copies; SQLite gives the space back on `VACUUM`.

Revision ID: 0003_items
Revises: 0002_claims
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_items"
down_revision: str | None = "0002_claims"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000
_match = sa.table(
    "match",
    sa.column("id", sa.String()),
    sa.column("item", sa.JSON()),
    sa.column("item_key", sa.String()),
)
_item = sa.table("item", sa.column("key", sa.String()), sa.column("data", sa.JSON()))


def _key(snapshot: object) -> str:
    # The same hash as arena_core.ledger.store.item_key, written out so the revision stays fixed.
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def upgrade() -> None:
    op.create_table(
        "item",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("data", sa.JSON()),
    )
    op.add_column("match", sa.Column("item_key", sa.String()))
    conn = op.get_bind()
    seen: set[str] = set()
    last = ""
    while True:  # keyset pages: memory stays flat however many matches the ledger holds
        rows = conn.execute(
            sa.select(_match.c.id, _match.c.item)
            .where(_match.c.id > last)
            .order_by(_match.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1][0]
        new_items = []
        for mid, snapshot in rows:
            if snapshot is None:
                continue
            key = _key(snapshot)
            if key not in seen:
                seen.add(key)
                new_items.append({"key": key, "data": snapshot})
            conn.execute(_match.update().where(_match.c.id == mid).values(item_key=key, item=None))
        if new_items:
            conn.execute(_item.insert(), new_items)


def downgrade() -> None:
    conn = op.get_bind()
    for key, data in conn.execute(sa.select(_item.c.key, _item.c.data)).all():
        conn.execute(_match.update().where(_match.c.item_key == key).values(item=data))
    with op.batch_alter_table("match") as batch:
        batch.drop_column("item_key")
    op.drop_table("item")
