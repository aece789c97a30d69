"""The ledger as it was before schema versioning: ledgers without a version are at this revision.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "learner_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("learner", sa.String(), nullable=False),
        sa.Column("config", sa.JSON()),
        sa.Column("data_query", sa.JSON()),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.String()),
        sa.Column("metrics", sa.JSON()),
        sa.Column("wall_time", sa.Float()),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "player",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("options", sa.JSON()),
        sa.Column("parent", sa.String()),
        sa.Column("learner_run", sa.Integer()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "rating",
        sa.Column("pool", sa.String(), primary_key=True),
        sa.Column("player", sa.String(), primary_key=True),
        sa.Column("mu", sa.Float(), nullable=False),
        sa.Column("sigma", sa.Float(), nullable=False),
        sa.Column("matches", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("draws", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "tournament",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("protocol", sa.String(), nullable=False),
        sa.Column("pool", sa.String(), nullable=False),
        sa.Column("config_hash", sa.String(), nullable=False),
        sa.Column("config", sa.JSON()),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "match",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("tournament", sa.String(), sa.ForeignKey("tournament.name"), nullable=False),
        sa.Column("protocol", sa.String(), nullable=False),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item", sa.JSON()),
        sa.Column("seats", sa.JSON()),
        sa.Column("assignment", sa.JSON()),
        sa.Column("variant", sa.Integer(), nullable=False),
        sa.Column("repetition", sa.Integer(), nullable=False),
        sa.Column("order_key", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String()),
        sa.Column("traceback", sa.String()),
        sa.Column("worker", sa.String()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("finished_seq", sa.Integer()),
    )
    op.create_index("ix_match_finished_seq", "match", ["finished_seq"])
    op.create_index("ix_match_tournament_status", "match", ["tournament", "status"])
    op.create_table(
        "turn",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("match_id", sa.String(), sa.ForeignKey("match.id"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("seat", sa.String(), nullable=False),
        sa.Column("player", sa.String()),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("shown", sa.String(), nullable=False),
        sa.Column("visible_to", sa.JSON()),
        sa.Column("parent", sa.Integer()),
        sa.Column("branch", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer()),
        sa.Column("latency", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float()),
        sa.Column("meta", sa.JSON()),
    )
    op.create_index("ix_turn_match", "turn", ["match_id", "idx"])
    op.create_table(
        "verdict",
        sa.Column("match_id", sa.String(), sa.ForeignKey("match.id"), primary_key=True),
        sa.Column("node", sa.Integer(), primary_key=True),
        sa.Column("judge", sa.String(), nullable=False),
        sa.Column("probs", sa.JSON()),
        sa.Column("chosen", sa.String()),
        sa.Column("winner_seat", sa.String()),
        sa.Column("winner", sa.String()),
        sa.Column("correct", sa.Boolean()),
        sa.Column("confidence", sa.Float()),
        sa.Column("raw", sa.String(), nullable=False),
        sa.Column("meta", sa.JSON()),
    )


def downgrade() -> None:
    for table in ("verdict", "turn", "match", "tournament", "rating", "player", "learner_run"):
        op.drop_table(table)
