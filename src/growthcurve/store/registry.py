"""The run registry: every finetune, tune, retrain, ab analyze and plan allocate is one row of ``runs``, with
the config and its hash, the input files' fingerprint, the code version, the metrics, the artefact path and
the parent run, so any two runs can be compared and traced back to what produced them.

Plain SQLAlchemy Core on the shared store (SQLite by default, PostgreSQL/DuckDB by URL); ``url=None`` means
:func:`growthcurve.store.default_url`. Times are stored as naive UTC and returned timezone-aware (UTC).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import hashlib
import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import sqlalchemy as sa

from growthcurve.data.fingerprint import data_fingerprint
from growthcurve.errors import ConfigError, DataError
from growthcurve.store import STORE_ENV, init_db, open_existing, store_url
from growthcurve.store.schema import runs

__all__ = [
    "KINDS",
    "assign_version",
    "version_ref",
    "MODEL_KINDS",
    "PARENT_ENV",
    "STATUSES",
    "TRIAL_ENV",
    "RunRecord",
    "code_version",
    "compare_runs",
    "config_hash",
    "find_by_artefact",
    "finish_run",
    "flatten",
    "get_run",
    "list_runs",
    "parent_run",
    "record_finished",
    "start_run",
]

KINDS = ("finetune", "tune", "retrain", "compress", "ab-analyze", "plan-allocate")
# the kinds whose finished runs are servable models and so become versions of a model lineage
MODEL_KINDS = ("finetune", "retrain", "compress")
STATUSES = ("running", "finished", "failed", "interrupted")
PARENT_ENV = "GROWTHCURVE_PARENT_RUN"
# set by `tune` around its trials: a trial's model becomes a version only when the study picks it
TRIAL_ENV = "GROWTHCURVE_TUNE_TRIAL"
_FINAL = STATUSES[1:]


@dataclass
class RunRecord:
    """One registered run, as stored (see the module docstring for the meaning of each field)."""

    id: str
    kind: str
    name: str | None
    task: str | None
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    config: dict[str, Any]
    config_hash: str
    data_fingerprint: dict[str, str]
    code_version: str
    metrics: dict[str, Any]
    artefact: str | None
    parent: str | None
    model: str | None = None
    version: int | None = None
    fingerprint: str | None = None

    @property
    def ref(self) -> str | None:
        """The version's one name, ``intents@v2`` (None for a run that is not a model version)."""
        return version_ref(self.model, self.version)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (ISO times), for ``--json`` output and reports."""
        d = dict(self.__dict__)
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        d["ref"] = self.ref
        return d


def version_ref(model: str | None, version: int | None) -> str | None:
    """``intents@v2`` from its parts (None when either is missing)."""
    return f"{model}@v{version}" if model and version is not None else None


_REF = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9._-]{0,63})@(?:v(?P<v>[0-9]+)|(?P<latest>latest))$")


def is_ref(text: str | os.PathLike[str]) -> bool:
    """True for ``name@vN`` / ``name@latest`` (a path with an @ in a folder name is not one)."""
    return bool(_REF.match(os.fspath(text)))


def parse_ref(text: str) -> tuple[str, int | None]:
    """``intents@v2`` → ("intents", 2); ``intents@latest`` → ("intents", None); anything else a ConfigError."""
    m = _REF.match(text)
    if m is None:
        raise ConfigError(f"'{text}' is not a model version: write it as NAME@vN (e.g. intents@v2) or NAME@latest")
    return m["model"], None if m["latest"] else int(m["v"])


# --- helpers ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def parent_run(run_id: str | None, trial: bool = False) -> Iterator[None]:
    """Around fits started by another run (a tune study): their rows name ``run_id`` as parent (env
    ``GROWTHCURVE_PARENT_RUN``, read by :func:`start_run`, inherited by `accelerate launch` workers); ``trial``:
    their models become versions only when the study picks one (env ``GROWTHCURVE_TUNE_TRIAL``)."""
    saved = {k: os.environ.get(k) for k in (PARENT_ENV, TRIAL_ENV)}
    if run_id:
        os.environ[PARENT_ENV] = run_id
    if trial:
        os.environ[TRIAL_ENV] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.replace(tzinfo=dt.UTC)


def _json_default(obj: Any) -> Any:
    # paths and times are the only non-JSON values configs carry; anything else is a caller's bug
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def _jsonable(obj: Any, what: str) -> Any:
    """``obj`` as plain JSON values (the config and metrics columns are JSON)."""
    try:
        return json.loads(json.dumps(obj, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the run's {what} cannot be stored as JSON: {exc}") from None


def config_hash(config: dict[str, Any]) -> str:
    """First 16 hex of the SHA-256 of the canonical JSON (sorted keys, no spaces): equal configs, equal hash."""
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=False)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


@functools.cache
def code_version() -> str:
    """``growthcurve X.Y.Z+git<sha>`` when the package runs from a git checkout, else ``growthcurve X.Y.Z``."""
    from growthcurve import __version__

    base = f"growthcurve {__version__}"
    pkg = Path(__file__).resolve().parents[1]
    if "site-packages" in pkg.parts:  # an installed wheel: a .git above it belongs to something else
        return base
    if not any((p / ".git").exists() for p in pkg.parents):
        return base
    try:
        out = subprocess.run(
            ["git", "-C", str(pkg), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):  # no git binary, not a repo, a hung filesystem: stay quiet
        return base
    sha = out.stdout.strip()
    return f"{base}+git{sha}" if sha else base


def _new_id(now: dt.datetime) -> str:
    return f"r-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _url(url: str | None) -> str:
    return store_url(url)


_READY: dict[str, sa.Engine] = {}


def _write_engine(url: str | None) -> sa.Engine:
    """An engine whose schema is at head; the Alembic upgrade runs once per URL and process."""
    u = _url(url)
    if u not in _READY:
        _READY[u] = init_db(u)
    return _READY[u]


def _read_engine(url: str | None) -> sa.Engine | None:
    """An engine on an existing registry, or None when nothing was recorded there yet (creates no file)."""
    u = _url(url)
    if u in _READY:
        return _READY[u]
    file = sa.engine.make_url(u).database
    if sa.engine.make_url(u).get_backend_name() in ("sqlite", "duckdb") and file and not Path(file).exists():
        return None
    engine = open_existing(u)
    try:
        has = sa.inspect(engine).has_table("runs")
    except sa.exc.DBAPIError as exc:
        raise _unreachable(engine, exc) from None
    if not has:
        return None
    engine.dispose()
    _READY[u] = init_db(u)  # an older store gains the newest columns (lineage) before anything reads them
    return _READY[u]


def _unreachable(engine: sa.Engine, exc: sa.exc.DBAPIError) -> DataError:
    return DataError(
        f"cannot reach the run registry at {engine.url!r}: {str(exc.orig).strip()[:200]} "
        f"(set --store or {STORE_ENV} to a reachable database URL)"
    )


def _record(row: Any) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        kind=m["kind"],
        name=m["name"],
        task=m["task"],
        status=m["status"],
        started_at=_aware(m["started_at"]),  # type: ignore[arg-type]
        finished_at=_aware(m["finished_at"]),
        config=m["config"] or {},
        config_hash=m["config_hash"],
        data_fingerprint=m["data_fingerprint"] or {},
        code_version=m["code_version"],
        metrics=m["metrics"] or {},
        artefact=m["artefact"],
        parent=m["parent"],
        model=m.get("model"),
        version=m.get("version"),
        fingerprint=m.get("fingerprint"),
    )


def _norm_path(path: str | os.PathLike[str]) -> str:
    return str(Path(path).expanduser().resolve())


# --- the contract -------------------------------------------------------------------------------------


def start_run(
    kind: str,
    *,
    name: str | None = None,
    task: str | None = None,
    config: dict[str, Any] | None = None,
    data_files: Iterable[str | os.PathLike[str] | None] = (),
    artefact: str | os.PathLike[str] | None = None,
    parent: str | None = None,
    model: str | None = None,
    url: str | None = None,
) -> str:
    """Record a run as ``running`` and return its new id; ``parent`` defaults to env ``GROWTHCURVE_PARENT_RUN``.
    ``model``: the lineage a servable model of this run belongs to (its version is given when it finishes).

    Raises DataError when the store cannot be reached: callers that must not lose their work (a finished
    training run) catch it and warn."""
    if kind not in KINDS:
        raise ConfigError(f"run kind must be one of {', '.join(KINDS)} (got '{kind}')")
    cfg = _jsonable(config or {}, "config")
    row = {
        "kind": kind,
        "name": name,
        "task": task,
        "status": "running",
        "config": cfg,
        "config_hash": config_hash(cfg),
        "data_fingerprint": data_fingerprint(str(p) if p else None for p in data_files),
        "code_version": code_version(),
        "metrics": {},
        "artefact": _norm_path(artefact) if artefact else None,
        "parent": parent or os.environ.get(PARENT_ENV) or None,
        "model": model,
    }
    engine = _write_engine(url)
    for _ in range(8):  # 4 hex digits per second: a clash needs two runs in the same second, so retry
        now = _utcnow()
        run_id = _new_id(now)
        try:
            with engine.begin() as conn:
                conn.execute(sa.insert(runs).values(id=run_id, started_at=now, **row))
            return run_id
        except sa.exc.IntegrityError:
            continue
        except sa.exc.OperationalError as exc:
            raise _unreachable(engine, exc) from None
    raise DataError("could not find a free run id after 8 tries (is the clock stuck?)")


def finish_run(
    run_id: str,
    status: str,
    *,
    metrics: dict[str, Any] | None = None,
    artefact: str | os.PathLike[str] | None = None,
    fingerprint: str | None = None,
    versioned: bool = True,
    url: str | None = None,
) -> int | None:
    """Mark a run ``finished`` / ``failed`` / ``interrupted`` with its metrics (and final artefact path).

    A finished run that names its model (``start_run(model=...)``) and gives the ``fingerprint`` of its model
    folder becomes that model's next version, which is returned (``versioned=False``: a tune trial, versioned
    only if the study picks it, see :func:`assign_version`)."""
    if status not in _FINAL:
        raise ConfigError(f"a run finishes as one of {', '.join(_FINAL)} (got '{status}')")
    values: dict[str, Any] = {"status": status, "finished_at": _utcnow()}
    if metrics is not None:
        values["metrics"] = _jsonable(metrics, "metrics")
    if artefact is not None:
        values["artefact"] = _norm_path(artefact)
    if fingerprint is not None:
        values["fingerprint"] = fingerprint
    engine = _write_engine(url)
    try:
        with engine.begin() as conn:
            n = conn.execute(sa.update(runs).where(runs.c.id == run_id).values(**values)).rowcount
    except sa.exc.OperationalError as exc:
        raise _unreachable(engine, exc) from None
    if n == 0:
        raise DataError(f"no run '{run_id}' in the registry at {engine.url!r} to finish")
    if status == "finished" and fingerprint is not None and versioned:
        return assign_version(run_id, url)
    return None


def assign_version(run_id: str, url: str | None = None) -> int | None:
    """Give the finished run ``run_id`` the next version of its model and return it (its existing version if it
    has one; None when the run names no model). Two runs finishing at once cannot share a version: the unique
    (model, version) index refuses the second, which reads the new maximum and tries again."""
    engine = _write_engine(url)
    t = runs
    for _ in range(20):
        try:
            with engine.begin() as conn:
                row = conn.execute(sa.select(t.c.model, t.c.version, t.c.status).where(t.c.id == run_id)).first()
                if row is None:
                    raise DataError(f"no run '{run_id}' in the registry at {engine.url!r}")
                if row.version is not None or not row.model:
                    return row.version
                if row.status != "finished":
                    raise ConfigError(f"run {run_id} is {row.status}: only a finished run becomes a model version")
                top = conn.execute(sa.select(sa.func.max(t.c.version)).where(t.c.model == row.model)).scalar()
                version = int(top or 0) + 1
                conn.execute(sa.update(t).where(t.c.id == run_id).values(version=version))
            return version
        except sa.exc.IntegrityError:
            continue
        except sa.exc.OperationalError as exc:
            raise _unreachable(engine, exc) from None
    raise DataError(f"could not give run {run_id} a version after 20 tries: is another process looping?")


def list_runs(
    url: str | None = None, *, kind: str | None = None, task: str | None = None, status: str | None = None
) -> list[RunRecord]:
    """The registered runs, oldest first, optionally filtered; an empty store gives an empty list."""
    engine = _read_engine(url)
    if engine is None:
        return []
    t = runs
    q = sa.select(t).order_by(t.c.started_at, t.c.id)
    for col, value in (("kind", kind), ("task", task), ("status", status)):
        if value is not None:
            q = q.where(t.c[col] == value)
    try:
        with engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]
    except sa.exc.OperationalError as exc:
        raise _unreachable(engine, exc) from None


def find_by_artefact(path: str | os.PathLike[str], url: str | None = None) -> RunRecord | None:
    """The newest run whose artefact is ``path`` (a run folder, or its ``model/`` subfolder), or None."""
    engine = _read_engine(url)
    if engine is None:
        return None
    p = Path(_norm_path(path))
    candidates = [str(p)] + ([str(p.parent)] if p.name == "model" else [])
    t = runs
    q = sa.select(t).where(t.c.artefact.in_(candidates)).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(1)
    try:
        with engine.connect() as conn:
            row = conn.execute(q).first()
    except sa.exc.OperationalError as exc:
        raise _unreachable(engine, exc) from None
    return _record(row) if row is not None else None


def get_run(run_id_or_artefact_path: str | os.PathLike[str], url: str | None = None) -> RunRecord:
    """A run by id, unique id prefix, artefact path or unique name; unknown or ambiguous ones raise DataError
    naming the close matches."""
    key = os.fspath(run_id_or_artefact_path)
    if is_ref(key) and not Path(key).exists():
        return get_version(key, url)
    engine = _read_engine(url)
    if engine is None:
        raise DataError(f"no run '{key}': nothing is registered at {_url(url)} yet (run growthcurve finetune first)")
    t = runs
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == key)).first()
            if row is not None:
                return _record(row)
            pref = conn.execute(sa.select(t).where(t.c.id.startswith(key, autoescape=True)).limit(6)).all()
            if len(pref) == 1:
                return _record(pref[0])
            if len(pref) > 1:
                ids = ", ".join(r._mapping["id"] for r in pref[:5])
                raise DataError(f"run id prefix '{key}' is ambiguous: it matches {ids}; give more characters")
            named = conn.execute(sa.select(t).where(t.c.name == key).limit(6)).all()
            known = conn.execute(sa.select(t.c.id, t.c.name)).all()
    except sa.exc.OperationalError as exc:
        raise _unreachable(engine, exc) from None
    if len(named) == 1:
        return _record(named[0])
    if len(named) > 1:
        ids = ", ".join(r._mapping["id"] for r in named[:5])
        raise DataError(f"run name '{key}' is ambiguous: runs {ids} carry it; give the id")
    by_path = find_by_artefact(key, url) if ("/" in key or os.sep in key or Path(key).exists()) else None
    if by_path is not None:
        return by_path
    words = [r.id for r in known] + [r.name for r in known if r.name]
    close = difflib.get_close_matches(key, words, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (growthcurve runs list shows the ids)"
    raise DataError(f"no run '{key}' in the registry at {engine.url!r}{hint}")


def get_version(ref: str, url: str | None = None) -> RunRecord:
    """The registry row of ``intents@v2`` (or ``intents@latest``); an unknown model or version is one DataError
    line listing what exists."""
    model, version = parse_ref(ref)
    engine = _read_engine(url)
    t = runs
    rows, models = [], []
    if engine is not None:
        try:
            with engine.connect() as conn:
                q = sa.select(t).where(t.c.model == model, t.c.version.is_not(None)).order_by(t.c.version)
                rows = [_record(r) for r in conn.execute(q)]
                if not rows:
                    q2 = sa.select(t.c.model).where(t.c.version.is_not(None)).distinct().order_by(t.c.model)
                    models = [str(m) for (m,) in conn.execute(q2)]
        except sa.exc.OperationalError as exc:
            raise _unreachable(engine, exc) from None
    if not rows:
        listed = ", ".join(models) if models else "none yet (a finished `growthcurve finetune` makes v1)"
        raise DataError(f"no model '{model}' in the store {_url(url)} (models: {listed})")
    if version is None:
        return rows[-1]
    for rec in rows:
        if rec.version == version:
            return rec
    have = ", ".join(f"v{r.version}" for r in rows)
    raise DataError(f"{model} has no version v{version} (versions: {have})")


# --- comparing two runs -------------------------------------------------------------------------------


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"test": {"accuracy": 0.9}}`` -> ``{"test.accuracy": 0.9}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _is_number(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _data_roles(config: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` section of a run's config (a retrain row keeps its fine-tuning config under ``finetune``)."""
    finetune = config.get("finetune")
    inner: dict[str, Any] = finetune if isinstance(finetune, dict) else config
    data = inner.get("data")
    return data if isinstance(data, dict) else {}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A retrain row's config with its fine-tuning keys at the top, so it compares key by key with a finetune."""
    if isinstance(config.get("finetune"), dict):
        return {**config["finetune"], **{k: v for k, v in config.items() if k != "finetune"}}
    return config


def compare_runs(a: RunRecord, b: RunRecord) -> dict[str, Any]:
    """What changed from run ``a`` to run ``b``: per-metric deltas (B − A over flattened numeric metrics), the
    config keys whose values differ, and each input file whose fingerprint changed. Input files are paired
    by their role in the config (``data.train`` ...) so the same role under another path still compares."""
    ma, mb = flatten(a.metrics), flatten(b.metrics)
    metrics = []
    for key in sorted(set(ma) | set(mb)):
        va, vb = ma.get(key), mb.get(key)
        if not (_is_number(va) or _is_number(vb)):
            continue
        delta = vb - va if _is_number(va) and _is_number(vb) else None
        metrics.append({"key": key, "a": va, "b": vb, "delta": delta})
    ca, cb = flatten(_comparable(a.config)), flatten(_comparable(b.config))
    config = [
        {"key": k, "a": ca.get(k), "b": cb.get(k)}
        for k in sorted(set(ca) | set(cb))
        if ca.get(k) != cb.get(k) or (k in ca) != (k in cb)
    ]
    data = []
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    roles_a, roles_b = _data_roles(a.config), _data_roles(b.config)
    for role in sorted(set(roles_a) | set(roles_b)):
        pa, pb = roles_a.get(role), roles_b.get(role)
        pa, pb = (pa if isinstance(pa, str) else None), (pb if isinstance(pb, str) else None)  # not data.labels
        if not (pa in a.data_fingerprint or pb in b.data_fingerprint):
            continue
        seen_a.update([pa] if pa else [])
        seen_b.update([pb] if pb else [])
        fa = a.data_fingerprint.get(pa) if pa is not None else None
        fb = b.data_fingerprint.get(pb) if pb is not None else None
        data.append({"input": role, "path_a": pa, "path_b": pb, "a": fa, "b": fb, "changed": fa != fb})
    for path in sorted((set(a.data_fingerprint) - seen_a) | (set(b.data_fingerprint) - seen_b)):
        fa, fb = a.data_fingerprint.get(path), b.data_fingerprint.get(path)
        data.append({"input": Path(path).name, "path_a": path, "path_b": path, "a": fa, "b": fb, "changed": fa != fb})
    return {
        "a": a.id,
        "b": b.id,
        "a_ref": a.ref,
        "b_ref": b.ref,
        "metrics": metrics,
        "config": config,
        "data": data,
        "data_changed": any(d["changed"] for d in data),
        "same_config": a.config_hash == b.config_hash,
        "code_version": {"a": a.code_version, "b": b.code_version},
    }


def record_finished(
    kind: str,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    data_files: Iterable[str | os.PathLike[str] | None] = (),
    metrics: dict[str, Any] | None = None,
    artefact: str | os.PathLike[str] | None = None,
    url: str | None = None,
) -> str | None:
    """Register a command that has already done its work (``ab analyze``, ``plan allocate``) as one finished
    row; a store that cannot be reached costs one warning line on stderr, never the command's result."""
    import sys

    try:
        run_id = start_run(kind, name=name, config=config, data_files=data_files, artefact=artefact, url=url)
        finish_run(run_id, "finished", metrics=metrics or {}, url=url)
        return run_id
    except (DataError, sa.exc.SQLAlchemyError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"warning: the run registry did not record this {kind} ({msg})", file=sys.stderr)
        return None
