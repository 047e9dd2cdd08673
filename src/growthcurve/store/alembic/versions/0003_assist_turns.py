"""Customer-service assistant conversations: one row per turn (answer or handoff) with the model version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the ``assist_turns`` table (and its id sequence where the database has sequences)."""
    if op.get_bind().dialect.supports_sequences:
        op.execute(sa.schema.CreateSequence(sa.Sequence("assist_turns_id_seq")))
    op.create_table(
        "assist_turns",
        sa.Column("id", _Id, sa.Sequence("assist_turns_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(256), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("faq_id", sa.Integer(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
    )
    op.create_index("ix_assist_turns_session_turn", "assist_turns", ["session_id", "turn"])
    op.create_index("ix_assist_turns_model_version_ts", "assist_turns", ["model_version", "ts"])


def downgrade() -> None:
    """Drop the ``assist_turns`` table."""
    op.drop_table("assist_turns")
    if op.get_bind().dialect.supports_sequences:
        op.execute(sa.schema.DropSequence(sa.Sequence("assist_turns_id_seq")))
