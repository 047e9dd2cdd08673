"""Model lineages and served experiments: runs.model/version/fingerprint, and the experiments table.

Revision ID: 0006
Revises: 0005 (runs)
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Name each servable run as a model version, and keep each served experiment's arms and analysis."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("model", sa.String(128), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
    # (model, version) is unique where the database enforces it on updated rows; DuckDB's ART indexes refuse
    # updates of indexed columns in some versions, so there the registry's retry loop alone keeps it unique.
    unique = op.get_bind().dialect.name != "duckdb"
    op.create_index("ix_runs_model_version", "runs", ["model", "version"], unique=unique)
    op.create_index("ix_runs_fingerprint", "runs", ["fingerprint"])
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    """Drop the experiments table and the lineage columns."""
    op.drop_table("experiments")
    op.drop_index("ix_runs_fingerprint", table_name="runs")
    op.drop_index("ix_runs_model_version", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("fingerprint")
        batch.drop_column("version")
        batch.drop_column("model")
