"""Portfolio allocation as a mixed-integer program solved by HiGHS (``highspy``, warm-started from greedy).

Objective: maximise expected gain, or mean minus lambda times CVaR of the loss (loss = -gain) over
sampled scenarios, linearised after Rockafellar & Uryasev (2000). Shadow prices of the capacities come
from the LP relaxation (``linprog(method="highs")`` duals); an infeasible problem is explained with a
deletion filter over the constraint set (Chinneck's IIS search), a cycle in the dependencies is named.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from sklearn.base import BaseEstimator, clone

from growthcurve.errors import ConfigError, DataError, ModelError
from growthcurve.planning.portfolio import Portfolio
from growthcurve.planning.risk import cvar_of_loss, sample_outcomes

Unit = tuple[str, int]  # ("capacity", row) / ("mandatory", i) / ("depends", k) / ("excludes", k)


@dataclass
class ResourceUse:
    """Use of one capacity row by the chosen plan, with its LP-relaxation shadow price."""

    label: str
    used: float
    capacity: float
    slack: float
    binding: bool
    shadow_price: float  # objective gain per extra unit of capacity in the LP relaxation


@dataclass
class AllocationResult:
    """The chosen plan and what it costs."""

    objective: str
    levels: list[int]
    chosen: list[str]
    objective_value: float
    expected_gain: float
    cvar_loss: float | None
    lp_bound: float | None
    mip_gap: float
    status: str
    seconds: float
    resources: list[ResourceUse] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class WhatIf:
    """The best plan when one capacity changes by a fraction."""

    label: str
    change: float
    capacity: float
    objective_value: float | None
    delta: float | None
    added: list[str]
    removed: list[str]
    status: str


@dataclass
class _Problem:
    c: np.ndarray
    A: sparse.csr_matrix
    b: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integrality: np.ndarray
    n_capacity_rows: int


def _build(
    pf: Portfolio,
    objective: str = "expected",
    risk_lambda: float = 0.0,
    cvar_alpha: float = 0.1,
    scenarios: np.ndarray | None = None,
    units: set[Unit] | None = None,
    zero_objective: bool = False,
) -> _Problem:
    """Assemble ``min c@v s.t. A@v <= b, lb <= v <= ub`` (v = levels, activity indicators, CVaR vars)."""
    n = pf.n
    multi = [i for i in range(n) if pf.upper[i] > 1]
    zcol = {i: n + k for k, i in enumerate(multi)}

    def act(i: int) -> int:
        return zcol.get(i, i)

    def keep(unit: Unit) -> bool:
        return units is None or unit in units

    nvar = n + len(multi)
    cvar = objective == "cvar" and not zero_objective
    if cvar:
        assert scenarios is not None
        n_s = scenarios.shape[0]
        t_col, u0 = nvar, nvar + 1
        nvar += 1 + n_s
    c = np.zeros(nvar)
    if not zero_objective:
        c[:n] = -pf.expected_gain
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    b: list[float] = []

    def add(entries: list[tuple[int, float]], rhs: float) -> None:
        r = len(b)
        for col, v in entries:
            rows.append(r)
            cols.append(col)
            vals.append(v)
        b.append(rhs)

    n_cap = 0
    for k, row in enumerate(pf.rows):
        if keep(("capacity", k)):
            add([(int(i), float(row.coef[i])) for i in np.flatnonzero(row.coef)], row.capacity)
            n_cap += 1
    for i in multi:  # z_i <= x_i <= U_i z_i
        add([(i, 1.0), (zcol[i], -float(pf.upper[i]))], 0.0)
        add([(zcol[i], 1.0), (i, -1.0)], 0.0)
    for k, (bb, a) in enumerate(pf.dependencies):
        if keep(("depends", k)):
            add([(act(bb), 1.0), (act(a), -1.0)], 0.0)
    for k, (a, bb) in enumerate(pf.exclusions):
        if keep(("excludes", k)):
            add([(act(a), 1.0), (act(bb), 1.0)], 1.0)
    n_rows = len(b)
    A = sparse.csr_matrix((vals, (rows, cols)), shape=(n_rows, nvar))
    bvec = np.array(b, dtype=float)
    if cvar:
        # loss_s = -g_s @ x;  u_s >= loss_s - t  <=>  -g_s @ x - t - u_s <= 0
        assert scenarios is not None
        n_s = scenarios.shape[0]
        block = sparse.hstack(
            [
                sparse.csr_matrix(-scenarios),
                sparse.csr_matrix((n_s, nvar - n - 1 - n_s)),
                sparse.csr_matrix(-np.ones((n_s, 1))),
                -sparse.identity(n_s, format="csr"),
            ],
            format="csr",
        )
        A = sparse.vstack([A, block], format="csr")
        bvec = np.concatenate([bvec, np.zeros(n_s)])
        c[t_col] = risk_lambda
        c[u0:] = risk_lambda / (cvar_alpha * n_s)
    lb = np.zeros(nvar)
    ub = np.ones(nvar)
    ub[:n] = pf.upper
    integrality = np.ones(nvar)
    if cvar:
        lb[t_col], ub[t_col] = -np.inf, np.inf
        ub[u0:] = np.inf
        integrality[t_col:] = 0
    for i in pf.mandatory:
        if keep(("mandatory", i)):
            lb[act(i)] = 1.0
    return _Problem(c, A, bvec, lb, ub, integrality, n_cap)


# Share of HiGHS's MIP effort spent on primal heuristics (RINS, RENS, feasibility pump...). HiGHS's
# default 0.05 can leave the incumbent of a hard multi-resource knapsack ~0.1% short for many seconds
# while the bound is already tight; 0.3 with a greedy start closes 12/12 random 500 x 5 instances
# to gap 1e-3 within 5 s (benchmarks/planning.py), where the default hit the 10 s limit on 2 of them.
HEURISTIC_EFFORT = 0.3


@dataclass
class _MilpResult:
    """The parts of a HiGHS MIP solve we use (same names as ``scipy.optimize.milp``'s result)."""

    status: int  # 0 optimal (within the gap), 1 a limit was hit, 2 infeasible, 4 other failure
    x: np.ndarray | None
    fun: float | None
    mip_gap: float
    message: str


_highs_started = False


def _new_highs() -> Any:
    """A ``highspy.Highs`` solver, with HiGHS's banner kept out of our output.

    The first solver of a process prints a banner from C++ straight to file descriptor 1, before any
    option can turn output off; it would land in the middle of the CLI's tables, so fd 1 points at
    /dev/null while that first one is made.
    """
    global _highs_started
    import highspy

    if _highs_started:
        return highspy.Highs()
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    _highs_started = True
    return h


def _solve_milp(
    prob: _Problem,
    gap: float,
    time_limit: float,
    start: np.ndarray | None = None,
    heuristic_effort: float = HEURISTIC_EFFORT,
) -> _MilpResult:
    """Solve ``prob`` with HiGHS through ``highspy``, optionally from a feasible starting point.

    ``highspy`` is HiGHS's own Python interface, the same solver ``scipy.optimize.milp`` wraps; we call it
    directly because ``milp`` takes no starting solution and scipy bundles an older HiGHS (1.12), which
    measured slower on the hard 500 x 5 instances than highspy's 1.16 (benchmarks/planning.py).
    """
    import highspy

    h = _new_highs()
    for key, value in (
        ("output_flag", False),
        ("mip_rel_gap", float(gap)),
        ("time_limit", float(time_limit)),
        ("mip_heuristic_effort", float(heuristic_effort)),
        ("threads", 1),  # deterministic, and a 2-core machine gains nothing from more
    ):
        h.setOptionValue(key, value)
    n = prob.c.size
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, prob.A.shape[0]
    lp.col_cost_ = prob.c.astype(float)
    lp.col_lower_ = np.where(np.isfinite(prob.lb), prob.lb, -highspy.kHighsInf)
    lp.col_upper_ = np.where(np.isfinite(prob.ub), prob.ub, highspy.kHighsInf)
    lp.row_lower_ = np.full(prob.A.shape[0], -highspy.kHighsInf)
    lp.row_upper_ = prob.b.astype(float)
    a = sparse.csc_matrix(prob.A)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data.astype(float)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, prob.A.shape[0]
    kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
    lp.integrality_ = [kinds[int(v)] for v in prob.integrality]
    h.passModel(lp)
    if start is not None:  # HiGHS checks the point and ignores it if it is infeasible
        sol = highspy.HighsSolution()
        sol.col_value = [float(v) for v in start]
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    ms = h.getModelStatus()
    info = h.getInfo()
    has_x = info.primal_solution_status == 2  # kSolutionStatusFeasible
    codes = {
        highspy.HighsModelStatus.kOptimal: 0,
        highspy.HighsModelStatus.kTimeLimit: 1,
        highspy.HighsModelStatus.kIterationLimit: 1,
        highspy.HighsModelStatus.kSolutionLimit: 1,
        highspy.HighsModelStatus.kInterrupt: 1,
        highspy.HighsModelStatus.kInfeasible: 2,
        highspy.HighsModelStatus.kUnboundedOrInfeasible: 2,  # our variables are bounded
    }
    x = np.asarray(h.getSolution().col_value, dtype=float) if has_x else None
    return _MilpResult(
        status=codes.get(ms, 4),
        x=x,
        fun=float(info.objective_function_value) if has_x else None,
        mip_gap=float(info.mip_gap) if has_x and math.isfinite(info.mip_gap) else 0.0,
        message=h.modelStatusToString(ms),
    )


def _start_point(prob: _Problem, pf: Portfolio, levels: np.ndarray, scenarios: np.ndarray | None) -> np.ndarray:
    """The full variable vector (levels, activity indicators, CVaR terms) of a plan given by its levels."""
    x = np.zeros(prob.c.size)
    x[: pf.n] = levels
    multi = [i for i in range(pf.n) if pf.upper[i] > 1]
    for k, i in enumerate(multi):
        x[pf.n + k] = float(levels[i] > 0)
    if scenarios is not None and prob.c.size > pf.n + len(multi):
        loss = -(scenarios @ levels)
        t = float(np.max(loss))  # any t is feasible with u_s = max(0, loss_s - t)
        x[pf.n + len(multi)] = t
        x[pf.n + len(multi) + 1 :] = np.maximum(0.0, loss - t)
    return x


def unit_label(pf: Portfolio, unit: Unit) -> str:
    """Human-readable name of one constraint of the model."""
    kind, k = unit
    if kind == "capacity":
        return f"capacity {pf.rows[k].label} <= {pf.rows[k].capacity:g}"
    if kind == "mandatory":
        return f"mandatory '{pf.names[k]}'"
    if kind == "depends":
        bb, a = pf.dependencies[k]
        return f"'{pf.names[bb]}' needs '{pf.names[a]}'"
    a, bb = pf.exclusions[k]
    return f"'{pf.names[a]}' excludes '{pf.names[bb]}'"


def _all_units(pf: Portfolio) -> list[Unit]:
    return (
        [("capacity", k) for k in range(len(pf.rows))]
        + [("mandatory", i) for i in pf.mandatory]
        + [("depends", k) for k in range(len(pf.dependencies))]
        + [("excludes", k) for k in range(len(pf.exclusions))]
    )


def explain_infeasibility(pf: Portfolio, time_limit: float = 30.0) -> list[Unit] | None:
    """An irreducible set of constraints that cannot hold together, or None when the plan is feasible.

    Deletion filter (Chinneck & Dravnieks 1991): drop whole constraint families, then single
    constraints, whenever the rest stays infeasible; what remains is minimal (an IIS).
    """

    def infeasible(units: set[Unit]) -> bool:
        res = _solve_milp(_build(pf, units=units, zero_objective=True), 0.0, time_limit)
        return res.status == 2

    current = set(_all_units(pf))
    if not infeasible(current):
        return None
    for family in ("excludes", "depends", "capacity", "mandatory"):
        trial = {u for u in current if u[0] != family}
        if trial != current and infeasible(trial):
            current = trial
    for unit in sorted(current):
        trial = current - {unit}
        if infeasible(trial):
            current = trial
    return sorted(current)


class PortfolioAllocator(BaseEstimator):
    """Choose which projects (and at what level) to fund under capacities, with HiGHS.

    ``objective="expected"`` maximises expected gain; ``"cvar"`` maximises
    ``E[gain] - risk_lambda * CVaR_alpha(-gain)`` over ``n_scenarios`` sampled outcomes. scikit-learn's
    estimator shape (``BaseEstimator``): ``__init__`` stores, ``fit`` sets ``portfolio_``, ``scenarios_`` and
    ``result_`` (the LP bound in ``result_.lp_bound``), and ``clone(a).set_params(...)`` varies one parameter.
    """

    def __init__(
        self,
        objective: Literal["expected", "cvar"] = "expected",
        risk_lambda: float = 0.5,
        cvar_alpha: float = 0.1,
        n_scenarios: int = 500,
        seed: int = 0,
        mip_rel_gap: float = 1e-6,
        time_limit: float = 60.0,
        shadow_prices: bool = True,
        warm_start: bool = True,
    ) -> None:
        self.objective = objective
        self.risk_lambda = risk_lambda
        self.cvar_alpha = cvar_alpha
        self.n_scenarios = n_scenarios
        self.seed = seed
        self.mip_rel_gap = mip_rel_gap
        self.time_limit = time_limit
        self.shadow_prices = shadow_prices
        self.warm_start = warm_start  # start HiGHS from the value/cost greedy plan (when it is feasible)

    def _check_params(self) -> None:
        if self.objective not in ("expected", "cvar"):
            raise ConfigError(f"objective must be 'expected' or 'cvar', not '{self.objective}'")
        if self.risk_lambda < 0:
            raise ConfigError(f"lambda must be >= 0, got {self.risk_lambda}")
        if not 0 < self.cvar_alpha < 1:
            raise ConfigError(f"CVaR alpha must be in (0, 1), got {self.cvar_alpha}")
        if self.n_scenarios < 10:
            raise ConfigError(f"use at least 10 scenarios for CVaR, got {self.n_scenarios}")

    def fit(self, portfolio: Portfolio) -> PortfolioAllocator:
        """Solve the selection problem; the result lands in ``result_``."""
        self._check_params()
        self.portfolio_ = portfolio
        self.scenarios_ = sample_outcomes(portfolio, self.n_scenarios, self.seed) if self.objective == "cvar" else None
        self.result_ = self._solve(portfolio)
        return self

    def _solve(self, pf: Portfolio) -> AllocationResult:
        prob = _build(pf, self.objective, self.risk_lambda, self.cvar_alpha, self.scenarios_)
        x0 = _start_point(prob, pf, greedy_allocation(pf), self.scenarios_) if self.warm_start else None
        start = time.perf_counter()
        res = _solve_milp(prob, self.mip_rel_gap, self.time_limit, x0)
        seconds = time.perf_counter() - start
        if res.status == 2:
            iis = explain_infeasibility(pf, self.time_limit)
            labels = ", ".join(unit_label(pf, u) for u in iis or [])
            raise DataError(
                f"no plan satisfies all constraints; these conflict: {labels}; "
                "relax one (raise that capacity, drop a mandatory flag or a link)"
            )
        if res.x is None:
            raise ModelError(f"HiGHS found no plan within {self.time_limit:g} s ({res.message}); raise --time-limit")
        levels = np.round(res.x[: pf.n]).astype(int)
        used = pf.A @ levels if pf.rows else np.zeros(0)
        shadow, lp_bound = self._shadow_prices(prob) if self.shadow_prices else (np.full(len(pf.rows), math.nan), None)
        resources = []
        for k, row in enumerate(pf.rows):
            slack = row.capacity - float(used[k])
            resources.append(
                ResourceUse(
                    row.label,
                    float(used[k]),
                    row.capacity,
                    slack,
                    slack <= 1e-9 * max(1.0, row.capacity),
                    float(shadow[k]),
                )
            )
        expected = float(pf.expected_gain @ levels)
        cvar = None
        if self.scenarios_ is not None:
            cvar = cvar_of_loss(-(self.scenarios_ @ levels), self.cvar_alpha)
        value = expected - self.risk_lambda * cvar if cvar is not None else expected
        gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
        status = "optimal" if res.status == 0 else "time limit"
        return AllocationResult(
            objective=self.objective,
            levels=[int(v) for v in levels],
            chosen=[pf.names[i] for i in np.flatnonzero(levels)],
            objective_value=value,
            expected_gain=expected,
            cvar_loss=cvar,
            lp_bound=lp_bound,
            mip_gap=gap,
            status=status,
            seconds=seconds,
            resources=resources,
        )

    def _shadow_prices(self, prob: _Problem) -> tuple[np.ndarray, float | None]:
        """Duals of the capacity rows in the LP relaxation, as gain per extra unit (>= 0), and the relaxation's
        value (an upper bound on the plan's); NaN prices and no bound when the relaxation does not solve.

        The integer program itself has no duals; with the integers fixed every capacity price is 0,
        so the relaxation's prices are the informative ones (an upper bound on the marginal value).
        """
        lp = linprog(
            prob.c,
            A_ub=prob.A if prob.A.shape[0] else None,
            b_ub=prob.b if prob.A.shape[0] else None,
            bounds=list(zip(prob.lb, prob.ub, strict=True)),
            method="highs",
        )
        if lp.status != 0:
            return np.full(prob.n_capacity_rows, math.nan), None
        return -np.asarray(lp.ineqlin.marginals[: prob.n_capacity_rows], dtype=float) + 0.0, float(-lp.fun)

    def what_if(self, changes: tuple[float, ...] = (-0.2, -0.1, 0.1, 0.2)) -> list[WhatIf]:
        """Re-solve with each capacity scaled by ``1 + change``; report value change and plan changes. Each
        re-solve is this allocator cloned with every parameter kept (warm start, gap, seed: the same scenarios)
        but the shadow prices, which a what-if does not report."""
        pf, base = self.portfolio_, self.result_
        base_set = set(base.chosen)
        out: list[WhatIf] = []
        for k, row in enumerate(pf.rows):
            for change in changes:
                cap = row.capacity * (1.0 + change)
                alt = clone(self).set_params(shadow_prices=False)
                try:
                    r = alt.fit(pf.with_capacity(k, cap)).result_
                except DataError:
                    out.append(WhatIf(row.label, change, cap, None, None, [], [], "infeasible"))
                    continue
                chosen = set(r.chosen)
                out.append(
                    WhatIf(
                        row.label,
                        change,
                        cap,
                        r.objective_value,
                        r.objective_value - base.objective_value,
                        sorted(chosen - base_set),
                        sorted(base_set - chosen),
                        r.status,
                    )
                )
        return out


# ----------------------------------------------------------------------------------------------
# Baselines and oracles


def greedy_allocation(pf: Portfolio) -> np.ndarray:
    """Value/cost-ratio greedy: mandatory first, then one level at a time by gain per normalised cost."""
    A, b = pf.A, pf.b
    scale = np.where(b > 0, b, 1.0)
    cost = (A / scale[:, None]).sum(axis=0) if len(b) else np.zeros(pf.n)
    ratio = np.where(cost > 0, pf.expected_gain / np.where(cost > 0, cost, 1.0), np.inf)
    ratio = np.where(pf.expected_gain > 0, ratio, -np.inf)
    levels = np.zeros(pf.n, dtype=int)
    levels[pf.mandatory] = 1
    needs = {bb: [a for b2, a in pf.dependencies if b2 == bb] for bb in range(pf.n)}
    excl: dict[int, set[int]] = {i: set() for i in range(pf.n)}
    for a, bb in pf.exclusions:
        excl[a].add(bb)
        excl[bb].add(a)
    order = [i for i in np.argsort(-ratio, kind="stable") if ratio[i] > -np.inf]
    changed = True
    while changed:
        changed = False
        for i in order:
            if levels[i] >= pf.upper[i] or any(levels[a] == 0 for a in needs[i]):
                continue
            if any(levels[j] > 0 for j in excl[i]):
                continue
            trial = levels.copy()
            trial[i] += 1
            if len(b) == 0 or np.all(A @ trial <= b + 1e-9):
                levels = trial
                changed = True
    return levels


def brute_force(pf: Portfolio, max_projects: int = 24) -> tuple[float, np.ndarray]:
    """Exact optimum of the 0-1 expected-gain problem by enumerating all 2^n subsets (test oracle).

    Vectorised by doubling: after item i, ``value[idx]`` holds the sum over the set bits of idx.
    """
    n = pf.n
    if n > max_projects:
        raise ConfigError(f"brute force enumerates 2^n subsets; {n} projects is more than {max_projects}")
    if np.any(pf.upper > 1):
        raise ConfigError("brute force handles 0-1 selection only (max_level = 1)")
    value = np.zeros(1)
    used = [np.zeros(1) for _ in pf.rows]
    for i in range(n):
        value = np.concatenate([value, value + pf.expected_gain[i]])
        used = [np.concatenate([u, u + row.coef[i]]) for u, row in zip(used, pf.rows, strict=True)]
    idx = np.arange(2**n, dtype=np.int64)
    ok = np.ones(2**n, dtype=bool)
    for u, row in zip(used, pf.rows, strict=True):
        ok &= u <= row.capacity + 1e-9
    for bb, a in pf.dependencies:
        ok &= ~(((idx >> bb) & 1).astype(bool) & ~((idx >> a) & 1).astype(bool))
    for a, bb in pf.exclusions:
        ok &= ~(((idx >> a) & 1).astype(bool) & ((idx >> bb) & 1).astype(bool))
    for i in pf.mandatory:
        ok &= ((idx >> i) & 1).astype(bool)
    if not ok.any():
        raise DataError("no subset satisfies all constraints")
    best = int(np.flatnonzero(ok)[np.argmax(value[ok])])
    levels = np.array([(best >> i) & 1 for i in range(n)], dtype=int)
    return float(value[best]), levels
