"""Team growth: talent scoring (direct/AHP/learned weights, WSM, TOPSIS), training effect, reviews.

Names are imported lazily so that `growthcurve --help` does not pay for scikit-learn and pymcdm.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AHP": "growthcurve.team.ahp",
    "SAATY_RI": "growthcurve.team.ahp",
    "CriteriaConfig": "growthcurve.team.scoring",
    "TalentScorer": "growthcurve.team.scoring",
    "learn_weights": "growthcurve.team.scoring",
    "PerformanceReview": "growthcurve.team.review",
    "TrainingEffect": "growthcurve.team.training",
    "cohens_dz_ci": "growthcurve.team.training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'growthcurve.team' has no attribute '{name}'")
