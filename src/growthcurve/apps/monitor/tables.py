"""The monitor's tables (created by Alembic revision 0004): alerts, per-window counts, stream state.

They are declared here rather than in ``store/schema.py`` because only the monitor reads and writes them;
the migration in ``store/alembic/versions/0004_monitor.py`` mirrors these definitions.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

monitor_alerts = sa.Table(
    "monitor_alerts",
    metadata,
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
"""One surge: the negative share of ``topic`` in a window beyond its rolling baseline (after correction)."""

monitor_windows = sa.Table(
    "monitor_windows",
    metadata,
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
"""The time series: one row per closed (window, topic), written in the same transaction as the position."""

monitor_state = sa.Table(
    "monitor_state",
    metadata,
    sa.Column("monitor", sa.String(128), primary_key=True),
    sa.Column("updated", sa.DateTime(), nullable=False),
    sa.Column("state", sa.JSON(), nullable=False),
)
"""Where each monitor is in its stream (file, byte offset, line) and its open-window counts."""
