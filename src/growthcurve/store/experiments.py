"""Served experiments: which model versions an experiment's arms serve and how it is analysed.

`serve` writes one row per experiment when it starts (``register_experiment``); `ab analyze EXPERIMENT`,
`decide` and the report read it back (``get_experiment``) and compute from the stored analysis, so the same
events give the same lift, CI and p everywhere. A restart with the same arms is a no-op; a restart that would
serve other versions, weights or salt under the same name is refused, because it would reassign units.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from growthcurve.errors import ConfigError, DataError
from growthcurve.store.schema import experiments

__all__ = ["Arm", "ExperimentRecord", "get_experiment", "list_experiments", "register_experiment"]


@dataclass
class Arm:
    """One arm: its variant name (the version it serves, ``intents@v2``), its role and its traffic share."""

    variant: str
    role: str  # control | treatment
    weight: float
    model: str | None = None
    version: int | None = None
    fingerprint: str | None = None
    run: str | None = None

    def same_as(self, other: Arm) -> bool:
        """Same arm for assignment purposes: name, role, share and weights."""
        return (self.variant, self.role, self.fingerprint) == (other.variant, other.role, other.fingerprint) and abs(
            self.weight - other.weight
        ) < 1e-9


@dataclass
class ExperimentRecord:
    """A stored experiment: arms, analysis config (``metrics`` + ``analysis`` of an `ab analyze` config)."""

    name: str
    created_at: dt.datetime
    updated_at: dt.datetime
    arms: list[Arm]
    config: dict[str, Any]
    salt: str

    @property
    def control(self) -> str:
        """The control arm's variant name."""
        return next((a.variant for a in self.arms if a.role == "control"), self.arms[0].variant)

    @property
    def models(self) -> list[str]:
        """The distinct model names of the arms (one unless the experiment mixes models)."""
        return sorted({a.model for a in self.arms if a.model})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _arms(raw: list[dict[str, Any]]) -> list[Arm]:
    fields: list[dict[str, Any]] = [{k: a.get(k) for k in Arm.__dataclass_fields__} for a in raw]
    return [Arm(**f) for f in fields]


def _record(row: Any) -> ExperimentRecord:
    m = row._mapping
    return ExperimentRecord(m["name"], m["created_at"], m["updated_at"], _arms(m["arms"]), m["config"], m["salt"])


def get_experiment(engine: sa.Engine, name: str) -> ExperimentRecord | None:
    """The stored experiment ``name`` (None when `serve` never recorded it: an older or external experiment)."""
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("experiments"):
                return None
            row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
    except sa.exc.OperationalError as exc:
        raise DataError(f"cannot read experiments from {engine.url!r}: {exc.orig}") from None
    return None if row is None else _record(row)


def list_experiments(engine: sa.Engine) -> list[ExperimentRecord]:
    """Every stored experiment, oldest first."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("experiments"):
            return []
        rows = conn.execute(sa.select(experiments).order_by(experiments.c.created_at)).all()
    return [_record(r) for r in rows]


def register_experiment(
    engine: sa.Engine, name: str, arms: list[Arm], config: dict[str, Any], salt: str
) -> ExperimentRecord:
    """Record ``name`` with its arms and analysis (first start), or check that a restart serves the same arms;
    a different set of versions, weights or salt under the same name is a ConfigError (units would move)."""
    now = _now()
    raw = [a.__dict__ for a in arms]
    with engine.begin() as conn:
        row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
        if row is None:
            conn.execute(
                experiments.insert().values(
                    name=name, created_at=now, updated_at=now, arms=raw, config=config, salt=salt
                )
            )
            return ExperimentRecord(name, now, now, list(arms), config, salt)
        old = _record(row)
        same = len(old.arms) == len(arms) and all(a.same_as(b) for a, b in zip(old.arms, arms, strict=True))
        if not same or old.salt != salt:
            was = ", ".join(f"{a.variant} {a.weight:.0%}" for a in old.arms)
            now_ = ", ".join(f"{a.variant} {a.weight:.0%}" for a in arms)
            raise ConfigError(
                f"experiment '{name}' already ran with {was}{' (another salt)' if old.salt != salt else ''}; "
                f"serving {now_} under the same name would move units between arms: name a new experiment"
            )
        conn.execute(sa.update(experiments).where(experiments.c.name == name).values(updated_at=now))
    old.updated_at = now
    return old
