"""Strategic planning: portfolio allocation under constraints (MILP), Monte Carlo risk, goals, review.

Names are imported lazily so that `growthcurve --help` does not pay for scipy.optimize.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AllocationResult": "growthcurve.planning.allocate",
    "PortfolioAllocator": "growthcurve.planning.allocate",
    "brute_force": "growthcurve.planning.allocate",
    "explain_infeasibility": "growthcurve.planning.allocate",
    "greedy_allocation": "growthcurve.planning.allocate",
    "GoalsConfig": "growthcurve.planning.goals",
    "assess_goals": "growthcurve.planning.goals",
    "assess_key_result": "growthcurve.planning.goals",
    "load_goals": "growthcurve.planning.goals",
    "Portfolio": "growthcurve.planning.portfolio",
    "PortfolioConfig": "growthcurve.planning.portfolio",
    "compile_portfolio": "growthcurve.planning.portfolio",
    "load_portfolio": "growthcurve.planning.portfolio",
    "PlanRiskSimulator": "growthcurve.planning.risk",
    "GoalStore": "growthcurve.planning.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'growthcurve.planning' has no attribute '{name}'")
