"""Bad input around model versions and the one workspace store: unknown versions, unfinished or mixed runs in an
experiment, stores that are missing or corrupt, serve options out of range. One `error:` line, exit 2, and the
file tree unchanged (the harness checks it: no store is created by a command that failed or only reads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case


def _free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


PORT = _free_port()  # serve binds its port before anything else: each case needs one that is free
GARBAGE = b"this is not a database, just bytes that a user pointed --store at\n" * 20


def _fake_run(name: str = "toy", finished: bool = True, prefix: str = "") -> dict[str, bytes | str]:
    """A run folder as far as the cheap checks read it (metadata, labels, config, weights' bytes)."""
    meta = {"task": "text-classification", "model_type": "transformer", "method": "full", "multi_label": False}
    files: dict[str, bytes | str] = {
        f"{prefix}model/run.json": json.dumps(meta),
        f"{prefix}model/labels.json": json.dumps(["neg", "pos"]),
        f"{prefix}model/model.safetensors": b"\x00" * 64,
        f"{prefix}config.yaml": f"name: {name}\ndata:\n  train: train.csv\n",
    }
    if finished:
        files[f"{prefix}metrics.json"] = json.dumps({"test": {"accuracy": 0.9}})
    return files


CASES = [
    # a store that is not a database: one line naming it, in every command that opens one
    *(
        Case(f"corrupt-store-{i}", argv, files={"bad.db": GARBAGE, **extra}, fragment="not a database")
        for i, (argv, extra) in enumerate(
            [
                (["runs", "list", "--store", "sqlite:///bad.db"], {}),
                (["runs", "show", "r-x", "--db", "sqlite:///bad.db"], {}),
                (["models", "list", "--store", "sqlite:///bad.db"], {}),
                (["report", "--store", "sqlite:///bad.db", "--out", "r.html"], {}),
                (["decide", "exp", "--ship", "a", "--why", "w", "--store", "sqlite:///bad.db"], {}),
                (["decisions", "list", "--store", "sqlite:///bad.db"], {}),
                (["ab", "analyze", "exp", "--store", "sqlite:///bad.db"], {}),
                (["serve", "run", "--store", "sqlite:///bad.db", "--port", PORT], _fake_run(prefix="run/")),
                (["retrain", "run", "--store", "sqlite:///bad.db"], _fake_run(prefix="run/")),
            ]
        )
    ),
    # a store named on the command line that does not exist: an error naming it, and no file made
    *(
        Case(f"missing-store-{i}", argv, fragment="does not exist")
        for i, argv in enumerate(
            [
                ["runs", "list", "--store", "sqlite:///nope.db"],
                ["models", "show", "toy", "--store", "sqlite:///nope.db"],
                ["report", "--store", "sqlite:///nope.db", "--out", "r.html"],
                ["ab", "analyze", "exp", "--store", "sqlite:///nope.db"],
                ["decide", "exp", "--ship", "a", "--why", "w", "--store", "sqlite:///nope.db"],
                ["decisions", "list", "--store", "sqlite:///nope.db"],
            ]
        )
    ),
    Case(
        "serve-unfinished-run",
        ["serve", "run", "--port", PORT],
        files=_fake_run(finished=False, prefix="run/"),
        fragment="has not finished (no metrics.json)",
    ),
    Case(
        "serve-two-models-as-one-experiment",
        ["serve", "a", "b", "--experiment", "e", "--port", PORT],
        files={**_fake_run("intents", prefix="a/"), **_fake_run("sentiment", prefix="b/")},
        fragment=("versions of different models", "--allow-mixed-models"),
    ),
    Case("serve-max-batch-zero", ["serve", "run", "--max-batch", "0"], fragment="--max-batch must be >= 1 (got 0)"),
    Case(
        "serve-negative-text-limit",
        ["serve", "run", "--max-text-chars", "-5"],
        fragment="--max-text-chars must be >= 1 (got -5)",
    ),
    Case(
        "serve-ab-config-in-missing-folder",
        ["serve", "a", "b", "--experiment", "e", "--ab-config", "no/such/ab.yaml"],
        fragment="--ab-config 'no/such/ab.yaml' must be a file path in an existing folder",
    ),
    Case("unknown-model-version", ["predict", "intents@v9", "x.txt"], files={"x.txt": "hi\n"}, fragment="no model"),
    Case("ab-analyze-no-such-experiment-file", ["ab", "analyze", "exp.yaml"], fragment="does not exist"),
]


@cases_param(CASES)
def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)


def test_unknown_version_lists_the_versions_there_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from growthcurve.store.registry import finish_run, start_run

    for fp in ("aaaa", "bbbb"):
        rid = start_run("finetune", name="r", task="text-classification", model="intents")
        finish_run(rid, "finished", fingerprint=fp)
    _, err = run_case(
        Case("version-9", ["predict", "intents@v9", "x.txt"], files={"x.txt": "hi\n"}, fragment="(versions: v1, v2)"),
        tmp_path,
        capsys,
    )
    assert "intents has no version v9" in " ".join(err.split())
    _, err = run_case(Case("model-typo", ["runs", "show", "intent@v1"], fragment="no model 'intent'"), tmp_path, capsys)
    assert "models: intents" in " ".join(err.split())
