"""SQL aggregation equals pandas on SQLite, DuckDB and PostgreSQL; store schema; SRM through SQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from growthcurve.errors import ConfigError, DataError
from growthcurve.store import experiment_events, init_db, insert_rows
from growthcurve.validation.config import ABConfig, AnalysisConfig, MetricConfig, SourceConfig
from growthcurve.validation.experiment import analyze
from growthcurve.validation.sql import EventSource, reflect

METRICS = [
    MetricConfig(name="conv", type="binomial", column="converted"),
    MetricConfig(name="rev", type="mean", column="revenue", covariate="pre"),
    MetricConfig(name="rps", type="ratio", numerator="revenue", denominator="sessions"),
    MetricConfig(name="sat", type="mean", column="rating", aggregation="mean"),
]


def _events(n_units: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    t0 = dt.datetime(2026, 1, 1)
    for u in range(n_units):
        variant = ["control", "b", "c"][u % 3]
        for j in range(1 + rng.poisson(1.2)):
            rows.append(
                {
                    "unit_id": f"u{u}",
                    "variant": variant,
                    "ts": t0 + dt.timedelta(hours=int(rng.integers(0, 240))),
                    "converted": float(rng.random() < 0.2),
                    "revenue": float(rng.gamma(2, 5)),
                    "sessions": 1.0,
                    "rating": float(rng.integers(1, 6)) if rng.random() < 0.4 else np.nan,
                    "pre": float(rng.normal(10, 2)) if j == 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _pandas_stats(df: pd.DataFrame, m: MetricConfig, until=None) -> dict[str, tuple]:
    if until is not None:
        df = df[df.ts <= until]
    g = df.groupby(["unit_id", "variant"])
    if m.type == "ratio":
        per = pd.DataFrame({"y": g[m.numerator].sum(), "x": g[m.denominator].sum()})
    elif m.type == "binomial":
        per = pd.DataFrame({"y": g[m.value].max().gt(0).astype(float), "x": 0.0})
    elif m.aggregation == "mean":
        per = pd.DataFrame({"y": g[m.value].mean(), "x": 0.0}).dropna(subset=["y"])
    else:
        per = pd.DataFrame({"y": g[m.value].sum(), "x": g[m.covariate].sum() if m.covariate else 0.0})
    per = per.reset_index()
    out = {}
    for v, d in per.groupby("variant"):
        out[v] = (len(d), d.y.sum(), (d.y**2).sum(), d.x.sum(), (d.x**2).sum(), (d.x * d.y).sum())
    return out


def _wide_to_long(df: pd.DataFrame) -> pd.DataFrame:
    long = df.melt(
        id_vars=["unit_id", "variant", "ts"],
        value_vars=["converted", "revenue", "sessions", "rating", "pre"],
        var_name="metric",
    ).dropna()
    long["experiment"] = "exp1"
    return long


def test_sql_aggregation_equals_pandas(db_url: str):
    df = _events()
    engine = sa.create_engine(db_url)
    df.to_sql("wide_events", engine, index=False, chunksize=500)
    init_db(db_url)  # the store's long table in the same database
    rows = _wide_to_long(df).to_dict("records")
    insert_rows(engine, experiment_events, ({**r, "ts": r["ts"].to_pydatetime()} for r in rows))
    # an unrelated experiment in the same table must be filtered out
    insert_rows(
        engine,
        experiment_events,
        [
            dict(
                experiment="other",
                unit_id="zz",
                variant="control",
                ts=dt.datetime(2026, 1, 2),
                metric="revenue",
                value=1e6,
            )
        ],
    )
    wide = EventSource(engine, reflect(engine, "wide_events"), SourceConfig(table="wide_events", format="wide"))
    long_src = EventSource(
        engine, reflect(engine, "experiment_events"), SourceConfig(table="experiment_events", experiment="exp1")
    )
    until = dt.datetime(2026, 1, 5, 12)
    try:
        for m in METRICS:
            for cut in (None, until):
                expected = _pandas_stats(df, m, cut)
                for src in (wide, long_src):
                    got = src.aggregate(m, until=cut)
                    assert sorted(got) == sorted(expected), (m.name, src.cfg.format)
                    for v, exp in expected.items():
                        s = got[v]
                        assert s.n == exp[0]
                        assert (s.sum_y, s.sum_y2, s.sum_x, s.sum_x2, s.sum_xy) == pytest.approx(exp[1:], rel=1e-9)
        assert wide.unit_counts() == {v: int(n) for v, n in df.groupby("variant").unit_id.nunique().items()}
        assert long_src.units_in_several_variants() == 0
    finally:
        engine.dispose()


def test_srm_fires_on_52_48_split_of_100k_units(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = init_db(url)
    t = dt.datetime(2026, 3, 1)
    n = 100_000
    insert_rows(
        engine,
        experiment_events,
        (
            dict(
                experiment="srm",
                unit_id=f"u{i}",
                variant="control" if i < 52_000 else "treatment",
                ts=t,
                metric="converted",
                value=float(i % 10 == 0),
            )
            for i in range(n)
        ),
        batch_size=20_000,
    )
    engine.dispose()
    cfg = ABConfig(
        source=SourceConfig(url=url, experiment="srm"),
        metrics=[MetricConfig(name="converted", type="binomial")],
        analysis=AnalysisConfig(looks=0),
    )
    res = analyze(cfg)
    assert res.srm.counts == {"control": 52_000, "treatment": 48_000}
    assert res.srm.alarm and res.srm.p_value < 1e-30
    assert "SAMPLE RATIO MISMATCH" in res.srm.message
    cfg.analysis.weights = {"control": 0.52, "treatment": 0.48}  # the planned split: no alarm
    assert not analyze(cfg).srm.alarm


def test_store_init_is_idempotent_and_versioned(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = init_db(url)
    init_db(url)
    insp = sa.inspect(engine)
    assert {"experiment_events", "predictions", "feedback", "alembic_version"} <= set(insp.get_table_names())
    cols = {c["name"] for c in insp.get_columns("predictions")}
    assert {"request_id", "model_version", "label", "score", "output"} <= cols
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    # upgraded to the newest revision, whichever that is now (0002 added the decision log)
    from alembic.script import ScriptDirectory

    import growthcurve.store

    head = ScriptDirectory(str(Path(growthcurve.store.__file__).parent / "alembic")).get_current_head()
    assert version == head and version >= "0002"
    engine.dispose()


@pytest.mark.parametrize("bad", ["events; DROP TABLE x", 'ev"ents', "1events", "a.b.c"])
def test_table_identifiers_are_validated(tmp_path, bad):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="plain SQL identifier"):
        reflect(engine, bad)


def test_column_identifiers_are_validated_and_must_exist(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = sa.create_engine(url)
    _events(30).to_sql("ev", engine, index=False)
    src = EventSource(engine, reflect(engine, "ev"), SourceConfig(table="ev", format="wide"))
    with pytest.raises(ConfigError, match="plain SQL identifier"):
        src.aggregate(MetricConfig(name="x", column="revenue) FROM ev; --"))
    with pytest.raises(ConfigError, match="not a column of table 'ev'"):
        src.aggregate(MetricConfig(name="x", column="revenu"))
    with pytest.raises(DataError, match="does not exist"):
        reflect(engine, "missing_table")
    engine.dispose()
