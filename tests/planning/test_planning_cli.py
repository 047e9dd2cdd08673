"""`growthcurve plan ...` on the shipped examples, and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from growthcurve.cli import main

EX = Path(__file__).resolve().parents[2] / "src" / "growthcurve" / "examples" / "planning"


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_allocate_risk_review_on_examples(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    assert run(["plan", "allocate", str(EX / "portfolio.yaml"), "--out", str(out)]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert "intent-v2" in plan["chosen"]  # mandatory
    assert {r["label"] for r in plan["resources"]} == {"budget", "gpu_hours", "people@Q1", "people@Q2"}
    assert len(plan["what_if"]) == 16
    assert (
        run(
            [
                "plan",
                "risk",
                str(EX / "portfolio.yaml"),
                "--plan",
                str(out / "plan.json"),
                "--target",
                "500",
                "--sims",
                "5000",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    risk = json.loads((out / "risk.json").read_text())
    assert risk["p10"] <= risk["p50"] <= risk["p90"] and 0 <= risk["prob_hit_target"] <= 1
    assert (out / "risk_hist.png").stat().st_size > 1000
    assert (
        run(
            [
                "plan",
                "review",
                str(EX / "portfolio.yaml"),
                str(EX / "actuals.csv"),
                "--plan",
                str(out / "plan.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    review = json.loads((out / "review.json").read_text())
    assert review["actual_total"] == pytest.approx(640)


def test_allocate_csv_with_capacities_and_cvar(tmp_path: Path) -> None:
    args = [
        "plan",
        "allocate",
        str(EX / "projects.csv"),
        "-c",
        "people=20",
        "-c",
        "gpu_hours=3000",
        "-c",
        "budget=200",
        "--objective",
        "cvar",
        "--lambda",
        "0.5",
        "--scenarios",
        "200",
        "--no-what-if",
        "--out",
        str(tmp_path),
    ]
    assert run(args) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["objective"] == "cvar" and plan["cvar_loss"] is not None


def test_goals_add_update_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROWTHCURVE_DB_URL", f"sqlite:///{tmp_path}/g.db")
    assert run(["plan", "goals", "add", str(EX / "goals.yaml")]) == 0
    assert run(["plan", "goals", "update", "alice-2026Q4/LAT", "90", "--date", "2026-11-15"]) == 0
    out = tmp_path / "goals"
    assert run(["plan", "goals", "status", "--as-of", "2026-11-15", "--out", str(out)]) == 0
    status = json.loads((out / "status.json").read_text())
    kr = [k for k in status["key_results"] if k["objective_id"] == "alice-2026Q4" and k["kr_id"] == "LAT"][0]
    assert kr["current"] == 90.0
    assert {k["status"] for k in status["key_results"]} <= {
        "done",
        "missed",
        "on-track",
        "at-risk",
        "off-track",
    }
    assert (out / "burnup.png").stat().st_size > 1000 and (out / "status.csv").is_file()


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("name,gain,need_people,depends_on\na,1,x,\n")
    assert run(["plan", "allocate", str(bad), "-c", "people=3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "column 'need_people' must be a number" in err and "\n" not in err
    cyc = tmp_path / "c.csv"
    cyc.write_text("name,gain,depends_on\na,1,b\nb,1,a\n")
    assert run(["plan", "allocate", str(cyc), "--out", str(tmp_path)]) == 2
    assert "cycle" in capsys.readouterr().err
    infeasible = [
        "plan",
        "allocate",
        str(EX / "projects.csv"),
        "-c",
        "people=4",
        "-c",
        "gpu_hours=3000",
        "-c",
        "budget=200",
        "--out",
        str(tmp_path),
    ]
    assert run(infeasible) == 2
    err = capsys.readouterr().err
    assert "capacity people <= 4" in err and "mandatory 'intent-v2'" in err
    assert run(["plan", "goals", "update", "nokr", "1", "--db", f"sqlite:///{tmp_path}/x.db"]) == 2
    assert "OBJECTIVE/KR" in capsys.readouterr().err


def test_allocate_output_carries_no_solver_banner(tmp_path: Path) -> None:
    """HiGHS prints a banner from C++ on a process's first solver; a fresh process shows none of it."""
    import subprocess
    import sys

    code = "from growthcurve.cli import main; main(['plan', 'allocate', '--no-what-if', *__import__('sys').argv[1:]])"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(EX / "portfolio.yaml"), "--out", str(tmp_path / "plan")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Chosen projects" in proc.stdout and "HiGHS" not in proc.stdout + proc.stderr
