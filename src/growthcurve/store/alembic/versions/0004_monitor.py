"""Financial sentiment monitor: alerts, per-window counts and the resumable stream state.

Revision ID: 0004
Revises: 0003 (assist_turns)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SEQS = ("monitor_alerts_id_seq", "monitor_windows_id_seq")


def upgrade() -> None:
    """Create ``monitor_alerts``, ``monitor_windows`` and ``monitor_state``."""
    if op.get_bind().dialect.supports_sequences:
        for s in _SEQS:
            op.execute(sa.schema.CreateSequence(sa.Sequence(s)))
    op.create_table(
        "monitor_alerts",
        sa.Column("id", _Id, sa.Sequence("monitor_alerts_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("monitor", sa.String(128), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("window_end", sa.DateTime(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("negative_share", sa.Double(), nullable=False),
        sa.Column("baseline_n", sa.Integer(), nullable=False),
        sa.Column("baseline_share", sa.Double(), nullable=False),
        sa.Column("p_value", sa.Double(), nullable=False),
        sa.Column("p_adjusted", sa.Double(), nullable=False),
        sa.Column("test", sa.String(256), nullable=False),
        sa.Column("webhook_status", sa.String(256), nullable=True),
        sa.UniqueConstraint("monitor", "topic", "window_start", name="uq_monitor_alerts_window"),
    )
    op.create_table(
        "monitor_windows",
        sa.Column("id", _Id, sa.Sequence("monitor_windows_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("monitor", sa.String(128), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("baseline_n", sa.Integer(), nullable=False),
        sa.Column("baseline_share", sa.Double(), nullable=True),
        sa.Column("p_value", sa.Double(), nullable=True),
        sa.Column("p_adjusted", sa.Double(), nullable=True),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("monitor", "topic", "window_start", name="uq_monitor_windows_window"),
    )
    op.create_table(
        "monitor_state",
        sa.Column("monitor", sa.String(128), primary_key=True),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    """Drop the monitor's tables."""
    for t in ("monitor_state", "monitor_windows", "monitor_alerts"):
        op.drop_table(t)
    if op.get_bind().dialect.supports_sequences:
        for s in _SEQS:
            op.execute(sa.schema.DropSequence(sa.Sequence(s)))
