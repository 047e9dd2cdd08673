"""A real growth store for the report tests: two tiny textcnn runs trained through `run_finetune` (real run
folders, registered), a tune row and a failed child inserted through the registry API, served predictions,
feedback and A/B events of two model versions, and a goal with check-ins."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import toy_rows, write_csv

T0 = dt.datetime(2026, 11, 20, 9, 0, 0)
EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "growthcurve" / "examples" / "team"


@dataclass
class GrowthStore:
    """What the fixture built, with the inputs the tests recompute expected numbers from."""

    url: str
    root: Path
    runs: list[Path]
    run_ids: list[str]
    tune_id: str
    failed_id: str
    predictions: list[dict]
    feedback: list[dict]


def ensure_registered(run_dir: Path, url: str, name: str) -> str:
    """The registry id of a finished run folder: the one `finetune` recorded, or one recorded here when this
    checkout's finetune does not record itself yet (same fields, through the registry API)."""
    from growthcurve.store.registry import find_by_artefact, finish_run, start_run

    rec = find_by_artefact(run_dir, url)
    if rec is not None and rec.status == "finished":
        return rec.id
    m = json.loads((run_dir / "metrics.json").read_text())
    rid = start_run("finetune", name=name, task="text-classification", artefact=run_dir, url=url)
    finish_run(rid, "finished", metrics={"test": m["test"], "dev": m["dev"]}, url=url)
    return rid


def train_tiny(root: Path, name: str, epochs: int, url: str) -> tuple[Path, str]:
    """A textcnn run on the toy task (seconds), registered in the store at ``url``."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune

    root.mkdir(parents=True, exist_ok=True)
    data = {
        s: write_csv(root / f"{s}.csv", toy_rows(n, seed))
        for s, n, seed in [("train", 160, 0), ("dev", 48, 1), ("test", 48, 2)]
    }
    sets = [f"data.{k}={v}" for k, v in data.items()] + [
        f"output_dir={root / name}",
        "name=toy",  # one model: each run is its next version
        "model.type=textcnn",
        f"train.epochs={epochs}",
        "train.batch_size=16",
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROWTHCURVE_DB_URL", url)  # where finetune records itself
        res = run_finetune(load_finetune_config(None, sets), progress=False)
    run_dir = Path(res.run_dir)
    return run_dir, ensure_registered(run_dir, url, name)


def serving_rows() -> tuple[list[dict], list[dict], list[dict]]:
    """Predictions, feedback and experiment events of versions v-a (control) and v-b (treatment), shaped as
    the serving layer writes them (one exposure per unit, one feedback event per kind)."""
    preds, fb, ev = [], [], []
    for i in range(80):
        variant, version = ("control", "v-a") if i % 2 == 0 else ("treatment", "v-b")
        unit, rid, ts = f"u{i}", f"req-{i}", T0 + dt.timedelta(minutes=i)
        label = "pos" if i % 3 else "neg"
        preds.append(
            {
                "request_id": rid,
                "ts": ts,
                "model_name": "toy",
                "model_version": version,
                "experiment": "exp1",
                "variant": variant,
                "unit_id": unit,
                "input_text": f"text {i}",
                "label": label,
                "score": 0.9,
                "output": {"label": label},
                "latency_ms": 5.0 + (i % 17) * (1.0 if version == "v-a" else 2.0),
            }
        )
        ev.append(
            dict(
                experiment="exp1",
                unit_id=unit,
                variant=variant,
                ts=ts,
                metric="exposure",
                value=1.0,
                model_version=version,
            )
        )
        kinds: list[tuple[str, float, str | None]] = []
        if i % 5 != 4:  # some units give no feedback
            up = (i % 7 != 0) if variant == "treatment" else (i % 4 == 0)
            kinds.append(("thumbs", 1.0 if up else 0.0, None))
        if i % 3 == 0:
            kinds.append(("rating", float(1 + (i * 7) % 5), None))
        if i % 4 == 1 or i % 4 == 2:
            corrected = i % 8 in (1, 2)
            kinds.append(
                ("correct", 0.0 if corrected else 1.0, ("neg" if label == "pos" else "pos") if corrected else label)
            )
        for kind, value, lab in kinds:
            fb.append(
                dict(
                    request_id=rid,
                    ts=ts,
                    model_version=version,
                    unit_id=unit,
                    kind=kind,
                    value=value,
                    label=lab,
                    comment=None,
                )
            )
            ev.append(
                dict(
                    experiment="exp1",
                    unit_id=unit,
                    variant=variant,
                    ts=ts,
                    metric=kind,
                    value=value,
                    model_version=version,
                )
            )
    return preds, fb, ev


@pytest.fixture(scope="session")
def growth_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrowthStore]:
    from growthcurve.planning.goals import GoalsConfig
    from growthcurve.planning.store import GoalStore
    from growthcurve.store import experiment_events, feedback, init_db, insert_rows, predictions, record_decision
    from growthcurve.store.registry import finish_run, start_run

    root = tmp_path_factory.mktemp("growth")
    url = f"sqlite:///{root / 'store.db'}"
    run_a, id_a = train_tiny(root / "a", "run-a", 1, url)
    run_b, id_b = train_tiny(root / "b", "run-b", 3, url)
    tune_id = start_run("tune", name="study-1", config={"trials": 4}, url=url)
    finish_run(tune_id, "finished", metrics={"best_value": 0.81, "trials": 4}, url=url)
    failed_id = start_run("finetune", name="crashed", task="text-classification", parent=tune_id, url=url)
    finish_run(failed_id, "failed", url=url)
    engine = init_db(url)
    preds, fb, ev = serving_rows()
    insert_rows(engine, predictions, preds)
    insert_rows(engine, feedback, fb)
    insert_rows(engine, experiment_events, ev)
    record_decision(engine, "exp1", "continue", None, "too early to ship", None, decided_by="lead")
    engine.dispose()
    goals = GoalsConfig.model_validate(
        {
            "objectives": [
                {
                    "id": "quality",
                    "title": "Better intent model",
                    "owner": "ml",
                    "key_results": [
                        {
                            "id": "acc",
                            "title": "test accuracy",
                            "start_value": 0.80,
                            "target": 0.90,
                            "start_date": "2026-10-01",
                            "due_date": "2026-12-31",
                            "history": [
                                {"date": "2026-10-20", "value": 0.82},
                                {"date": "2026-11-10", "value": 0.85},
                            ],
                        }
                    ],
                }
            ]
        }
    )
    GoalStore(url).save_goals(goals)
    yield GrowthStore(url, root, [run_a, run_b], [id_a, id_b], tune_id, failed_id, preds, fb)


@pytest.fixture(scope="session")
def full(growth_store: GrowthStore, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    """The report of the whole fixture store with the example team files, built once and written to disk."""
    from growthcurve.report.build import ReportInputs, write_report

    out = tmp_path_factory.mktemp("report") / "report.html"
    inputs = ReportInputs(
        db=growth_store.url,
        team=EXAMPLES / "candidates.csv",
        criteria=EXAMPLES / "criteria.yaml",
        training=EXAMPLES / "training_scores.csv",
        as_of=dt.date(2026, 11, 15),
        ranking_samples=200,  # the stability draws dominate the build time; 200 keep the test fast
    )
    rep = write_report(inputs, out)
    return rep, out.read_text(encoding="utf-8")
