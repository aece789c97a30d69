"""Claims for several workers on one ledger: claimed_at, heartbeat_at, and the claim index.

Revision ID: 0002_claims
Revises: 0001_initial
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_claims"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("match", sa.Column("claimed_at", sa.DateTime(timezone=True)))
    op.add_column("match", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    # (tournament, status, order_key) serves claims in schedule order; it covers the old index.
    op.create_index("ix_match_claim", "match", ["tournament", "status", "order_key"])
    op.drop_index("ix_match_tournament_status", table_name="match")


def downgrade() -> None:
    op.create_index("ix_match_tournament_status", "match", ["tournament", "status"])
    op.drop_index("ix_match_claim", table_name="match")
    with op.batch_alter_table("match") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("claimed_at")
