"""Decision log: who shipped, rejected or continued which variant of an experiment, and on what evidence.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the ``decisions`` table (and its id sequence where the database has sequences)."""
    if op.get_bind().dialect.supports_sequences:
        op.execute(sa.schema.CreateSequence(sa.Sequence("decisions_id_seq")))
    op.create_table(
        "decisions",
        sa.Column("id", _Id, sa.Sequence("decisions_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("variant", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=True),
    )
    op.create_index("ix_decisions_experiment_ts", "decisions", ["experiment", "ts"])


def downgrade() -> None:
    """Drop the ``decisions`` table."""
    op.drop_table("decisions")
    if op.get_bind().dialect.supports_sequences:
        op.execute(sa.schema.DropSequence(sa.Sequence("decisions_id_seq")))
