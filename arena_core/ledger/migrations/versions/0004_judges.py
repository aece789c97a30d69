"""Judges that learners produce (reward and cost models, discriminators), with their lineage.

Revision ID: 0004_judges
Revises: 0003_items
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_judges"
down_revision: str | None = "0003_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "judge",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("plugin", sa.String(), nullable=False),
        sa.Column("options", sa.JSON()),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("parent", sa.String()),
        sa.Column("base_model", sa.String()),
        sa.Column("learner_run", sa.Integer()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("judge")
