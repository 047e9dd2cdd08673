"""Bad input for out-of-scope detectors, explanations and slices (#26) and for `assist fit`'s inputs and its
unfinished runs (#30): one row per case, exit 2, one line, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case
from tests.conftest import toy_overrides, toy_rows

TOY = "text,label\n" + "".join(f"{t},{y}\n" for t, y in toy_rows(40, 7))
SLICED = "text,label,channel\n" + "".join(
    f"{t},{y},{'web' if i % 2 else 'app'}\n" for i, (t, y) in enumerate(toy_rows(40, 7))
)
ONE_SLICE = "text,label,channel\n" + "".join(f"{t},{y},web\n" for t, y in toy_rows(20, 7))
EMPTY_SLICE = "text,label,channel\nthe film was good,pos,web\nso bad,neg,\n"
WITH_OOS = TOY + "zxq vbnm qwrtp,oos\n"
IMAGE_RUN = {
    "image/model/run.json": json.dumps({"task": "image-classification", "model_type": "cnn"}),
    "image/model/labels.json": '["0", "1"]',
}
MULTI_TFIDF = {
    "multi/model/run.json": json.dumps({"task": "text-classification", "model_type": "tfidf", "multi_label": True}),
    "multi/model/labels.json": '["a", "b"]',
}
FAQ_UNKNOWN = "intent,question,answer\npos,I loved the film,Glad you liked it!\nrefund,money back?,Yes.\n"
PENDING = json.dumps({"threshold": 0.0, "model_version": "pending", "intent_run": "intent"})


def _no_detector(run: str) -> object:
    def setup(root: Path) -> None:
        for name in ("ood.json", "ood.npz"):
            (root / run / "model" / name).unlink()

    return setup


def _assist_fit(*sets: str) -> list[str]:
    argv = ["assist", "fit", "--set", "faq=faq.csv", "--set", "data.train=t.csv", "--set", "data.dev=t.csv"]
    for s in ("output_dir=out", *sets):
        argv += ["--set", s]
    return argv


CASES = [
    # ---- out-of-scope detectors
    Case("ood-fit-missing-run", ["ood", "fit", "nope"], fragment="does not exist"),
    Case("ood-fit-twice", ["ood", "fit", "bert"], fragment=["already has an out-of-scope detector", "--overwrite"]),
    Case("ood-fit-image-run", ["ood", "fit", "image"], files=IMAGE_RUN, fragment="detectors are for text classifiers"),
    Case("ood-fit-multi-label", ["ood", "fit", "multi"], files=MULTI_TFIDF, fragment="multi-label"),
    Case(
        "ood-fit-data-gone",
        ["ood", "fit", "bert"],
        setup=_no_detector("bert"),
        fragment=["does not exist", "give --train/--dev"],
    ),
    Case(
        "ood-fit-oos-label-is-a-class",
        ["ood", "fit", "bert", "--overwrite", "--train", "t.csv", "--dev", "t.csv", "--oos-label", "pos"],
        files={"t.csv": TOY},
        fragment="is one of the run's labels",
    ),
    Case(
        "ev-oos-rows-without-detector",
        ["evaluate", "-q", "bert", "m.csv"],
        files={"m.csv": WITH_OOS},
        setup=_no_detector("bert"),
        fragment=["has no out-of-scope detector", "growthcurve ood fit bert"],
    ),
    Case(
        "ev-oos-label-is-a-class",
        ["evaluate", "-q", "tfidf", "m.csv", "--oos-label", "neg"],
        files={"m.csv": TOY},
        fragment="is one of the run's labels",
    ),
    # ---- slices
    Case(
        "ev-slice-no-column",
        ["evaluate", "-q", "tfidf", "m.csv", "--slice-by", "channel"],
        files={"m.csv": TOY},
        fragment="no column 'channel'",
    ),
    Case(
        "ev-slice-one-value",
        ["evaluate", "-q", "tfidf", "m.csv", "--slice-by", "channel"],
        files={"m.csv": ONE_SLICE},
        fragment="slices need two or more values",
    ),
    Case(
        "ev-slice-empty-cell",
        ["evaluate", "-q", "tfidf", "m.csv", "--slice-by", "channel"],
        files={"m.csv": EMPTY_SLICE},
        fragment=["m.csv:3", "'channel' is empty"],
    ),
    Case(
        "ev-slice-image-run",
        ["evaluate", "-q", "image", "m.csv", "--slice-by", "channel"],
        files={**IMAGE_RUN, "m.csv": SLICED},
        fragment="--slice-by applies to single-label text-classification runs",
    ),
    Case(
        "ev-slice-small-slices-reported",
        ["evaluate", "-q", "tfidf", "m.csv", "--slice-by", "channel", "--n-boot", "100"],
        files={"m.csv": SLICED},
        exit_code=0,
        fragment=["2 slice(s) under 30 rows", "app", "web"],
    ),
    # ---- explanations
    Case(
        "pr-explain-image-run",
        ["predict", "image", "p.txt", "--explain"],
        files={**IMAGE_RUN, "p.txt": "a.png\n"},
        fragment="image-classification run",
    ),
    Case(
        "pr-explain-multi-label-tfidf",
        ["predict", "multi", "p.txt", "--explain"],
        files={**MULTI_TFIDF, "p.txt": "hi\n"},
        fragment="multi-label TF-IDF",
    ),
    # ---- assist fit (#30): inputs checked before the intent model trains; no placeholder run
    Case(
        "assist-fit-faq-intent-unknown",
        _assist_fit(),
        files={"faq.csv": FAQ_UNKNOWN, "t.csv": TOY},
        fragment="intent 'refund' is not one the classifier knows",
    ),
    Case(
        "assist-fit-dev-label-unknown",
        _assist_fit("data.dev=d.csv"),
        files={"faq.csv": FAQ_UNKNOWN.replace("refund", "neg"), "t.csv": TOY, "d.csv": "text,label\nhi,alien\n"},
        fragment="never seen in training",
    ),
    Case(
        "assist-fit-intent-detector-off",
        _assist_fit("answer.out_of_scope=intent", "intent.overrides=[model.type=tfidf, ood.detector=none]"),
        files={"faq.csv": FAQ_UNKNOWN.replace("refund", "neg"), "t.csv": TOY},
        fragment="ood.detector=none",
    ),
    Case(
        "assist-chat-placeholder-run",
        ["assist", "chat", "out"],
        files={"out/assist.json": PENDING},
        fragment=["unfinished assist run", "--overwrite"],
    ),
    Case(
        "assist-eval-placeholder-run",
        ["assist", "eval", "out", "t.csv"],
        files={"out/assist.json": PENDING, "t.csv": TOY},
        fragment="unfinished assist run",
    ),
]


@pytest.fixture(scope="session")
def ood_runs(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """A TF-IDF run and a 1-epoch tiny transformer on the toy task, each with its detector; data files gone."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune
    from tests.conftest import write_csv

    root = tmp_path_factory.mktemp("ood-runs")
    data = {s: write_csv(root / f"{s}.csv", toy_rows(64, i)) for i, s in enumerate(("train", "dev", "test"))}
    for name, extra in (("tfidf", {"model.type": "tfidf"}), ("bert", {"train.epochs": 1})):
        run_finetune(load_finetune_config(None, toy_overrides(tiny_bert, data, root / name, **extra)), progress=False)
    for s in data.values():
        s.unlink()
    return root


@cases_param(CASES)
def test_ood_explain_slice_assist_bad_input(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], ood_runs: Path
) -> None:
    for run in ("tfidf", "bert"):
        shutil.copytree(ood_runs / run, tmp_path / run)
    run_case(case, tmp_path, capsys)
