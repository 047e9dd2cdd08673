"""Initial store: experiment events, predictions and feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sequence(name: str) -> None:
    """Create the id sequence where the database has sequences (PostgreSQL, DuckDB; not SQLite)."""
    if op.get_bind().dialect.supports_sequences:
        op.execute(sa.schema.CreateSequence(sa.Sequence(name)))


def upgrade() -> None:
    """Create the three tables and their indexes."""
    _sequence("experiment_events_id_seq")
    op.create_table(
        "experiment_events",
        sa.Column("id", _Id, sa.Sequence("experiment_events_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("unit_id", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=True),
    )
    op.create_index("ix_experiment_events_exp_metric_ts", "experiment_events", ["experiment", "metric", "ts"])
    op.create_index("ix_experiment_events_exp_unit", "experiment_events", ["experiment", "unit_id"])
    _sequence("predictions_id_seq")
    op.create_table(
        "predictions",
        sa.Column("id", _Id, sa.Sequence("predictions_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=True),
        sa.Column("variant", sa.String(64), nullable=True),
        sa.Column("unit_id", sa.String(128), nullable=True),
        sa.Column("input_text", sa.Text(), nullable=True),
        sa.Column("label", sa.String(256), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
    )
    op.create_index("ix_predictions_model_version_ts", "predictions", ["model_version", "ts"])
    _sequence("feedback_id_seq")
    op.create_table(
        "feedback",
        sa.Column("id", _Id, sa.Sequence("feedback_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), sa.ForeignKey("predictions.request_id"), nullable=True),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("unit_id", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("label", sa.String(256), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
    )
    op.create_index("ix_feedback_model_version_kind", "feedback", ["model_version", "kind"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("feedback")
    op.drop_table("predictions")
    op.drop_table("experiment_events")
    if op.get_bind().dialect.supports_sequences:
        for name in ("feedback_id_seq", "predictions_id_seq", "experiment_events_id_seq"):
            op.execute(sa.schema.DropSequence(sa.Sequence(name)))
