"""Training effect against scipy/statsmodels, performance review calibration, and the team CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from growthcurve.cli import main
from growthcurve.errors import DataError
from growthcurve.planning.goals import GoalsConfig
from growthcurve.team.review import PerformanceReview
from growthcurve.team.training import TrainingEffect, cohens_dz_ci, read_scores

EX = Path(__file__).resolve().parents[2] / "src" / "growthcurve" / "examples"


def _scores(seed: int = 0, control: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pre = rng.normal(5, 1, 20)
    post = pre + rng.normal(0.8, 0.6, 20)
    df = pd.DataFrame({"person": [f"p{i}" for i in range(20)], "pre": pre, "post": post, "treated": True})
    if control:
        cpre = rng.normal(5, 1, 12)
        c = pd.DataFrame(
            {
                "person": [f"c{i}" for i in range(12)],
                "pre": cpre,
                "post": cpre + rng.normal(0.2, 0.6, 12),
                "treated": False,
            }
        )
        df = pd.concat([df, c], ignore_index=True)
    return df


def test_paired_statistics_equal_scipy() -> None:
    df = _scores()
    r = TrainingEffect().fit(df).result_[0]
    tr = df[df.treated]
    tt = stats.ttest_rel(tr.post, tr.pre)
    w = stats.wilcoxon(tr.post, tr.pre)
    assert (r.t, r.p_t, r.df) == (pytest.approx(tt.statistic), pytest.approx(tt.pvalue), 19)
    assert (r.wilcoxon_w, r.p_wilcoxon) == (pytest.approx(w.statistic), pytest.approx(w.pvalue))
    d = tr.post - tr.pre
    assert r.d_z == pytest.approx(d.mean() / d.std(ddof=1))
    assert r.gain_ci_low == pytest.approx(d.mean() - stats.t.ppf(0.975, 19) * d.std(ddof=1) / math.sqrt(20))


def test_dz_confidence_interval() -> None:
    lo, hi = cohens_dz_ci(0.8, 20)
    t_obs = 0.8 * math.sqrt(20)
    # the bounds are the noncentralities at which the observed t sits at the 97.5 % / 2.5 % point
    assert stats.nct.cdf(t_obs, 19, lo * math.sqrt(20)) == pytest.approx(0.975, abs=1e-8)
    assert stats.nct.cdf(t_obs, 19, hi * math.sqrt(20)) == pytest.approx(0.025, abs=1e-8)
    # large n: close to the normal approximation d +- 1.96 * sqrt(1/n + d^2 / (2n))
    lo, hi = cohens_dz_ci(0.5, 2000)
    se = math.sqrt(1 / 2000 + 0.25 / 4000)
    assert (lo, hi) == (pytest.approx(0.5 - 1.96 * se, abs=2e-3), pytest.approx(0.5 + 1.96 * se, abs=2e-3))


def test_difference_in_differences_equals_ols_interaction() -> None:
    df = _scores(3)
    r = TrainingEffect().fit(df).result_[0]
    long = pd.concat([df.assign(score=df.pre, post_period=0), df.assign(score=df.post, post_period=1)]).assign(
        treated=lambda d: d.treated.astype(int)
    )
    ols = smf.ols("score ~ post_period * treated", data=long).fit()
    assert r.did == pytest.approx(ols.params["post_period:treated"])
    g1 = (df.post - df.pre)[df.treated]
    g0 = (df.post - df.pre)[~df.treated]
    welch = stats.ttest_ind(g1, g0, equal_var=False)
    assert r.p_did == pytest.approx(welch.pvalue) and r.n_control == 12


def test_scores_file_errors(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("person,pre,post\na,1,2\nb,x,3\n")
    with pytest.raises(DataError, match="s.csv:3: column 'pre' must be a finite number, got 'x'"):
        read_scores(p)
    p.write_text("person,pre,post,group\na,1,2,trained\nb,2,3,maybe\n")
    with pytest.raises(DataError, match="group must be 'treatment' or 'control'"):
        read_scores(p)


def _goals(attain: dict[str, float]) -> GoalsConfig:
    objs = []
    for person, a in attain.items():
        objs.append(
            {
                "id": f"{person}-o",
                "owner": person,
                "period": "2026Q1",
                "key_results": [
                    {
                        "id": "k",
                        "start_value": 0,
                        "target": 10,
                        "start_date": "2026-01-01",
                        "due_date": "2026-03-31",
                        "history": [{"date": "2026-03-31", "value": 10 * a}],
                    }
                ],
            }
        )
    return GoalsConfig.model_validate({"objectives": objs})


def test_review_calibration_and_outliers() -> None:
    attain = {"a": 0.9, "b": 0.85, "c": 0.95, "d": 0.8, "e": 0.9, "f": 0.88, "g": 0.1}
    rv = PerformanceReview().fit(_goals(attain), pd.Timestamp("2026-04-15").date())
    t = rv.result_.set_index("person")
    assert t.attainment.to_dict() == pytest.approx(attain)
    a = np.array(list(attain.values()))
    assert t.z.to_numpy() == pytest.approx((a - a.mean()) / a.std(ddof=1))
    assert t.outlier.to_dict() == {p: p == "g" for p in attain}
    assert rv.summary_[0].outliers == ["g"] and rv.summary_[0].median == pytest.approx(0.88)


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_team_cli_on_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = EX / "team"
    assert (
        _run(
            [
                "team",
                "score",
                str(t / "candidates.csv"),
                "--criteria",
                str(t / "criteria.yaml"),
                "--ahp",
                str(t / "ahp.csv"),
                "--samples",
                "100",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    ranking = json.loads((tmp_path / "ranking.json").read_text())
    assert ranking["weight_source"] == "ahp" and ranking["ahp_consistency_ratio"] < 0.1
    assert (
        _run(
            [
                "team",
                "score",
                str(t / "candidates.csv"),
                "--criteria",
                str(t / "criteria.yaml"),
                "--learn",
                str(t / "past_hires.csv"),
                "--samples",
                "100",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "theta" in json.loads((tmp_path / "ranking.json").read_text())["learned"]
    assert _run(["team", "training-effect", str(t / "training_scores.csv"), "--out", str(tmp_path)]) == 0
    te = json.loads((tmp_path / "training_effect.json").read_text())
    assert [r["skill"] for r in te] == ["pytorch", "statistics"] and te[0]["did"] is not None
    assert (
        _run(
            [
                "team",
                "review",
                str(EX / "planning" / "goals.yaml"),
                "--as-of",
                "2026-11-15",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    review = pd.read_csv(tmp_path / "review.csv")
    assert set(review.period) == {"2026Q3", "2026Q4"} and review.person.nunique() == 8
    capsys.readouterr()
    bad = tmp_path / "ahp.csv"
    bad.write_text(
        "c,coding,ml_depth,communication,experience_years,salary_ask\ncoding,1,2,3,3,5\n"
        "ml_depth,2,1,2,3,4\ncommunication,1/3,1/2,1,2,3\nexperience_years,1/3,1/3,1/2,1,2\n"
        "salary_ask,1/5,1/4,1/3,1/2,1\n"
    )
    assert (
        _run(
            [
                "team",
                "score",
                str(t / "candidates.csv"),
                "--criteria",
                str(t / "criteria.yaml"),
                "--ahp",
                str(bad),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "not reciprocal" in err and "\n" not in err
