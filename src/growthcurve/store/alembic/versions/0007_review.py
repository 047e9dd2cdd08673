"""The review queue: queues, items, their places in the strategy streams, answers and reviewers' tokens.

Revision ID: 0007
Revises: 0006 (lineage)
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SEQUENCES = ("review_items_id_seq", "review_slots_id_seq", "review_answers_id_seq", "review_reviewers_id_seq")


def upgrade() -> None:
    """Create the five review tables (and their id sequences where the database has sequences)."""
    if op.get_bind().dialect.supports_sequences:
        for name in _SEQUENCES:
            op.execute(sa.schema.CreateSequence(sa.Sequence(name)))
    op.create_table(
        "review_queues",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("run", sa.Text(), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("next_keys", sa.JSON(), nullable=False),
    )
    op.create_table(
        "review_items",
        sa.Column("id", _Id, sa.Sequence("review_items_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(128), sa.ForeignKey("review_queues.name"), nullable=False),
        sa.Column("dedupe_key", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("top", sa.JSON(), nullable=False),
        sa.Column("uncertainty", sa.Double(), nullable=True),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.Column("disagree", sa.Boolean(), nullable=False),
        sa.Column("double", sa.Boolean(), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("request_ids", sa.JSON(), nullable=False),
        sa.UniqueConstraint("queue", "dedupe_key", name="uq_review_items_queue_key"),
    )
    op.create_table(
        "review_slots",
        sa.Column("id", _Id, sa.Sequence("review_slots_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("item_id", _Id, sa.ForeignKey("review_items.id"), nullable=False),
        sa.Column("key", sa.Double(), nullable=False),
        sa.UniqueConstraint("queue", "stream", "item_id", name="uq_review_slots_item"),
    )
    op.create_index("ix_review_slots_queue_stream_key", "review_slots", ["queue", "stream", "key"])
    op.create_table(
        "review_answers",
        sa.Column("id", _Id, sa.Sequence("review_answers_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("item_id", _Id, sa.ForeignKey("review_items.id"), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("label", sa.String(256), nullable=True),
        sa.Column("new_label", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("stream", sa.String(16), nullable=True),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_review_answers_queue_item", "review_answers", ["queue", "item_id"])
    op.create_index("ix_review_answers_queue_reviewer_ts", "review_answers", ["queue", "reviewer", "ts"])
    op.create_table(
        "review_reviewers",
        sa.Column("id", _Id, sa.Sequence("review_reviewers_id_seq"), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("expires", sa.DateTime(), nullable=True),
        sa.Column("queue", sa.String(128), nullable=True),
    )


def downgrade() -> None:
    """Drop the review tables."""
    op.drop_table("review_reviewers")
    op.drop_index("ix_review_answers_queue_reviewer_ts", table_name="review_answers")
    op.drop_index("ix_review_answers_queue_item", table_name="review_answers")
    op.drop_table("review_answers")
    op.drop_index("ix_review_slots_queue_stream_key", table_name="review_slots")
    op.drop_table("review_slots")
    op.drop_table("review_items")
    op.drop_table("review_queues")
    if op.get_bind().dialect.supports_sequences:
        for name in _SEQUENCES:
            op.execute(sa.schema.DropSequence(sa.Sequence(name)))
