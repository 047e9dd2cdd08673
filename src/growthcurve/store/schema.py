"""The SQL schema growthcurve reads and writes (SQLAlchemy Core), shared by SQLite, DuckDB and PostgreSQL.

Events are stored *long*: one row per (unit, metric, moment), so a new metric needs no migration and a
serving layer can append feedback for any model version into the same table the A/B analysis reads.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere a 64-bit key leaves room to grow. The
# explicit sequences serve DuckDB (no SERIAL/IDENTITY) and PostgreSQL alike; SQLite ignores them.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

experiment_events = sa.Table(
    "experiment_events",
    metadata,
    sa.Column("id", _Id, sa.Sequence("experiment_events_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("unit_id", sa.String(128), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("ts", sa.DateTime(), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("value", sa.Double(), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=True),
    sa.Index("ix_experiment_events_exp_metric_ts", "experiment", "metric", "ts"),
    sa.Index("ix_experiment_events_exp_unit", "experiment", "unit_id"),
)
"""One measurement of one unit in one experiment: exposure, conversion, score, pre-period value, ..."""

predictions = sa.Table(
    "predictions",
    metadata,
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
    sa.Index("ix_predictions_model_version_ts", "model_version", "ts"),
)
"""One answer a served model gave, tagged with its version (written by the serving layer)."""

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", _Id, sa.Sequence("feedback_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), sa.ForeignKey("predictions.request_id"), nullable=True),
    sa.Column("ts", sa.DateTime(), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=True),
    sa.Column("unit_id", sa.String(128), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("value", sa.Double(), nullable=True),
    sa.Column("label", sa.String(256), nullable=True),
    sa.Column("comment", sa.Text(), nullable=True),
    sa.Index("ix_feedback_model_version_kind", "model_version", "kind"),
)
"""A user's reaction to a prediction: thumbs (0/1), rating (CSAT 1-5, NPS 0-10) or a corrected label."""

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", _Id, sa.Sequence("decisions_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(), nullable=False),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("variant", sa.String(64), nullable=True),
    sa.Column("decided_by", sa.String(128), nullable=False),
    sa.Column("why", sa.Text(), nullable=False),
    sa.Column("evidence", sa.JSON(), nullable=True),
    sa.Index("ix_decisions_experiment_ts", "experiment", "ts"),
)
"""One decision on an experiment (ship / reject / continue a variant), who made it, why, and the A/B evidence."""

assist_turns = sa.Table(
    "assist_turns",
    metadata,
    sa.Column("id", _Id, sa.Sequence("assist_turns_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(128), nullable=False),
    sa.Column("turn", sa.Integer(), nullable=False),
    sa.Column("ts", sa.DateTime(), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # chat | http | eval
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),  # the predictions row (HTTP), for /feedback
    sa.Column("question", sa.Text(), nullable=False),
    sa.Column("intent", sa.String(256), nullable=True),
    sa.Column("confidence", sa.Double(), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # answer | handoff
    sa.Column("reason", sa.String(64), nullable=True),  # why a handoff happened
    sa.Column("faq_id", sa.Integer(), nullable=True),
    sa.Column("answer", sa.Text(), nullable=True),
    sa.Index("ix_assist_turns_session_turn", "session_id", "turn"),
    sa.Index("ix_assist_turns_model_version_ts", "model_version", "ts"),
)
"""One turn of a customer-service conversation: the question, the intent, and the answer or the handoff."""

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # "r-20261201-111502-3fa2": sortable, short to type
    sa.Column("kind", sa.String(32), nullable=False),  # finetune | tune | retrain | ab-analyze | plan-allocate
    sa.Column("name", sa.String(256), nullable=True),
    sa.Column("task", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # running | finished | failed | interrupted
    sa.Column("started_at", sa.DateTime(), nullable=False),  # UTC
    sa.Column("finished_at", sa.DateTime(), nullable=True),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("config_hash", sa.String(16), nullable=False),
    sa.Column("data_fingerprint", sa.JSON(), nullable=False),
    sa.Column("code_version", sa.String(128), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("artefact", sa.Text(), nullable=True),
    # no foreign key: a parent may live in another store (a tune study's workers on other machines)
    sa.Column("parent", sa.String(40), nullable=True),
    # the model lineage (revision 0006): a finished run that made a servable model is version `version` of
    # model `model` ("intents@v2"); `fingerprint` is the served model_version hash of its model folder
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("fingerprint", sa.String(64), nullable=True),
    sa.Index("ix_runs_kind_started", "kind", "started_at"),
    sa.Index("ix_runs_parent", "parent"),
    sa.Index("ix_runs_model_version", "model", "version"),
    sa.Index("ix_runs_fingerprint", "fingerprint"),
)
"""One recorded run (finetune, tune, retrain, compress, ab analyze, plan allocate): what ran, on which data and
code, with which result, where its artefact lies, which run it came from and which model version it is
(see ``store/registry.py``)."""

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    # the arms: [{variant, role, model, version, fingerprint, run, weight}]; the variant *is* the version's name
    sa.Column("arms", sa.JSON(), nullable=False),
    # the analysis every reader computes from (metrics, types, aggregation, control, alpha, ...), as the
    # `analysis`/`metrics` sections of an `ab analyze` config; the source is the store itself
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("salt", sa.String(128), nullable=False),
)
"""One served experiment: which model versions its arms serve and how it is analysed (written by `serve`)."""

# ---- the review queue (growthcurve.review): people label served traffic ------------------------------------

review_queues = sa.Table(
    "review_queues",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("created", sa.DateTime(), nullable=False),
    sa.Column("run", sa.Text(), nullable=True),  # the served run folder whose labels the reviewers choose from
    sa.Column("model_version", sa.String(128), nullable=True),
    sa.Column("labels", sa.JSON(), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),  # mix, floor, sharpness, measure, double share, new labels, seed
    sa.Column("next_keys", sa.JSON(), nullable=False),  # per stream: the smallest priority key not listed
)
"""One review queue: a snapshot of served traffic (and uploaded files) to label, with its label set."""

review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column("id", _Id, sa.Sequence("review_items_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(128), sa.ForeignKey("review_queues.name"), nullable=False),
    sa.Column("dedupe_key", sa.String(32), nullable=False),  # near-duplicates share it: labelled once
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # prediction | handoff | upload | import
    sa.Column("created", sa.DateTime(), nullable=False),
    sa.Column("requests", sa.Integer(), nullable=False),  # served requests collapsed into the item (0: upload)
    sa.Column("versions", sa.JSON(), nullable=False),  # {version: {"n": requests, "served": {label: count}}}
    sa.Column("top", sa.JSON(), nullable=False),  # [[label, probability], ...] the model's top labels
    sa.Column("uncertainty", sa.Double(), nullable=True),
    sa.Column("handoff", sa.Boolean(), nullable=False),
    sa.Column("disagree", sa.Boolean(), nullable=False),
    sa.Column("double", sa.Boolean(), nullable=False),  # goes to two reviewers (agreement)
    sa.Column("weights", sa.JSON(), nullable=False),  # {stream: sampling weight}
    sa.Column("request_ids", sa.JSON(), nullable=False),  # a few of the collapsed requests, for tracing
    sa.UniqueConstraint("queue", "dedupe_key", name="uq_review_items_queue_key"),
)
"""One text to review: the served requests it stands for, the model's top labels and why it was chosen."""

review_slots = sa.Table(
    "review_slots",
    metadata,
    sa.Column("id", _Id, sa.Sequence("review_slots_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("stream", sa.String(16), nullable=False),  # uncertainty | disagreement | handoff | random
    sa.Column("item_id", _Id, sa.ForeignKey("review_items.id"), nullable=False),
    sa.Column("key", sa.Double(), nullable=False),  # priority key U / weight: reviewed in ascending order
    sa.UniqueConstraint("queue", "stream", "item_id", name="uq_review_slots_item"),
    sa.Index("ix_review_slots_queue_stream_key", "queue", "stream", "key"),
)
"""An item's place in one stream of a queue (an item may sit in several streams; it is reviewed once)."""

review_answers = sa.Table(
    "review_answers",
    metadata,
    sa.Column("id", _Id, sa.Sequence("review_answers_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("item_id", _Id, sa.ForeignKey("review_items.id"), nullable=False),
    sa.Column("reviewer", sa.String(128), nullable=False),
    sa.Column("ts", sa.DateTime(), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # label | reject | skip | adjudicate
    sa.Column("label", sa.String(256), nullable=True),
    sa.Column("new_label", sa.Boolean(), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # the item's source, copied for the record
    sa.Column("stream", sa.String(16), nullable=True),  # the stream that handed the item out
    sa.Column("seconds", sa.Double(), nullable=True),  # time the reviewer spent on the item
    sa.Column("undone_at", sa.DateTime(), nullable=True),  # set by undo: the answer is kept, but no longer counts
    sa.Index("ix_review_answers_queue_item", "queue", "item_id"),
    sa.Index("ix_review_answers_queue_reviewer_ts", "queue", "reviewer", "ts"),
)
"""One reviewer's answer on one item, with the time and the item's source; undo marks it, never deletes it."""

review_reviewers = sa.Table(
    "review_reviewers",
    metadata,
    sa.Column("id", _Id, sa.Sequence("review_reviewers_id_seq"), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),  # the token itself is never stored
    sa.Column("created", sa.DateTime(), nullable=False),
    sa.Column("expires", sa.DateTime(), nullable=True),
    sa.Column("queue", sa.String(128), nullable=True),  # None: every queue
)
"""A reviewer's login token (stored as its SHA-256) and when it expires."""
