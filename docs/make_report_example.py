"""Build a real growth store and render `docs/report.png`, the screenshot of the default report.

Nothing here is made up for the picture: three textcnn runs train on the intents example the package ships
(1, 3 and 8 epochs, so the curve has steps), the two best are served as an A/B test in-process (the real
FastAPI app and store writer), the dev texts are replayed as traffic from 240 users, and each answer gets
the feedback its user would give — thumbs up when the intent is right, the true intent as a corrected
label when it is wrong, a 1-5 rating that follows the answer's correctness. Goals are the shipped example's
2026Q4 objectives, the team part uses the shipped team examples. Then ``growthcurve report`` writes the
page and headless Chromium screenshots it.

    .venv/bin/python docs/make_report_example.py            # ~2-4 minutes on 2 busy cores
    .venv/bin/python docs/make_report_example.py --workdir /tmp/gc-demo --keep
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "growthcurve" / "examples"


def _train(work: Path, name: str, epochs: int, url: str) -> Path:
    """A textcnn run on the intents example (registered in the store by `finetune`, or here if not yet)."""
    import json
    import os

    from growthcurve.config import load_finetune_config
    from growthcurve.store.registry import find_by_artefact, finish_run, start_run
    from growthcurve.training.dispatch import run_finetune

    intents = EXAMPLES / "intents"
    sets = [
        f"data.train={intents / 'train.csv'}",
        f"data.dev={intents / 'dev.csv'}",
        f"data.test={intents / 'test.csv'}",
        f"output_dir={work / name}",
        "model.type=textcnn",
        f"train.epochs={epochs}",
        "train.batch_size=16",
        "train.seed=0",
    ]
    os.environ["GROWTHCURVE_DB_URL"] = url
    res = run_finetune(load_finetune_config(None, sets), progress=False)
    run = Path(res.run_dir)
    if find_by_artefact(run, url) is None:  # a checkout whose finetune does not record itself yet
        m = json.loads((run / "metrics.json").read_text())
        rid = start_run("finetune", name=name, task="text-classification", artefact=run, url=url)
        finish_run(rid, "finished", metrics={"test": m["test"], "dev": m["dev"]}, url=url)
    return run


def _replay(runs: list[Path], url: str, users: int, seed: int) -> dict[str, int]:
    """Serve ``runs`` as an A/B test and replay the dev texts as traffic with truthful feedback."""
    from fastapi.testclient import TestClient

    from growthcurve.serving import ServeSettings, create_app, load_handler

    with (EXAMPLES / "intents" / "dev.csv").open(encoding="utf-8") as fh:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(fh)]
    rng = random.Random(seed)
    handlers = [load_handler(r) for r in runs]
    settings = ServeSettings(experiment="intent-textcnn-8ep", salt="demo")
    counts = {"requests": 0, "feedback": 0}
    with TestClient(create_app(handlers, settings, url)) as c:
        for i in tqdm(range(users * 2), desc="replay", unit="req"):
            text, truth = rows[rng.randrange(len(rows))]
            p = c.post("/predict", json={"text": text, "unit_id": f"user{i % users}"}).json()
            counts["requests"] += 1
            (pred,) = p["predictions"]
            right = pred["label"] == truth
            if rng.random() < 0.3:
                continue  # most users leave no feedback
            body: dict[str, object] = {"request_id": pred["request_id"], "thumbs": right}
            if not right and rng.random() < 0.6:
                body["label"] = truth  # the user tells us the right intent
            if rng.random() < 0.4:
                body["rating"] = rng.choice([4, 5, 5]) if right else rng.choice([1, 2, 3])
            r = c.post("/feedback", json=body)
            r.raise_for_status()
            counts["feedback"] += 1
    return counts


def _goals(url: str) -> None:
    """The shipped example's 2026Q4 objectives into the goal store (`growthcurve plan goals add`)."""
    from growthcurve.planning.goals import GoalsConfig, load_goals
    from growthcurve.planning.store import GoalStore

    goals = load_goals(EXAMPLES / "planning" / "goals.yaml")
    q4 = GoalsConfig(objectives=[o for o in goals.objectives if o.period == "2026Q4"][:3])
    GoalStore(url).save_goals(q4)


def _screenshot(html: Path, png: Path) -> None:
    """Headless Chromium at 1280 px wide; the empty band below the page is cropped."""
    from PIL import Image

    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium (Debian), then run again")
    raw = png.with_suffix(".raw.png")
    subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--screenshot={raw}",
            "--window-size=1280,9000",
            html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    with Image.open(raw) as im:
        rgb = np.asarray(im.convert("RGB"))
        background = rgb[-1, 0]
        used = np.where((rgb != background).any(axis=(1, 2)))[0]
        bottom = int(used.max()) + 24 if used.size else rgb.shape[0]
        page = im.convert("RGB").crop((0, 0, rgb.shape[1], min(bottom, rgb.shape[0])))
        # a 256-colour palette keeps the committed picture small (~1/3) and the charts still readable
        page.quantize(256, dither=Image.Dither.NONE).save(png, optimize=True)
    raw.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="where runs and the store go (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep --workdir afterwards")
    ap.add_argument("--users", type=int, default=240)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    args = ap.parse_args()
    torch.set_num_threads(2)  # the machine is shared: stay on two threads
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gc-report-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'growthcurve.db'}"
    try:
        runs = [_train(work, f"intents-textcnn-{e}ep", e, url) for e in tqdm((1, 3, 8), desc="train", unit="run")]
        print("replay:", _replay(runs[1:], url, args.users, seed=0))
        _goals(url)
        from growthcurve.cli import main as cli

        team = EXAMPLES / "team"
        html = work / "report.html"
        try:
            cli(
                [
                    "report",
                    "--out",
                    str(html),
                    "--db",
                    url,
                    "--team",
                    str(team / "candidates.csv"),
                    "--criteria",
                    str(team / "criteria.yaml"),
                    "--training",
                    str(team / "training_scores.csv"),
                ]
            )
        except SystemExit as exc:
            if exc.code:
                raise
        _screenshot(html, args.out)
        print(f"wrote {args.out} from {html}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
