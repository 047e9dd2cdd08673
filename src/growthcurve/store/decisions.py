"""The decision log: who shipped, rejected or kept running which variant of an experiment, why, and on
which evidence. Plain SQL on the ``decisions`` table, so the serving layer can record the stop of a
sequential test without importing the analysis code."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from typing import Any

import sqlalchemy as sa

from growthcurve.errors import ConfigError, DataError
from growthcurve.store.schema import decisions

DECISIONS = ("ship", "reject", "continue")


def current_user() -> str:
    """The OS user, for ``decided_by`` when nobody is named."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no USER/LOGNAME set
        return os.environ.get("USER") or "unknown"


def record_decision(
    engine: sa.Engine,
    experiment: str,
    decision: str,
    variant: str | None,
    why: str,
    evidence: dict[str, Any] | None,
    decided_by: str | None = None,
) -> int:
    """Append one decision to the log and return its id; the caller has created the schema (``init_db``)."""
    if decision not in DECISIONS:
        raise ConfigError(f"decision must be one of {', '.join(DECISIONS)} (got '{decision}')")
    if decision != "continue" and not variant:
        raise ConfigError(f"a '{decision}' decision names the variant it ships or rejects")
    if not why or not why.strip():
        raise ConfigError("say why the decision was made (--why): the log is read by people who were not there")
    row = {
        "ts": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "experiment": experiment,
        "decision": decision,
        "variant": variant,
        "decided_by": decided_by or current_user(),
        "why": why.strip(),
        "evidence": evidence,
    }
    try:
        with engine.begin() as conn:
            result = conn.execute(decisions.insert().values(**row))
            key = result.inserted_primary_key
            if key is not None and key[0] is not None:
                return int(key[0])
            # some dialects report no key: the newest row of this experiment is ours (same transaction)
            q = sa.select(sa.func.max(decisions.c.id)).where(decisions.c.experiment == experiment)
            return int(conn.execute(q).scalar_one())
    except sa.exc.OperationalError as exc:
        raise DataError(
            f"cannot write the decision to {engine.url!r}: {exc.orig} (run growthcurve ab init-db)"
        ) from None


def list_decisions(engine: sa.Engine, experiment: str | None = None) -> list[dict[str, Any]]:
    """The logged decisions, oldest first, optionally of one experiment."""
    q = sa.select(decisions).order_by(decisions.c.ts, decisions.c.id)
    if experiment is not None:
        q = q.where(decisions.c.experiment == experiment)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
    except sa.exc.OperationalError as exc:
        raise DataError(
            f"cannot read the decision log at {engine.url!r}: {exc.orig} (run growthcurve ab init-db)"
        ) from None
