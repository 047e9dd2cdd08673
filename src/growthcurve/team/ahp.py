"""Analytic Hierarchy Process: criteria weights from a pairwise-comparison matrix (Saaty 1980).

Weights are the principal (Perron) eigenvector of the positive reciprocal matrix; consistency is
``CR = CI / RI`` with ``CI = (lambda_max - n) / (n - 1)`` and Saaty's random index RI. A CR above 0.1
is refused unless forced. The eigen decomposition is numpy's; the few lines around it are ours because
``ahpy`` takes pairwise dictionaries rather than a matrix and defaults to Donegan-Dodd's RI table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from growthcurve.data.readers import read_table
from growthcurve.errors import DataError

# Saaty's random consistency index by matrix size (Saaty 1980/2008; n = 1..15).
SAATY_RI = {
    1: 0.0,
    2: 0.0,
    3: 0.58,
    4: 0.90,
    5: 1.12,
    6: 1.24,
    7: 1.32,
    8: 1.41,
    9: 1.45,
    10: 1.49,
    11: 1.51,
    12: 1.48,
    13: 1.56,
    14: 1.57,
    15: 1.59,
}


@dataclass
class AHPResult:
    """Weights and consistency of one comparison matrix."""

    names: list[str]
    weights: np.ndarray
    lambda_max: float
    ci: float
    ri: float
    cr: float


class AHP:
    """Fit criteria weights from a pairwise-comparison matrix ``A[i, j]`` = importance of i over j."""

    def __init__(self, max_cr: float = 0.1, force: bool = False, rtol: float = 1e-3) -> None:
        self.max_cr = max_cr
        self.force = force
        self.rtol = rtol

    def fit(self, matrix: np.ndarray | pd.DataFrame, names: list[str] | None = None) -> AHP:
        """Check the matrix, compute the principal eigenvector and the consistency ratio."""
        if isinstance(matrix, pd.DataFrame):
            names = names or [str(c) for c in matrix.columns]
            matrix = matrix.to_numpy()
        a = np.asarray(matrix, dtype=float)
        n = a.shape[0]
        if a.ndim != 2 or a.shape[1] != n or n < 2:
            raise DataError(f"AHP matrix must be square with at least 2 criteria, got shape {a.shape}")
        names = names or [f"c{i + 1}" for i in range(n)]
        if len(names) != n:
            raise DataError(f"AHP matrix has {n} rows but {len(names)} criteria names")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            i, j = np.argwhere(~np.isfinite(a) | (a <= 0))[0]
            raise DataError(f"AHP matrix must be positive: entry ({names[i]}, {names[j]}) is {a[i, j]:g}")
        if not np.allclose(np.diag(a), 1.0):
            i = int(np.flatnonzero(~np.isclose(np.diag(a), 1.0))[0])
            raise DataError(f"AHP matrix diagonal must be 1: ({names[i]}, {names[i]}) is {a[i, i]:g}")
        bad = ~np.isclose(a * a.T, 1.0, rtol=self.rtol, atol=0)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(
                f"AHP matrix is not reciprocal: ({names[i]}, {names[j]}) = {a[i, j]:g} but "
                f"({names[j]}, {names[i]}) = {a[j, i]:g}, expected {1 / a[i, j]:.4g}"
            )
        eigvals, eigvecs = np.linalg.eig(a)
        k = int(np.argmax(eigvals.real))
        w = np.abs(eigvecs[:, k].real)
        w = w / w.sum()
        lam = float(eigvals[k].real)
        ci = (lam - n) / (n - 1)
        ri = SAATY_RI.get(n, 1.59)
        cr = ci / ri if ri > 0 else 0.0
        if cr > self.max_cr and not self.force:
            worst = self._worst_pair(a, w)
            raise DataError(
                f"AHP consistency ratio {cr:.3f} > {self.max_cr:g}: revise judgements (most inconsistent: "
                f"{names[worst[0]]} vs {names[worst[1]]}) or pass --force"
            )
        self.result_ = AHPResult(list(names), w, lam, float(ci), ri, float(cr))
        self.weights_ = w
        self.cr_ = float(cr)
        return self

    @staticmethod
    def _worst_pair(a: np.ndarray, w: np.ndarray) -> tuple[int, int]:
        """The judgement furthest from the ratio implied by the weights (a_ij vs w_i / w_j)."""
        dev = np.abs(np.log(a * np.outer(1 / w, w)))
        i, j = np.unravel_index(np.argmax(dev), dev.shape)
        return int(i), int(j)


def read_ahp_matrix(path: str | Path) -> pd.DataFrame:
    """A pairwise matrix CSV, criteria names in the header and first column; fractions like 1/3 allowed."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"AHP matrix file '{p}' does not exist")
    table = read_table(p)  # the shared reader: cells stay text (fractions such as 1/3 are parsed below)
    raw = table.set_index(table.columns[0])
    if list(map(str, raw.index)) != list(map(str, raw.columns)):
        raise DataError(f"{p}: row names {list(raw.index)} must equal column names {list(raw.columns)}")
    out = pd.DataFrame(index=[str(i) for i in raw.index], columns=[str(c) for c in raw.columns], dtype=float)
    for i, r in enumerate(raw.index):
        for j, c in enumerate(raw.columns):
            cell = str(raw.iat[i, j]).strip()
            try:
                num, _, den = cell.partition("/")
                out.iat[i, j] = float(num) / (float(den) if den else 1.0)
            except (ValueError, ZeroDivisionError):
                raise DataError(f"{p}: entry ({r}, {c}) = '{cell}' is not a number or fraction") from None
    return out
