"""Bad input for `growthcurve tune`: each row fails with exit 2 and one actionable line before any trial runs,
and leaves the folder untouched (no study file, no output folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.bad_input.conftest import Case, cases_param, run_case
from tests.conftest import toy_rows

GOOD = "text,label\n" + "".join(f"{t},{y}\n" for t, y in toy_rows(40, 7))
LR = {"train.learning_rate": {"low": "1e-4", "high": "1e-2", "log": True}}


def _cfg(search: object = LR, **extra: object) -> str:
    cfg: dict = {"model": {"type": "textcnn"}, "data": {"train": "train.csv", "dev": "dev.csv"}, **extra}
    if search is not None:
        cfg["search"] = search
    return yaml.safe_dump(cfg)


def _files(search: object = LR, **extra: object) -> dict[str, str]:
    return {"train.csv": GOOD, "dev.csv": GOOD, "t.yaml": _cfg(search, **extra)}


def _tune(*extra: str) -> list[str]:
    return ["tune", "t.yaml", "--trials", "2", "--storage", "sqlite:///study.db", "-q", *extra]


def _store_db(root: Path) -> None:
    from growthcurve.store import init_db

    init_db(f"sqlite:///{root / 'store.db'}").dispose()


CASES = [
    Case(
        "tune-unknown-key",
        _tune(),
        files=_files({"peft.r": {"choices": [4, 8]}}),
        fragment=["search key 'peft.r'", "peft.lora_r"],
    ),
    Case(
        "tune-key-outside-config",
        _tune(),
        files=_files({"optimizer.momentum": {"low": 0.1, "high": 0.9}}),
        fragment="search key 'optimizer.momentum'",
    ),
    Case(
        "tune-low-above-high",
        _tune(),
        files=_files({"train.weight_decay": {"low": 0.2, "high": 0.1}}),
        fragment="search key 'train.weight_decay': low (0.2) must be below high (0.1)",
    ),
    Case(
        "tune-only-low",
        _tune(),
        files=_files({"train.weight_decay": {"low": 0.0}}),
        fragment="a range needs both low and high",
    ),
    Case(
        "tune-bound-not-number",
        _tune(),
        files=_files({"train.learning_rate": {"low": "small", "high": 0.1}}),
        fragment="low must be a number (got 'small')",
    ),
    Case(
        "tune-log-from-zero",
        _tune(),
        files=_files({"train.learning_rate": {"low": 0, "high": 0.1, "log": True}}),
        fragment="a log range needs low > 0",
    ),
    Case(
        "tune-bound-outside-schema",
        _tune(),
        files=_files({"train.warmup_ratio": {"low": 0.0, "high": 1.5}}),
        fragment=["search key 'train.warmup_ratio'", "1.5 is not accepted"],
    ),
    Case(
        "tune-range-on-a-choice-key",
        _tune(),
        files=_files({"train.precision": {"low": 1, "high": 2}}),
        fragment="search key 'train.precision' is not numeric: give {choices: [...]}",
    ),
    Case(
        "tune-int-key-fractional",
        _tune(),
        files=_files({"train.batch_size": {"low": 8.5, "high": 64}}),
        fragment="search key 'train.batch_size' takes whole numbers",
    ),
    Case(
        "tune-bad-choice-value",
        _tune(),
        files=_files({"model.rnn_cell": {"choices": ["lstm", "transformer"]}}),
        fragment=["search key 'model.rnn_cell'", "'transformer' is not accepted"],
    ),
    Case(
        "tune-empty-choices",
        _tune(),
        files=_files({"train.batch_size": {"choices": []}}),
        fragment="choices must be a non-empty list",
    ),
    Case(
        "tune-unknown-spec-field",
        _tune(),
        files=_files({"train.batch_size": {"values": [8, 16]}}),
        fragment="unknown field(s) values",
    ),
    Case(
        "tune-spec-not-mapping",
        _tune(),
        files=_files({"train.batch_size": [8, 16]}),
        fragment="search key 'train.batch_size': give {low: ..., high: ...}",
    ),
    Case("tune-search-not-mapping", _tune(), files=_files(["lr"]), fragment="search must be a mapping"),
    Case(
        "tune-frozen-key",
        _tune(),
        files=_files({"data.train": {"choices": ["a.csv", "b.csv"]}}),
        fragment="search key 'data.train' cannot be searched",
    ),
    Case("tune-unknown-metric", _tune(), files=_files(LR, metric="auc"), fragment="metric 'auc' is not a dev metric"),
    Case(
        "tune-no-dev-split",
        _tune("--set", "data.dev=null", "--set", "data.dev_fraction=0"),
        files=_files(),
        fragment="tune needs a dev split",
    ),
    Case(
        "tune-config-missing", ["tune", "nope.yaml", "--trials", "2"], fragment="config file 'nope.yaml' does not exist"
    ),
    Case("tune-search-file-missing", _tune("--search", "s.yaml"), files=_files(), fragment="'s.yaml' does not exist"),
    Case(
        "tune-search-file-extra-key",
        _tune("--search", "s.yaml"),
        files={**_files(), "s.yaml": yaml.safe_dump({"search": LR, "trials": 3})},
        fragment="unknown key(s) trials next to search:",
    ),
    Case("tune-zero-trials", ["tune", "t.yaml", "--trials", "0"], files=_files(), fragment="--trials"),
    Case("tune-bad-pruner", _tune("--pruner", "asha"), files=_files(), fragment="--pruner must be one of"),
    Case(
        "tune-storage-not-url",
        ["tune", "t.yaml", "--storage", "study.db"],
        files=_files(),
        fragment="--storage 'study.db' is not a database URL",
    ),
    Case(
        "tune-storage-is-the-store",
        ["tune", "t.yaml", "--storage", "sqlite:///store.db"],
        files=_files(),
        setup=_store_db,
        fragment=["is a growthcurve store database", "--storage sqlite:///tune.db"],
    ),
    Case(
        "tune-out-of-another-study",
        _tune("--out", "o"),
        files={**_files(), "o/tune.json": '{"study": "other", "storage": "sqlite:///x.db"}'},
        fragment="--out 'o' holds study 'other'",
    ),
    Case(
        "tune-tfidf-no-default-space",
        _tune(),
        files={**_files(None), "t.yaml": _cfg(None, model={"type": "tfidf"})},
        fragment="model.type=tfidf has no default search space",
    ),
]


@cases_param(CASES)
def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
