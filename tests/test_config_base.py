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
            if isinstance(node, ast.ClassDef) and node.name.lstrip("_").lower().startswith("strict"):
                if path != SRC / "config.py":
                    copies.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
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
