"""Talent assessment: candidates x criteria, weights (direct, AHP or learned), WSM and TOPSIS ranking,
and how stable the top-k is when the weights are perturbed.

Ranking uses ``pymcdm`` (maintained MCDA library): TOPSIS with vector normalisation as in Hwang &
Yoon (1981), the weighted sum (WSM) with min-max normalisation. Learned weights come from past hires'
outcomes with scikit-learn's ``BayesianRidge`` (the seed's score theta^T x with theta fitted; its
posterior standard deviation is reported as the uncertainty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from pymcdm import normalizations
from pymcdm.methods import TOPSIS, WSM
from scipy import stats
from sklearn.linear_model import BayesianRidge

from growthcurve.config import StrictModel, build_config
from growthcurve.data.readers import infer_numeric, line_of, read_table
from growthcurve.errors import ConfigError, DataError
from growthcurve.team.ahp import AHP, read_ahp_matrix


class CriterionSpec(StrictModel):
    """One criterion: ``benefit`` (more is better) or ``cost`` (less is better), optional direct weight."""

    name: str = Field(min_length=1)
    kind: Literal["benefit", "cost"] = "benefit"
    weight: float | None = Field(None, ge=0)


class CriteriaConfig(StrictModel):
    """A criteria file; ``id_column`` names the candidate column."""

    criteria: list[CriterionSpec] = Field(min_length=1)
    id_column: str = "name"

    @model_validator(mode="after")
    def _unique(self) -> CriteriaConfig:
        names = [c.name for c in self.criteria]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"criteria names must be unique; repeated: {', '.join(dupes)}")
        return self


def load_criteria(path: str | Path, overrides: list[str] | None = None) -> CriteriaConfig:
    """Read and validate a criteria YAML file."""
    return build_config(CriteriaConfig, path, overrides)


def criteria_matrix(df: pd.DataFrame, criteria: CriteriaConfig, source: str = "candidates") -> np.ndarray:
    """The numeric criteria columns of ``df``; missing columns and non-numeric cells are DataErrors."""
    names = [c.name for c in criteria.criteria]
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise DataError(
            f"{source} lack criteria column(s) {', '.join(missing)} (columns: {', '.join(map(str, df.columns))})"
        )
    out = np.empty((len(df), len(names)))
    for j, n in enumerate(names):
        num = pd.to_numeric(df[n], errors="coerce")
        bad = num.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: criterion '{n}' must be numeric, got '{df[n].iloc[i]}' on line {line_of(df, i)}"
            )
        out[:, j] = num.to_numpy(dtype=float)
    if not np.all(np.isfinite(out)):
        raise DataError(f"{source}: criteria values must be finite numbers")
    return out


def read_numeric_table(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV/TSV/JSONL/Parquet table through the shared reader (same messages as ``finetune``), numbers typed."""
    return infer_numeric(read_table(path, what))


@dataclass
class LearnedWeights:
    """theta (per standardised criterion), its posterior sd, and the derived non-negative MCDA weights."""

    names: list[str]
    theta: np.ndarray
    theta_sd: np.ndarray
    intercept: float
    weights: np.ndarray
    contradicting: list[str]  # criteria whose learned sign contradicts their declared kind (weight 0)
    n_hires: int
    model: BayesianRidge
    mean: np.ndarray
    scale: np.ndarray

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted outcome and its predictive standard deviation for raw criteria rows."""
        z = (x - self.mean) / self.scale
        mean, sd = self.model.predict(z, return_std=True)
        return mean, sd


def learn_weights(past: pd.DataFrame, criteria: CriteriaConfig, outcome: str = "outcome") -> LearnedWeights:
    """Fit outcome ~ theta^T z (z = standardised criteria) with Bayesian ridge regression."""
    if outcome not in past.columns:
        raise DataError(f"past hires need an '{outcome}' column with each hire's later outcome")
    x = criteria_matrix(past, criteria, "past hires")
    y = pd.to_numeric(past[outcome], errors="coerce")
    if y.isna().any():
        i = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise DataError(f"past hires: '{outcome}' must be numeric, got '{past[outcome].iloc[i]}' on line {i + 2}")
    if len(past) < len(criteria.criteria) + 2:
        raise DataError(f"learning weights needs at least {len(criteria.criteria) + 2} past hires, got {len(past)}")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = BayesianRidge().fit((x - mean) / scale, y.to_numpy(dtype=float))
    theta = np.asarray(model.coef_, dtype=float)
    sd = np.sqrt(np.diag(model.sigma_))
    direction = np.array([1.0 if c.kind == "benefit" else -1.0 for c in criteria.criteria])
    aligned = theta * direction
    names = [c.name for c in criteria.criteria]
    contradicting = [n for n, a in zip(names, aligned, strict=True) if a < 0]
    pos = np.maximum(aligned, 0.0)
    if pos.sum() <= 0:
        raise DataError("no criterion has a learned effect in its declared direction; check benefit/cost kinds")
    return LearnedWeights(
        names,
        theta,
        sd,
        float(model.intercept_),
        pos / pos.sum(),
        contradicting,
        len(past),
        model,
        mean,
        scale,
    )


@dataclass
class Stability:
    """Top-k stability under weight perturbation for one method."""

    p_topk_unchanged: float
    p_in_topk: dict[str, float]
    mean_kendall_tau: float


@dataclass
class RankingResult:
    """Scores, ranks and stability per method."""

    names: list[str]
    criteria: list[str]
    weights: np.ndarray
    weight_source: str
    scores: dict[str, np.ndarray]
    ranks: dict[str, np.ndarray]
    stability: dict[str, Stability]
    k: int
    dropped_constant: list[str] = field(default_factory=list)
    ahp_cr: float | None = None
    learned: LearnedWeights | None = None
    predicted: tuple[np.ndarray, np.ndarray] | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate, sorted by TOPSIS rank."""
        df = pd.DataFrame({"candidate": self.names})
        for m in self.scores:
            df[f"{m}_score"] = self.scores[m]
            df[f"{m}_rank"] = self.ranks[m]
            df[f"{m}_p_in_top{self.k}"] = [self.stability[m].p_in_topk[n] for n in self.names]
        if self.predicted is not None:
            df["predicted_outcome"], df["predicted_sd"] = self.predicted
        return df.sort_values(f"{next(iter(self.scores))}_rank").reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out: dict[str, Any] = {
            "weights": dict(zip(self.criteria, map(float, self.weights), strict=True)),
            "weight_source": self.weight_source,
            "k": self.k,
            "dropped_constant_criteria": self.dropped_constant,
            "stability": {m: s.__dict__ for m, s in self.stability.items()},
        }
        if self.ahp_cr is not None:
            out["ahp_consistency_ratio"] = self.ahp_cr
        if self.learned is not None:
            lw = self.learned
            out["learned"] = {
                "n_hires": lw.n_hires,
                "intercept": lw.intercept,
                "theta": dict(zip(lw.names, map(float, lw.theta), strict=True)),
                "theta_sd": dict(zip(lw.names, map(float, lw.theta_sd), strict=True)),
                "contradicting_kind": lw.contradicting,
            }
        return out


def _rank(scores: np.ndarray) -> np.ndarray:
    """1 = best; ties share the better rank."""
    return stats.rankdata(-scores, method="min").astype(int)


def _score(method: str, x: np.ndarray, w: np.ndarray, types: np.ndarray) -> np.ndarray:
    if method == "topsis":
        return TOPSIS(normalizations.vector_normalization)(x, w, types)
    return WSM(normalizations.minmax_normalization)(x, w, types)


class TalentScorer:
    """Rank candidates with WSM and TOPSIS and measure top-k stability under weight perturbation.

    ``perturbation`` = p multiplies each weight by U(1 - p, 1 + p) before renormalising.
    """

    def __init__(self, k: int = 3, perturbation: float = 0.2, n_samples: int = 1000, seed: int = 0) -> None:
        self.k = k
        self.perturbation = perturbation
        self.n_samples = n_samples
        self.seed = seed

    def fit(
        self,
        candidates: pd.DataFrame,
        criteria: CriteriaConfig,
        weights: np.ndarray | None = None,
        weight_source: str = "direct",
        *,
        ahp_cr: float | None = None,
        learned: LearnedWeights | None = None,
    ) -> TalentScorer:
        """Score ``candidates``. Weights: ``weights`` (e.g. from AHP, with its consistency ratio ``ahp_cr``),
        ``learned`` from past hires (its weights, and each candidate's predicted outcome in the result), or
        None: the criteria file's direct weights. Everything the ranking rests on lands in ``result_``."""
        if not 0 <= self.perturbation < 1:
            raise ConfigError(f"perturbation must be in [0, 1), got {self.perturbation}")
        if learned is not None:
            if weights is not None:
                raise ConfigError("give weights or learned weights, not both")
            weights, weight_source = learned.weights, "learned"
        names_c = [c.name for c in criteria.criteria]
        if weights is None:
            missing = [c.name for c in criteria.criteria if c.weight is None]
            if missing:
                raise ConfigError(
                    f"criterion '{missing[0]}' has no weight; give weights in the criteria file, "
                    "--ahp MATRIX.csv or --learn PAST_HIRES.csv"
                )
            weights = np.array([float(c.weight) for c in criteria.criteria])  # type: ignore[arg-type]
        weights = np.asarray(weights, dtype=float)
        if weights.sum() <= 0:
            raise ConfigError("criteria weights must not all be zero")
        weights = weights / weights.sum()
        if criteria.id_column not in candidates.columns:
            raise DataError(f"candidates need an id column '{criteria.id_column}' (set id_column in the criteria file)")
        x = criteria_matrix(candidates, criteria)
        if len(x) < 2:
            raise DataError("ranking needs at least 2 candidates")
        names = [str(v) for v in candidates[criteria.id_column]]
        ids = pd.Series(names)
        if ids.duplicated().any():
            # an error, not a silent drop: two rows for one candidate may disagree, and only the user knows
            # which is right (counting both would rank the same person twice)
            pos = int(np.flatnonzero(ids.duplicated().to_numpy())[0])
            first = int(np.flatnonzero((ids == ids.iloc[pos]).to_numpy())[0])
            raise DataError(
                f"candidate id '{ids.iloc[pos]}' appears twice (lines {line_of(candidates, first)} and "
                f"{line_of(candidates, pos)}); keep one row per candidate"
            )
        types = np.array([1 if c.kind == "benefit" else -1 for c in criteria.criteria])
        constant = np.ptp(x, axis=0) == 0
        dropped = [n for n, c in zip(names_c, constant, strict=True) if c]
        keep = ~constant
        if not keep.any():
            raise DataError("every criterion has the same value for all candidates; nothing to rank on")
        xk, wk, tk = x[:, keep], weights[keep] / weights[keep].sum(), types[keep]
        if not 1 <= self.k < len(names):
            # k >= the number of candidates makes "top-k unchanged" 100% by construction: say so, don't clip
            raise ConfigError(
                f"--top {self.k} must be between 1 and {len(names) - 1} for {len(names)} candidates "
                "(the stability of the top-k is only informative when some candidates are outside it)"
            )
        k = self.k
        rng = np.random.default_rng(self.seed)
        factors = rng.uniform(1 - self.perturbation, 1 + self.perturbation, (self.n_samples, len(wk)))
        samples = wk * factors
        samples /= samples.sum(axis=1, keepdims=True)
        scores, ranks, stab = {}, {}, {}
        for m in ("topsis", "wsm"):
            s = _score(m, xk, wk, tk)
            scores[m], ranks[m] = s, _rank(s)
            top = set(np.argsort(-s, kind="stable")[:k])
            same, taus = 0, []
            counts = np.zeros(len(names))
            for w in samples:
                sp = _score(m, xk, w, tk)
                t = np.argsort(-sp, kind="stable")[:k]
                counts[t] += 1
                same += set(t) == top
                tau = stats.kendalltau(s, sp).statistic
                taus.append(1.0 if math.isnan(tau) else tau)
            stab[m] = Stability(
                same / self.n_samples,
                dict(zip(names, (counts / self.n_samples).tolist(), strict=True)),
                float(np.mean(taus)),
            )
        self.result_ = RankingResult(
            names=names,
            criteria=names_c,
            weights=weights,
            weight_source=weight_source,
            scores=scores,
            ranks=ranks,
            stability=stab,
            k=k,
            dropped_constant=dropped,
            ahp_cr=ahp_cr,
            learned=learned,
            predicted=learned.predict(x) if learned is not None else None,
        )
        return self


def weights_from_ahp(path: str | Path, criteria: CriteriaConfig, force: bool = False) -> tuple[np.ndarray, float]:
    """AHP weights ordered like the criteria file, and the consistency ratio."""
    df = read_ahp_matrix(path)
    names = [c.name for c in criteria.criteria]
    if sorted(df.columns) != sorted(names):
        miss = sorted(set(names) - set(df.columns)) or sorted(set(df.columns) - set(names))
        raise DataError(f"AHP matrix criteria {list(df.columns)} differ from the criteria file's (e.g. '{miss[0]}')")
    df = df.loc[names, names]
    ahp = AHP(force=force).fit(df)
    return ahp.weights_, ahp.cr_
