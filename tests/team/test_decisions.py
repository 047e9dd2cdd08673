"""The decision log: `growthcurve decide` stores the recomputed A/B result; bad input is one line, exit 2."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import sqlalchemy as sa
from scipy import stats

from growthcurve.cli import main
from growthcurve.errors import ConfigError
from growthcurve.store import experiment_events, init_db, insert_rows, list_decisions, record_decision


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture
def store(tmp_path):
    """A store with one experiment: treatment converts more and was served by model v2."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = init_db(url)
    rng = np.random.default_rng(0)
    t0, rows, conv = dt.datetime(2026, 11, 1), [], {"control": [], "treatment": []}
    for i in range(1500):
        v = "control" if i % 2 else "treatment"
        c = float(rng.random() < (0.10 if v == "control" else 0.15))
        conv[v].append(c)
        common = dict(experiment="reply", unit_id=f"u{i}", variant=v, ts=t0 + dt.timedelta(minutes=i))
        version = "v1" if v == "control" else "v2"
        rows.append({**common, "metric": "converted", "value": c, "model_version": version})
        rows.append({**common, "metric": "csat", "value": float(rng.integers(1, 6)), "model_version": version})
    insert_rows(engine, experiment_events, rows)
    engine.dispose()
    return url, conv


def test_decide_stores_the_recomputed_ab_result_as_evidence(store, tmp_path, capsys):
    url, conv = store
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "metrics.json").write_text('{"test": {"accuracy": 0.91}}')
    argv = ["decide", "reply", "--ship", "treatment", "--why", "conversion up", "--store", url, "--by", "ana"]
    code, out, err = _run([*argv, "--run", str(run)], capsys)
    assert code == 0, err
    assert "logged decision #1" in out
    engine = sa.create_engine(url)
    (row,) = list_decisions(engine, "reply")
    assert (row["decision"], row["variant"], row["decided_by"], row["why"]) == (
        "ship",
        "treatment",
        "ana",
        "conversion up",
    )
    ev = row["evidence"]
    assert ev["units"] == {"control": 750, "treatment": 750}
    assert ev["model_versions"] == {"control": ["v1"], "treatment": ["v2"]}
    assert ev["metrics"] == {"converted": "binomial", "csat": "mean"}
    assert ev["runs"][0]["metrics"]["test"]["accuracy"] == 0.91
    (m,) = [m for m in ev["ab_result"]["metrics"] if m["metric"] == "converted"]
    lift = np.mean(conv["treatment"]) / np.mean(conv["control"]) - 1
    assert m["comparisons"][0]["frequentist"]["rel_effect"] == pytest.approx(lift)
    # the analysis' p-value agrees with an independent Welch test on the raw 0/1 outcomes
    a, b = np.array(conv["control"]), np.array(conv["treatment"])
    p = stats.ttest_ind(b, a, equal_var=False).pvalue
    assert m["comparisons"][0]["frequentist"]["p_value"] == pytest.approx(p, rel=0.05)
    code, out, _ = _run(["decide", "reply", "--continue", "--why", "wait for csat", "--store", url], capsys)
    assert code == 0
    code, out, _ = _run(["decisions", "list", "--store", url, "--json", str(tmp_path / "log.json")], capsys)
    assert code == 0 and "Decision log" in out and "conversio" in out and "ana" in out
    log = json.loads((tmp_path / "log.json").read_text())
    assert [r["decision"] for r in log] == ["ship", "continue"] and log[1]["variant"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["decide", "replay", "--ship", "treatment", "--why", "x"], "experiment 'replay' has no events in the store"),
        (["decide", "reply", "--ship", "B", "--why", "x"], "variant 'B' was not in experiment 'reply'"),
        (["decide", "reply", "--reject", "B", "--why", "x"], "(variants: control, treatment)"),
        (["decide", "reply", "--ship", "treatment"], "say why"),
        (["decide", "reply", "--ship", "treatment", "--reject", "control", "--why", "x"], "exactly one of"),
    ],
)
def test_decide_bad_input_is_one_line(store, capsys, args, message):
    url, _ = store
    code, _, err = _run([*args, "--store", url], capsys)
    assert code == 2 and err.startswith("error:") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert list_decisions(sa.create_engine(url)) == []  # nothing half-logged


def test_record_decision_is_callable_without_the_analysis(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'x.db'}")
    key = record_decision(engine, "exp", "ship", "B", "sequential test stopped", {"stopped_at": 812}, "serving")
    (row,) = list_decisions(engine)
    assert row["id"] == key and row["evidence"] == {"stopped_at": 812} and row["decided_by"] == "serving"
    with pytest.raises(ConfigError, match="one of ship, reject, continue"):
        record_decision(engine, "exp", "merge", "B", "why", None)
    with pytest.raises(ConfigError, match="names the variant"):
        record_decision(engine, "exp", "reject", None, "why", None)


def test_decide_on_duckdb(store, tmp_path, capsys):
    pytest.importorskip("duckdb_engine", reason="DuckDB needs the warehouse extra")
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    engine = init_db(url)
    key = record_decision(engine, "exp", "reject", "B", "worse", {"a": [1, 2]}, "ana")
    (row,) = list_decisions(engine, "exp")
    assert row["id"] == key and row["evidence"] == {"a": [1, 2]}
    engine.dispose()


def test_migration_0002_upgrades_and_downgrades(tmp_path):
    from alembic import command
    from alembic.config import Config

    import growthcurve.store

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = init_db(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(growthcurve.store._ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert "decisions" not in sa.inspect(engine).get_table_names()
    engine = init_db(url)
    assert {"id", "ts", "experiment", "decision", "variant", "decided_by", "why", "evidence"} <= {
        c["name"] for c in sa.inspect(engine).get_columns("decisions")
    }
