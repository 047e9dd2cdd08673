"""The `growthcurve ab ...` and `growthcurve survey ...` commands, run in-process."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from growthcurve.cli import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_ab_analyze_example_writes_json_html_png(tmp_path, capsys):
    cfg = resources.files("growthcurve") / "examples" / "ab" / "ab.yaml"
    code, out, err = _run(["ab", "analyze", str(cfg), "--out", str(tmp_path), "--set", "analysis.looks=4"], capsys)
    assert code == 0, err
    assert out.index("SRM") < out.index("A/B results")  # the SRM verdict comes first
    data = json.loads((tmp_path / "result.json").read_text())
    names = [m["metric"] for m in data["metrics"]]
    assert names == ["conversion", "revenue_per_user", "revenue_per_session", "satisfaction"]
    rpu = data["metrics"][1]
    assert rpu["cuped_theta"] is not None and rpu["comparisons"][0]["variance_reduction"] > 0
    assert len(data["timeline"]) == 4 * 4
    assert (tmp_path / "lift.png").stat().st_size > 1000 and (tmp_path / "timeline.png").exists()
    assert "Sample ratio check" in (tmp_path / "report.html").read_text()
    # the CLI's satisfaction lift equals an independent Welch test on the raw CSV
    ev = pd.read_csv(resources.files("growthcurve") / "examples" / "ab" / "events.csv")
    per = ev.dropna(subset=["satisfaction"]).groupby(["unit_id", "variant"]).satisfaction.mean().reset_index()
    a, b = (per[per.variant == v].satisfaction for v in ("control", "treatment"))
    p = stats.ttest_ind(b, a, equal_var=False).pvalue
    assert data["metrics"][3]["comparisons"][0]["frequentist"]["p_value"] == pytest.approx(p, rel=1e-6)


def test_ab_analyze_errors_are_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "source:\n  url: sqlite:///" + str(tmp_path / "x.db") + "\n  table: 'ev; DROP TABLE x'\nmetrics:\n  - name: m\n"
    )
    code, _, err = _run(["ab", "analyze", str(cfg)], capsys)
    assert code == 2 and err.startswith("error:") and "plain SQL identifier" in err
    cfg.write_text("metrics:\n  - name: m\n    typ: mean\n")
    code, _, err = _run(["ab", "analyze", str(cfg)], capsys)
    assert code == 2 and "unknown config key" in err and "typ" in err
    cfg.write_text("source:\n  path: nowhere.csv\nmetrics:\n  - name: m\n")
    code, _, err = _run(["ab", "analyze", str(cfg)], capsys)
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) <= 2


def test_ab_plan_matches_closed_form(tmp_path, capsys):
    code, out, _ = _run(
        [
            "ab",
            "plan",
            "--baseline",
            "0.1",
            "--mde",
            "0.1",
            "--daily-units",
            "2000",
            "--json",
            str(tmp_path / "plan.json"),
        ],
        capsys,
    )
    assert code == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    n = z**2 * 2 * 0.1 * 0.9 / 0.01**2
    assert plan["units_per_arm"] == math.ceil(n)
    assert plan["days"] == math.ceil(2 * math.ceil(n) / 2000)
    code, _, err = _run(["ab", "plan", "--baseline", "1.5", "--mde", "0.1"], capsys)
    assert code == 2 and "--sd" in err


def test_ab_plan_for_an_effect_wider_than_the_noise_is_two_per_arm(tmp_path, capsys):
    """statsmodels returns NaN when fewer than 2 units per arm would do (it crashed as 'cannot convert float NaN
    to integer'); the plan is then the smallest two-sample test, and its power checks out by hand."""
    code, _, _ = _run(["ab", "plan", "--baseline", "0.1", "--mde", "9", "--json", str(tmp_path / "p.json")], capsys)
    assert code == 0
    plan = json.loads((tmp_path / "p.json").read_text())
    assert plan["units_per_arm"] == 2
    d = 0.9 / math.sqrt(0.1 * 0.9)  # rate 0.1 -> 1.0, in units of the binomial sd
    assert stats.norm.sf(stats.norm.ppf(0.975) - d * math.sqrt(2 / 2)) >= 0.8


def test_ab_simulate_and_example_out(tmp_path, capsys):
    code, out, _ = _run(
        [
            "ab",
            "simulate",
            "--experiments",
            "400",
            "--looks",
            "10",
            "--json",
            str(tmp_path / "sim.json"),
            "--out",
            str(tmp_path / "ev.db"),
        ],
        capsys,
    )
    assert code == 0
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["reject_naive_peeking"] > sim["reject_fixed"]
    cfg = tmp_path / "db.yaml"
    cfg.write_text(
        f"source:\n  url: sqlite:///{tmp_path / 'ev.db'}\n  experiment: example\n"
        "metrics:\n  - name: converted\n    type: binomial\nanalysis:\n  looks: 0\n"
    )
    code, out, err = _run(["ab", "analyze", str(cfg), "--out", str(tmp_path / "o"), "--no-report"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "result.json").read_text())["metrics"][0]["comparisons"][0]["error"] is None


def test_survey_csat_and_nps(tmp_path, capsys):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "variant": np.repeat(["control", "new"], 400),
            "score": np.concatenate([rng.integers(1, 6, 400), rng.integers(2, 6, 400)]),
        }
    )
    df.to_csv(tmp_path / "csat.csv", index=False)
    code, out, _ = _run(
        ["survey", "analyze", str(tmp_path / "csat.csv"), "--kind", "csat", "--json", str(tmp_path / "c.json")], capsys
    )
    assert code == 0
    res = json.loads((tmp_path / "c.json").read_text())
    k = int((df[df.variant == "control"].score >= 4).sum())
    lo, hi = proportion_confint(k, 400, method="wilson")
    ctrl = next(a for a in res["arms"] if a["variant"] == "control")
    assert ctrl["score"] == pytest.approx(100 * k / 400) and ctrl["ci"] == pytest.approx([100 * lo, 100 * hi])
    nps = pd.DataFrame(
        {
            "variant": np.repeat(["control", "new"], 600),
            "answer": np.concatenate([rng.integers(0, 11, 600), rng.integers(3, 11, 600)]),
        }
    )
    nps.to_csv(tmp_path / "nps.csv", index=False)
    code, out, _ = _run(
        [
            "survey",
            "analyze",
            str(tmp_path / "nps.csv"),
            "--score-column",
            "answer",
            "--json",
            str(tmp_path / "n.json"),
        ],
        capsys,
    )
    assert code == 0
    res = json.loads((tmp_path / "n.json").read_text())
    for arm in res["arms"]:
        s = nps[nps.variant == arm["variant"]].answer
        p, d = (s >= 9).mean(), (s <= 6).mean()
        assert arm["score"] == pytest.approx(100 * (p - d))
        half = (arm["ci"][1] - arm["ci"][0]) / 2  # bootstrap CI ≈ analytic ±1.96 se
        assert half == pytest.approx(1.96 * arm["se"], rel=0.1)
    code, _, err = _run(["survey", "analyze", str(tmp_path / "nps.csv"), "--score-column", "scor"], capsys)
    assert code == 2 and "not a column" in err


def test_ab_analyze_fits_80_columns_without_cutting(tmp_path: Path) -> None:
    """The bundled example at 80 columns: one block per metric and arm, no line over 80, no '…' (the table needed
    ~135 columns and cut the lift, CI, p and star); at 200 columns it is one table."""
    import os
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "src" / "growthcurve" / "examples" / "ab" / "ab.yaml"
    for cols in ("80", "200"):
        proc = subprocess.run(
            [sys.executable, "-m", "growthcurve.cli", "ab", "analyze", str(example), "--out", str(tmp_path / cols),
             "--no-report"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120, env={**os.environ, "COLUMNS": cols},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "…" not in out
        assert "+8.29%*" in out and "3.02e-13" in out  # satisfaction's lift, star and p, whole
        if cols == "80":
            table = [line for line in out.splitlines() if line.startswith(("satisfaction", "  "))]
            assert table and max(len(line) for line in table) <= 80, out
        else:
            assert "┃ metric" in out
