"""Goal history in SQL (SQLAlchemy Core): key-result definitions and dated check-ins.

SQLite file ``growthcurve.db`` in the working directory by default; ``GROWTHCURVE_DB_URL`` (or an
explicit URL) points it at any SQLAlchemy database, e.g. PostgreSQL. The tables have their own
``MetaData`` and a ``plan_`` prefix so they live beside the experiment-event store's tables.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from growthcurve.dbcheck import require_existing_database
from growthcurve.errors import DataError
from growthcurve.planning.goals import CheckIn, GoalsConfig, KeyResultSpec, ObjectiveSpec

metadata = sa.MetaData()

objectives_table = sa.Table(
    "plan_objectives",
    metadata,
    sa.Column("objective_id", sa.String(200), primary_key=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("owner", sa.String(200)),
    sa.Column("period", sa.String(50)),
)

key_results_table = sa.Table(
    "plan_key_results",
    metadata,
    sa.Column("objective_id", sa.String(200), primary_key=True),
    sa.Column("kr_id", sa.String(200), primary_key=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("owner", sa.String(200)),
    sa.Column("start_value", sa.Float, nullable=False),
    sa.Column("target", sa.Float, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("weight", sa.Float, nullable=False, default=1.0),
    sa.Column("position", sa.Integer, nullable=False, default=0),
)

checkins_table = sa.Table(
    "plan_checkins",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("objective_id", sa.String(200), nullable=False),
    sa.Column("kr_id", sa.String(200), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Index("ix_plan_checkins_kr", "objective_id", "kr_id", "date"),
)


def default_db_url() -> str:
    """The workspace store every command uses (``growthcurve.store.default_url``)."""
    from growthcurve.store import default_url

    return default_url()


class GoalStore:
    """Save goal definitions and check-ins; load them back as a ``GoalsConfig`` with full history."""

    def __init__(self, url: str | None = None, read_only: bool = False) -> None:
        self.url = url or default_db_url()
        self.read_only = read_only
        if read_only:  # a status/review must not create an empty growthcurve.db where none was
            require_existing_database(self.url, "--db")
        try:
            self.engine = sa.create_engine(self.url)
            if not read_only:
                metadata.create_all(self.engine)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise DataError(
                f"cannot open the goal store at '{self.url}': {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from None

    def save_goals(self, goals: GoalsConfig, as_of: dt.date | None = None) -> int:
        """Insert or replace the definitions; history/current become check-ins (same date replaced).

        Returns the number of check-ins written.
        """
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        written = 0
        with self.engine.begin() as conn:
            for o in goals.objectives:
                conn.execute(sa.delete(objectives_table).where(objectives_table.c.objective_id == o.id))
                conn.execute(
                    sa.insert(objectives_table).values(objective_id=o.id, title=o.title, owner=o.owner, period=o.period)
                )
                for pos, kr in enumerate(o.key_results):
                    conn.execute(
                        sa.delete(key_results_table).where(
                            (key_results_table.c.objective_id == o.id) & (key_results_table.c.kr_id == kr.id)
                        )
                    )
                    conn.execute(
                        sa.insert(key_results_table).values(
                            objective_id=o.id,
                            kr_id=kr.id,
                            title=kr.title,
                            owner=kr.owner,
                            start_value=kr.start_value,
                            target=kr.target,
                            start_date=kr.start_date,
                            due_date=kr.due_date,
                            weight=kr.weight,
                            position=pos,
                        )
                    )
                    points = list(kr.history)
                    if kr.current is not None:
                        points.append(CheckIn(date=kr.current_date or as_of or dt.date.today(), value=kr.current))
                    for p in points:
                        self._put_checkin(conn, o.id, kr.id, p.date, p.value, now)
                        written += 1
        return written

    @staticmethod
    def _put_checkin(conn: sa.Connection, oid: str, kid: str, day: dt.date, value: float, now: dt.datetime) -> None:
        c = checkins_table.c
        conn.execute(sa.delete(checkins_table).where((c.objective_id == oid) & (c.kr_id == kid) & (c.date == day)))
        conn.execute(
            sa.insert(checkins_table).values(objective_id=oid, kr_id=kid, date=day, value=value, recorded_at=now)
        )

    def add_checkin(self, objective_id: str, kr_id: str, value: float, day: dt.date | None = None) -> None:
        """Record the value of a key result on a date (today by default); replaces that day's value."""
        kc = key_results_table.c
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.select(kc.kr_id).where((kc.objective_id == objective_id) & (kc.kr_id == kr_id))
            ).first()
            if found is None:
                known = [f"{r.objective_id}/{r.kr_id}" for r in conn.execute(sa.select(kc.objective_id, kc.kr_id))]
                hint = f" (known: {', '.join(known[:8])})" if known else " (run `growthcurve plan goals add` first)"
                raise DataError(f"no key result '{objective_id}/{kr_id}' in the goal store{hint}")
            self._put_checkin(
                conn,
                objective_id,
                kr_id,
                day or dt.date.today(),
                value,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
            )

    def load_goals(self) -> GoalsConfig:
        """All stored objectives with their key results and check-in history."""
        oc, kc, cc = objectives_table.c, key_results_table.c, checkins_table.c
        if self.read_only and not sa.inspect(self.engine).has_table(objectives_table.name):
            return GoalsConfig(objectives=[])  # a database without goal tables holds no goals
        with self.engine.connect() as conn:
            objs = conn.execute(sa.select(objectives_table).order_by(oc.objective_id)).all()
            krs = conn.execute(sa.select(key_results_table).order_by(kc.objective_id, kc.position)).all()
            cis = conn.execute(sa.select(checkins_table).order_by(cc.objective_id, cc.kr_id, cc.date)).all()
        history: dict[tuple[str, str], list[CheckIn]] = {}
        for r in cis:
            history.setdefault((r.objective_id, r.kr_id), []).append(CheckIn(date=r.date, value=r.value))
        by_obj: dict[str, list[KeyResultSpec]] = {}
        for r in krs:
            by_obj.setdefault(r.objective_id, []).append(
                KeyResultSpec(
                    id=r.kr_id,
                    title=r.title,
                    owner=r.owner,
                    start_value=r.start_value,
                    target=r.target,
                    start_date=r.start_date,
                    due_date=r.due_date,
                    weight=r.weight,
                    history=history.get((r.objective_id, r.kr_id), []),
                )
            )
        return GoalsConfig(
            objectives=[
                ObjectiveSpec(
                    id=o.objective_id,
                    title=o.title,
                    owner=o.owner,
                    period=o.period,
                    key_results=by_obj[o.objective_id],
                )
                for o in objs
                if o.objective_id in by_obj
            ]
        )
