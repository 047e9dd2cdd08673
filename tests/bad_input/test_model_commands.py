"""Bad input for the model commands (finetune, evaluate, predict, merge, export, card), one row per case.

Each row runs the real CLI in a fresh folder that holds copies of three finished runs built once per session
(``tfidf/``, ``rnn/`` and ``bert/``, a tiny transformer with its checkpoint) and asserts exit code 2, the
message fragment, no internal error, and an unchanged file tree: a failing command touches nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.bad_input.conftest import Case, cases_param, run_case
from tests.conftest import toy_overrides, toy_rows

GOOD = "text,label\n" + "".join(f"{t},{y}\n" for t, y in toy_rows(40, 7))
TOY = {"train.csv": GOOD, "dev.csv": GOOD}


def _ft(*sets: str, data: str = "train.csv", tfidf: bool = True) -> list[str]:
    argv = ["finetune", "-q", "--set", f"data.train={data}", "--set", "output_dir=out"]
    if tfidf:
        argv += ["--set", "model.type=tfidf"]
    for s in sets:
        argv += ["--set", s]
    return argv


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _truncate(rel: str, keep: int = 100) -> object:
    def setup(root: Path) -> None:
        p = root / rel
        p.write_bytes(p.read_bytes()[:keep])

    return setup


def _remove(rel: str) -> object:
    def setup(root: Path) -> None:
        (root / rel).unlink()

    return setup


def _write(rel: str, content: str) -> object:
    def setup(root: Path) -> None:
        (root / rel).write_text(content, encoding="utf-8")

    return setup


FINETUNE = [
    Case("ft-train-missing", _ft(data="nope.csv"), fragment="does not exist"),
    Case("ft-train-empty-key", _ft(data=""), fragment="config key 'data.train' is empty"),
    Case("ft-train-folder", _ft(data="adir"), files={"adir/x.txt": "x"}, fragment="is a folder"),
    Case("ft-empty-file", _ft(data="e.csv"), files={"e.csv": ""}, fragment="is empty"),
    Case("ft-header-only", _ft(data="h.csv"), files={"h.csv": "text,label\n"}, fragment="header but no rows"),
    Case("ft-not-utf8", _ft(data="b.csv"), files={"b.csv": b"text,label\n\xff\xfe,pos\n"}, fragment="not UTF-8"),
    Case(
        "ft-broken-quote",
        _ft(data="q.csv"),
        files={"q.csv": 'text,label\n"unclosed,pos\nok,neg\n'},
        fragment="malformed CSV",
    ),
    Case("ft-field-count", _ft(data="f.csv"), files={"f.csv": "text,label\na,b,c\n"}, fragment="expected 2 fields"),
    Case("ft-unsupported-ext", _ft(data="d.xlsx"), files={"d.xlsx": "x"}, fragment="unsupported extension"),
    Case(
        "ft-no-label-column",
        _ft(data="n.csv"),
        files={"n.csv": "text,cls\nhello,a\n"},
        fragment="has no column 'label'",
    ),
    Case(
        "ft-json-number-text",
        _ft(data="n.jsonl"),
        files={"n.jsonl": _jsonl([{"text": "fine", "label": "a"}, {"text": 5, "label": "b"}] * 3)},
        fragment=["n.jsonl:2", "not a text"],
    ),
    Case(
        "ft-json-bool-text",
        _ft(data="n.jsonl"),
        files={"n.jsonl": _jsonl([{"text": True, "label": "a"}] * 3)},
        fragment="not a text",
    ),
    Case(
        "ft-json-list-label",
        _ft(data="l.jsonl"),
        files={"l.jsonl": _jsonl([{"text": "a b", "label": ["x", "y"]}] * 4)},
        fragment="set data.multi_label=true",
    ),
    Case(
        "ft-json-float-label",
        _ft(data="l.jsonl"),
        files={"l.jsonl": _jsonl([{"text": "a b", "label": 0.5}] * 4)},
        fragment="not a class name",
    ),
    Case(
        "ft-nan-label",
        _ft(data="nan.csv"),
        files={"nan.csv": "text,label\nhello,pos\nbye,NaN\n"},
        fragment=["nan.csv:3", "missing value"],
    ),
    Case(
        "ft-lowercase-nan-label",
        _ft(data="nan.csv"),
        files={"nan.csv": "text,label\nhello,nan\n"},
        fragment="missing value",
    ),
    Case("ft-unknown-key", _ft("train.epoch=2"), files=TOY, fragment="unknown config key 'train.epoch'"),
    Case("ft-negative-epochs", _ft("train.epochs=-1"), files=TOY, fragment="train.epochs"),
    Case("ft-zero-batch", _ft("train.batch_size=0"), files=TOY, fragment="train.batch_size"),
    Case("ft-bad-lr", _ft("train.learning_rate=fast"), files=TOY, fragment="train.learning_rate"),
    Case("ft-unknown-model-type", _ft("model.type=xgboost"), files=TOY, fragment="model.type"),
    Case(
        "ft-token-with-tfidf",
        _ft("task=token-classification"),
        files=TOY,
        fragment="model.type=tfidf is not for task=token-classification",
    ),
    Case(
        "ft-image-with-rnn",
        _ft("task=image-classification", "model.type=rnn", tfidf=False),
        files=TOY,
        fragment="use cnn or vision",
    ),
    Case(
        "ft-output-is-file",
        ["finetune", "-q", "--set", "data.train=train.csv", "--set", "model.type=tfidf", "--set", "output_dir=o.txt"],
        files={**TOY, "o.txt": "x"},
        fragment="output_dir 'o.txt' is a file",
    ),
    Case(
        "ft-output-below-file",
        [
            "finetune",
            "-q",
            "--set",
            "data.train=train.csv",
            "--set",
            "model.type=tfidf",
            "--set",
            "output_dir=o.txt/run",
        ],
        files={**TOY, "o.txt": "x"},
        fragment="'o.txt' is a file",
    ),
    Case(
        "ft-finished-tfidf-other-data",
        ["finetune", "-q", "--set", "data.train=train.csv", "--set", "model.type=tfidf", "--set", "output_dir=tfidf"],
        files=TOY,
        fragment=["holds a finished run", "resume=false"],
    ),
    Case(
        "ft-finished-rnn-changed-config",
        [
            "finetune",
            "-q",
            "--set",
            "data.train=train.csv",
            "--set",
            "model.type=rnn",
            "--set",
            "output_dir=rnn",
            "--set",
            "train.epochs=1",
        ],
        files=TOY,
        fragment=["different config", "resume=false"],
    ),
    Case(
        "ft-finished-bert-changed-config",
        [
            "finetune",
            "-q",
            "--set",
            "data.train=train.csv",
            "--set",
            "output_dir=bert",
            "--set",
            "model.name_or_path=x",
        ],
        files=TOY,
        fragment=["different config", "resume=false"],
    ),
    Case(
        "ft-model-path-missing",
        _ft("model.name_or_path=./no-model", tfidf=False),
        files=TOY,
        fragment="does not exist",
    ),
    Case(
        "ft-model-path-not-a-model",
        _ft("model.name_or_path=./notmodel", tfidf=False),
        files={**TOY, "notmodel/readme.txt": "x"},
        fragment="no config.json",
    ),
    Case(
        "ft-model-path-is-file",
        _ft("model.name_or_path=./m.bin", tfidf=False),
        files={**TOY, "m.bin": "x"},
        fragment="is a file",
    ),
    Case("ft-config-missing", ["finetune", "-q", "nope.yaml"], fragment="nope.yaml"),
    Case("ft-config-not-yaml", ["finetune", "-q", "c.yaml"], files={"c.yaml": "a: [1, 2\n"}, fragment="c.yaml"),
    Case("ft-config-not-mapping", ["finetune", "-q", "c.yaml"], files={"c.yaml": "- 1\n- 2\n"}, fragment="c.yaml"),
    Case("ft-set-without-equals", ["finetune", "-q", "--set", "train.epochs"], fragment="train.epochs"),
    Case("ft-dev-fraction-too-big", _ft("data.dev_fraction=0.9"), files=TOY, fragment="data.dev_fraction"),
    Case("ft-delimiter-without-multilabel", _ft("data.label_delimiter=|"), files=TOY, fragment="multi_label"),
]

EVALUATE = [
    Case("ev-run-missing", ["evaluate", "-q", "nope", "train.csv"], files=TOY, fragment="does not exist"),
    Case("ev-run-is-file", ["evaluate", "-q", "train.csv", "dev.csv"], files=TOY, fragment="is a file"),
    Case(
        "ev-not-a-run",
        ["evaluate", "-q", "d", "train.csv"],
        files={**TOY, "d/x": "x"},
        fragment="not a growthcurve run",
    ),
    Case("ev-data-missing", ["evaluate", "-q", "tfidf", "nope.csv"], fragment="does not exist"),
    Case(
        "ev-unseen-label",
        ["evaluate", "-q", "tfidf", "u.csv"],
        files={"u.csv": "text,label\nhello,alien\n"},
        fragment="never seen in training",
    ),
    Case(
        "ev-labels-json-broken",
        ["evaluate", "-q", "tfidf", "train.csv"],
        files=TOY,
        setup=_write("tfidf/model/labels.json", "[broken"),
        fragment=["labels.json", "not valid JSON"],
    ),
    Case(
        "ev-labels-json-missing",
        ["evaluate", "-q", "tfidf", "train.csv"],
        files=TOY,
        setup=_remove("tfidf/model/labels.json"),
        fragment=["labels.json", "is missing"],
    ),
    Case(
        "ev-labels-json-wrong-type",
        ["evaluate", "-q", "tfidf", "train.csv"],
        files=TOY,
        setup=_write("tfidf/model/labels.json", '{"a": 1}'),
        fragment="label list",
    ),
    Case(
        "ev-run-json-broken",
        ["evaluate", "-q", "tfidf", "train.csv"],
        files=TOY,
        setup=_write("tfidf/model/run.json", "{"),
        fragment=["run.json", "not valid JSON"],
    ),
    Case(
        "ev-truncated-safetensors",
        ["evaluate", "-q", "bert", "train.csv"],
        files=TOY,
        setup=_truncate("bert/model/model.safetensors"),
        fragment=["bert/model", "damaged"],
    ),
    Case(
        "ev-damaged-tfidf",
        ["evaluate", "-q", "tfidf", "train.csv"],
        files=TOY,
        setup=_truncate("tfidf/model/tfidf.skops"),
        fragment=["tfidf/model", "damaged"],
    ),
    Case(
        "ev-broken-tokenizer",
        ["evaluate", "-q", "rnn", "train.csv"],
        files=TOY,
        setup=_write("rnn/model/tokenizer.json", "{not json"),
        fragment="damaged",
    ),
    Case(
        "ev-out-is-file",
        ["evaluate", "-q", "tfidf", "train.csv", "--out", "o.txt"],
        files={**TOY, "o.txt": "x"},
        fragment="o.txt",
    ),
]

PREDICT = [
    Case("pr-input-folder", ["predict", "tfidf", "adir"], files={"adir/x": "x"}, fragment="is a folder"),
    Case("pr-input-missing", ["predict", "tfidf", "nope.txt"], fragment="does not exist"),
    Case("pr-csv-no-text-column", ["predict", "tfidf", "p.csv"], files={"p.csv": "body\nhi\n"}, fragment="no column"),
    Case(
        "pr-csv-empty-cell",
        ["predict", "tfidf", "p.csv"],
        files={"p.csv": "text,id\nhi,1\n,2\n"},
        fragment=["p.csv:3", "empty"],
    ),
    Case("pr-jsonl-null", ["predict", "tfidf", "p.jsonl"], files={"p.jsonl": '{"text": null}\n'}, fragment="empty"),
    Case("pr-jsonl-number", ["predict", "tfidf", "p.jsonl"], files={"p.jsonl": '{"text": 5}\n'}, fragment="not a text"),
    Case(
        "pr-jsonl-malformed",
        ["predict", "tfidf", "p.jsonl"],
        files={"p.jsonl": '{"text": "a"}\n{"text": \n'},
        fragment="p.jsonl:2",
    ),
    Case(
        "pr-jsonl-no-field",
        ["predict", "tfidf", "p.jsonl"],
        files={"p.jsonl": '{"body": "a"}\n'},
        fragment="no 'text' field",
    ),
    Case("pr-empty-file", ["predict", "tfidf", "p.txt"], files={"p.txt": "\n\n"}, fragment="no texts to predict"),
    Case("pr-not-utf8", ["predict", "tfidf", "p.txt"], files={"p.txt": b"\xff\xfe\n"}, fragment="not UTF-8"),
    Case("pr-top-k-zero", ["predict", "tfidf", "p.txt", "--top-k", "0"], files={"p.txt": "hi\n"}, fragment="top-k"),
    Case(
        "pr-out-below-file",
        ["predict", "tfidf", "p.txt", "--out", "o.txt/x.jsonl"],
        files={"p.txt": "hi\n", "o.txt": "x"},
        fragment="o.txt",
    ),
    Case("pr-run-missing", ["predict", "nope", "p.txt"], files={"p.txt": "hi\n"}, fragment="does not exist"),
]

MERGE = [
    Case("mg-full-run", ["merge", "bert"], fragment="already a plain model"),
    Case("mg-tfidf-run", ["merge", "tfidf"], fragment="cannot merge"),
    Case("mg-missing", ["merge", "nope"], fragment="does not exist"),
    Case("mg-file", ["merge", "train.csv"], files=TOY, fragment="is a file"),
]

# export --out over something export did not write: it used to exit 0 after deleting another run's 17 files or
# putting a folder where a file was (an earlier export, one holding export.json, is replaced)
EXPORT = [
    Case("ex-out-other-run", ["export", "bert", "--out", "tfidf"], fragment=["tfidf", "not written by this command"]),
    Case(
        "ex-out-file", ["export", "bert", "--out", "notes.txt"], files={"notes.txt": "mine"}, fragment="existing file"
    ),
    Case("ex-out-parent", ["export", "bert", "--out", "."], fragment="is or contains 'bert'"),
    Case(
        "ex-out-user-folder",
        ["export", "bert", "--out", "mine"],
        files={"mine/notes.md": "keep me"},
        fragment="not empty",
    ),
]

# card on a run without config.yaml wrote "the run's config names no data files" without naming the missing file
CARD = [
    Case(
        "card-config-missing",
        ["card", "tfidf"],
        setup=_remove("tfidf/config.yaml"),
        exit_code=0,
        fragment=("warning:", "tfidf/config.yaml' is missing", "cannot name the data"),
        absent=("names no data files",),
    ),
]

CASES = FINETUNE + EVALUATE + PREDICT + MERGE + EXPORT + CARD


@pytest.fixture(scope="session")
def finished_runs(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """Three finished runs on the toy task: tfidf, a 1-epoch BiLSTM and a 1-epoch tiny transformer."""
    from growthcurve.config import load_finetune_config
    from growthcurve.training.dispatch import run_finetune
    from tests.conftest import write_csv

    root = tmp_path_factory.mktemp("finished-runs")
    data = {s: write_csv(root / f"{s}.csv", toy_rows(64, i)) for i, s in enumerate(("train", "dev", "test"))}
    for name, extra in (
        ("tfidf", {"model.type": "tfidf"}),
        ("rnn", {"model.type": "rnn", "train.epochs": 1, "train.learning_rate": 2e-3}),
        ("bert", {"train.epochs": 1}),
    ):
        run_finetune(load_finetune_config(None, toy_overrides(tiny_bert, data, root / name, **extra)), progress=False)
    for s in data.values():
        s.unlink()
    return root


@cases_param(CASES)
def test_model_command_bad_input(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], finished_runs: Path
) -> None:
    for run in ("tfidf", "rnn", "bert"):
        shutil.copytree(finished_runs / run, tmp_path / run)
    run_case(case, tmp_path, capsys)


def test_predict_reads_a_csv_through_the_table_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], finished_runs: Path
) -> None:
    """The header and the gold label never become texts: one prediction per data row."""
    shutil.copytree(finished_runs / "tfidf", tmp_path / "tfidf")
    (tmp_path / "p.csv").write_text('text,label\n"great, love it",pos\nawful bad,neg\n', encoding="utf-8")
    case = Case("pr-csv-ok", ["predict", "tfidf", "p.csv", "--out", "preds.jsonl"], exit_code=0, fragment="wrote 2")
    run_case(case, tmp_path, capsys)
    rows = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["great, love it", "awful bad"]


def test_resume_false_starts_a_finished_folder_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], finished_runs: Path
) -> None:
    """resume=false replaces the old run: none of its reports stay beside the new model."""
    shutil.copytree(finished_runs / "tfidf", tmp_path / "tfidf")
    (tmp_path / "tfidf" / "classification_report_test.txt").write_text("old run", encoding="utf-8")
    (tmp_path / "tfidf" / "notes.txt").write_text("mine", encoding="utf-8")
    (tmp_path / "train.csv").write_text(GOOD, encoding="utf-8")
    argv = _ft("resume=false", data="train.csv")
    argv[argv.index("output_dir=out")] = "output_dir=tfidf"
    run_case(Case("ft-resume-false", argv, exit_code=0), tmp_path, capsys)
    run = tmp_path / "tfidf"
    assert not (run / "classification_report_test.txt").exists()  # no test file in the new run
    assert (run / "notes.txt").read_text(encoding="utf-8") == "mine"  # not a run artefact: kept
    assert json.loads((run / "metrics.json").read_text(encoding="utf-8"))["test"] is None


def test_card_of_a_run_without_config_names_the_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], finished_runs: Path
) -> None:
    shutil.copytree(finished_runs / "bert", tmp_path / "bert")
    (tmp_path / "bert" / "config.yaml").unlink()
    run_case(Case("card-no-config", ["card", "bert"], exit_code=0, fragment="wrote"), tmp_path, capsys)
    text = (tmp_path / "bert" / "README.md").read_text(encoding="utf-8")
    assert "config.yaml` is missing from the run folder" in text and "names no data files" not in text


def test_card_of_a_tfidf_run_names_no_pretrained_base_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], finished_runs: Path
) -> None:
    """A TF-IDF run's card said ``base_model: sentence-transformers/all-MiniLM-L6-v2`` (the config's default
    name_or_path); it starts from nothing, as the RNN run does, while the transformer run names its base."""
    from huggingface_hub import ModelCard

    for run in ("tfidf", "rnn", "bert"):
        shutil.copytree(finished_runs / run, tmp_path / run)
        run_case(Case(f"card-{run}", ["card", run], exit_code=0, fragment="wrote"), tmp_path, capsys)
    for run in ("tfidf", "rnn"):
        card = ModelCard.load(tmp_path / run / "README.md")
        assert card.data.base_model is None
        assert "MiniLM" not in card.text and "trained with growthcurve from scratch" in card.text
        assert "| base model | none (trained from scratch) |" in card.text
    bert = ModelCard.load(tmp_path / "bert" / "README.md")
    assert "fine-tuned with growthcurve from `" in bert.text and "| base model | `" in bert.text


@pytest.mark.parametrize("model_type", ["transformer", "tfidf"])
def test_ctrl_c_while_tokenising_is_the_one_line_of_a_stop(
    model_type: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_bert: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real SIGINT while the train split is read in: exit 130 with one line saying there is nothing to resume
    (typer turned the KeyboardInterrupt into a silent 130), and no run folder left behind."""
    import os
    import signal

    import growthcurve.training.baseline as baseline_recipe
    import growthcurve.training.batching as batching

    def interrupt(original):
        def wrapped(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return original(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(batching, "encode_texts", interrupt(batching.encode_texts))
    monkeypatch.setattr(baseline_recipe, "load_text_splits", interrupt(baseline_recipe.load_text_splits))
    argv = _ft(f"model.type={model_type}", f"model.name_or_path={tiny_bert}", tfidf=False)
    case = Case(
        f"ctrl-c-{model_type}",
        argv,
        files=TOY,
        exit_code=130,
        fragment=("error:", "stopped before the first checkpoint", "nothing to resume", "run the same command again"),
    )
    _, err = run_case(case, tmp_path, capsys)
    assert len(err.strip().splitlines()) == 1


def test_ctrl_c_in_any_command_says_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from growthcurve.validation.power import PowerAnalysis

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PowerAnalysis, "fit", stop)
    case = Case("ctrl-c-ab-plan", ["ab", "plan", "--baseline", "0.1", "--mde", "0.05"], exit_code=130)
    _, err = run_case(case, tmp_path, capsys)
    assert err.strip() == "interrupted"
