"""The study storage: an Optuna RDB study (SQLite by default, PostgreSQL by URL) beside, never inside, the
growthcurve store; the search space stored with the study so a changed space is refused on resume."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from pathlib import Path

import optuna
import sqlalchemy as sa
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution

from growthcurve.errors import ConfigError, DataError
from growthcurve.growth.tune.space import TuneSpec, describe
from growthcurve.store import masked_url as mask_url

ATTR_SPACE, ATTR_METRIC, ATTR_BASE = "growthcurve_search_space", "growthcurve_metric", "growthcurve_base_hash"


def default_storage(store_url: str) -> str:
    """The study storage that goes with a growthcurve store URL.

    Optuna and the growthcurve store both keep their schema version in Alembic's ``alembic_version`` table, so
    one database cannot hold both (each refuses the other's revision; checked with optuna 5.0). A SQLite store
    therefore gets a sibling file (``growthcurve.db`` → ``growthcurve-optuna.db``); other URLs are used as they
    are and must name a database of their own (see :func:`check_storage`)."""
    url = sa.engine.make_url(store_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        p = Path(url.database)
        return url.set(database=str(p.with_name(f"{p.stem}-optuna{p.suffix}"))).render_as_string(hide_password=False)
    return store_url


def check_storage(url: str) -> None:
    """Refuse a storage URL that cannot hold an Optuna study: not a URL, or a growthcurve store database."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"--storage '{url}' is not a database URL (e.g. sqlite:///tune.db or postgresql://...)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("--storage needs a SQLite file (sqlite:///tune.db): an in-memory study cannot be resumed")
        p = Path(parsed.database)
        if p.is_dir():
            raise ConfigError(f"--storage '{url}' names a folder; give a file, e.g. sqlite:///{p / 'study.db'}")
        if not p.exists():
            return
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return
            versions = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--storage '{mask_url(url)}' needs the driver '{exc.name}': pip install it") from None
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"cannot open the study storage '{mask_url(url)}': {str(exc).splitlines()[0][:200]}") from None
    finally:
        with contextlib.suppress(NameError):
            engine.dispose()
    if any(not v.startswith("v") for v in versions):  # Optuna's revisions are "v3.2.0.a"; growthcurve's "0004_..."
        raise ConfigError(
            f"--storage '{mask_url(url)}' is a growthcurve store database: Optuna keeps its own Alembic version "
            "table and cannot share it; give a database of its own, e.g. --storage sqlite:///tune.db"
        )


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so a trial whose worker died on another machine is failed and retried
    (Optuna's own mechanism); the parent folder of a SQLite file is created."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8: say it once in the docs
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=60,
                grace_period=180,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"cannot open the study storage '{mask_url(url)}': {str(exc).splitlines()[0][:200]}") from None


def base_hash(spec: TuneSpec) -> str:
    """Hash of the resolved finetune config the trials start from (the registry's canonical config hash)."""
    from growthcurve.store.registry import config_hash

    return config_hash(spec.cfg.model_dump(mode="json"))


def space_json(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    return {k: distribution_to_json(d) for k, d in space.items()}


def space_changes(stored: Mapping[str, BaseDistribution], declared: Mapping[str, BaseDistribution]) -> list[str]:
    """What differs between a study's space and the declared one, one phrase per key (empty: the same)."""
    out = [f"{k} added ({describe(declared[k])})" for k in declared if k not in stored]
    out += [f"{k} removed (was {describe(stored[k])})" for k in stored if k not in declared]
    out += [
        f"{k} changed ({describe(stored[k])} -> {describe(declared[k])})"
        for k in declared
        if k in stored and stored[k] != declared[k]
    ]
    return out


def stored_space(study: optuna.Study) -> dict[str, BaseDistribution] | None:
    """The space a study was created with: the attribute growthcurve stores, else the trials' distributions."""
    attr = study.user_attrs.get(ATTR_SPACE)
    if attr is not None:
        return {k: json_to_distribution(v) for k, v in attr.items()}
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return None
    stored: dict[str, BaseDistribution] = {}
    for t in trials:
        stored.update(t.distributions)
    return stored
