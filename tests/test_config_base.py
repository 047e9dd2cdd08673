"""Every config model shares one strict base: unknown keys are refused and assignments are validated."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from growthcurve.apps.assist.config import AssistConfig
from growthcurve.apps.recommender.config import RecommenderConfig
from growthcurve.config import FinetuneConfig, StrictModel
from growthcurve.planning.goals import GoalsConfig
from growthcurve.planning.portfolio import PortfolioConfig
from growthcurve.team.scoring import CriteriaConfig
from growthcurve.validation.config import ABConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "growthcurve"


def test_no_module_declares_its_own_strict_base() -> None:
    """A private ``_Strict(BaseModel)`` copy is how four of seven bases came to validate assignments and three
    not: config models derive from ``growthcurve.config.StrictModel`` instead."""
    copies = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_base = isinstance(node, ast.ClassDef) and node.name.lstrip("_").lower().startswith("strict")
            if is_base and path != SRC / "config.py":
                copies.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert copies == []


def test_no_model_repeats_the_strict_config_by_hand() -> None:
    """A config model spelling out ``extra="forbid", validate_assignment=True`` itself is a copy of the base."""
    copies = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "model_config" for t in node.targets):
                keywords = {k.arg for k in getattr(node.value, "keywords", [])}
                if "validate_assignment" in keywords:
                    copies.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert copies == []


@pytest.mark.parametrize(
    "cls", [FinetuneConfig, AssistConfig, RecommenderConfig, GoalsConfig, PortfolioConfig, CriteriaConfig, ABConfig]
)
def test_config_models_derive_from_the_strict_base(cls: type[BaseModel]) -> None:
    assert issubclass(cls, StrictModel)
    assert cls.model_config.get("extra") == "forbid"
    assert cls.model_config.get("validate_assignment") is True


KEY_RESULT = {"id": "kr1", "start_value": 0, "target": 1, "start_date": "2026-01-01", "due_date": "2026-12-31"}


def test_assignment_is_validated_where_it_was_not() -> None:
    """The goals, portfolio and criteria models accepted any assignment before they shared the base."""
    goals = GoalsConfig(objectives=[])
    with pytest.raises(ValidationError):
        goals.objectives = "not a list"  # type: ignore[assignment]
    criteria = CriteriaConfig(criteria=[{"name": "skill", "weight": 1.0}])
    with pytest.raises(ValidationError):
        criteria.id_column = 3  # type: ignore[assignment]
    objective = GoalsConfig.model_validate({"objectives": [{"id": "o1", "key_results": [KEY_RESULT]}]}).objectives[0]
    with pytest.raises(ValidationError):
        objective.id = ""


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        PortfolioConfig.model_validate({"projects": [], "capacity": {}})


ROOT = Path(__file__).resolve().parents[1]


def test_example_config_reads_its_data_against_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from another folder, examples/configs/banking77.yaml must not pick up whatever ``../shared/data``
    sits next to the working directory (it silently trained 8 epochs on it)."""
    from growthcurve.config import load_finetune_config

    decoy = tmp_path / "shared" / "data" / "banking77"
    decoy.mkdir(parents=True)
    (decoy / "train.csv").write_text("text,category\nhi,greet\n", encoding="utf-8")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    config = ROOT / "examples" / "configs" / "banking77.yaml"
    cfg = load_finetune_config(config)
    expected = (config.parent / "../../../shared/data/banking77/train.csv").resolve()
    assert cfg.data.train is not None and Path(cfg.data.train).is_absolute()
    assert Path(cfg.data.train).resolve() == expected
    assert Path(cfg.data.train).resolve() != (decoy / "train.csv").resolve()


def test_file_paths_follow_the_file_and_overrides_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from growthcurve.apps.assist.config import load_assist_config
    from growthcurve.apps.recommender.config import load_recommender_config
    from growthcurve.config import config_yaml, load_finetune_config
    from growthcurve.validation.config import load_ab_config

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "ft.yaml").write_text("data:\n  train: data/train.csv\n  test: /abs/test.csv\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    cfg = load_finetune_config("conf/ft.yaml", ["data.dev=dev.csv"])
    assert cfg.data.train == str(tmp_path / "conf" / "data" / "train.csv")
    assert cfg.data.test == "/abs/test.csv"
    assert cfg.data.dev == str(tmp_path / "dev.csv")
    # the copy a run folder keeps reads the same files from anywhere
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(config_yaml(cfg), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "run")
    again = load_finetune_config("config.yaml")
    assert (again.data.train, again.data.dev, again.data.test) == (cfg.data.train, cfg.data.dev, cfg.data.test)

    (conf / "assist.yaml").write_text("faq: faq.csv\nintent:\n  run: ../runs/intents\n", encoding="utf-8")
    a = load_assist_config(conf / "assist.yaml")
    assert a.faq == str(conf / "faq.csv")
    assert Path(a.intent.run or "").resolve() == (tmp_path / "runs" / "intents").resolve()
    (conf / "rec.yaml").write_text("data:\n  interactions: r.csv\n  items: i.csv\n", encoding="utf-8")
    r = load_recommender_config(conf / "rec.yaml")
    assert (r.data.interactions, r.data.items) == (str(conf / "r.csv"), str(conf / "i.csv"))
    (conf / "ab.yaml").write_text("source:\n  path: events.csv\nmetrics:\n  - name: m\n", encoding="utf-8")
    assert load_ab_config(conf / "ab.yaml").source.path == str(conf / "events.csv")


def test_an_empty_path_is_still_refused() -> None:
    from growthcurve.config import load_finetune_config
    from growthcurve.errors import ConfigError

    with pytest.raises(ConfigError, match="empty"):
        load_finetune_config(None, ["data.train="])
