"""Run registry: one row per finetune / tune / retrain / ab analyze / plan allocate.

Revision ID: 0005
Revises: 0004 (monitor)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``runs`` (string ids, so no sequence is needed on any backend)."""
    op.create_table(
        "runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("task", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(16), nullable=False),
        sa.Column("data_fingerprint", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(128), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artefact", sa.Text(), nullable=True),
        sa.Column("parent", sa.String(40), nullable=True),
    )
    op.create_index("ix_runs_kind_started", "runs", ["kind", "started_at"])
    op.create_index("ix_runs_parent", "runs", ["parent"])


def downgrade() -> None:
    """Drop the run registry."""
    op.drop_index("ix_runs_parent", table_name="runs")
    op.drop_index("ix_runs_kind_started", table_name="runs")
    op.drop_table("runs")
