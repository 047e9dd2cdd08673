"""Project portfolios: the YAML/CSV schema, validation, and the compiled arrays the solvers use.

A project has resource needs (any resource names; a number, or one number per quarter), an expected
gain with a probability of success or a gain distribution, dependencies (B needs A), exclusions,
a mandatory flag and an optional number of funding levels (integer selection).
"""

from __future__ import annotations

import difflib
import graphlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from growthcurve.config import StrictModel, build_config
from growthcurve.data.readers import line_of, read_table
from growthcurve.errors import ConfigError, DataError

Need = float | dict[str, float]


class ProjectSpec(StrictModel):
    """One candidate project as the user writes it."""

    name: str = Field(min_length=1)
    gain: float  # mean gain if it succeeds (the mode for a triangular distribution)
    p_success: float = Field(1.0, ge=0.0, le=1.0)
    gain_dist: Literal["fixed", "normal", "lognormal", "triangular"] = "fixed"
    gain_sd: float | None = Field(None, ge=0.0)
    gain_low: float | None = None
    gain_high: float | None = None
    needs: dict[str, Need] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)
    mandatory: bool = False
    max_level: int = Field(1, ge=1)  # >1: fund at 0..max_level levels, gain and needs scale linearly

    @model_validator(mode="after")
    def _check_dist(self) -> ProjectSpec:
        if self.gain_dist in ("normal", "lognormal") and self.gain_sd is None:
            raise ValueError(f"project '{self.name}': gain_dist={self.gain_dist} needs gain_sd")
        if self.gain_dist == "lognormal" and self.gain <= 0:
            raise ValueError(f"project '{self.name}': a lognormal gain needs gain > 0")
        if self.gain_dist == "triangular":
            if self.gain_low is None or self.gain_high is None:
                raise ValueError(f"project '{self.name}': gain_dist=triangular needs gain_low and gain_high")
            if not self.gain_low <= self.gain <= self.gain_high or self.gain_low == self.gain_high:
                raise ValueError(f"project '{self.name}': triangular needs gain_low <= gain (the mode) <= gain_high")
        for res, need in self.needs.items():
            values = need.values() if isinstance(need, dict) else [need]
            if any(v < 0 or not math.isfinite(v) for v in values):
                raise ValueError(f"project '{self.name}': need for '{res}' must be a finite number >= 0")
        return self

    @property
    def mean_gain(self) -> float:
        """Expected gain of one level given success (the triangular mean is (low+mode+high)/3)."""
        if self.gain_dist == "triangular":
            return (float(self.gain_low) + self.gain + float(self.gain_high)) / 3.0  # type: ignore[arg-type]
        return self.gain

    @property
    def expected_gain(self) -> float:
        """Expected gain of one level: probability of success times the mean gain."""
        return self.p_success * self.mean_gain


class PortfolioConfig(StrictModel):
    """A portfolio file: projects, capacities (a number or one per quarter) and the quarter order."""

    projects: list[ProjectSpec] = Field(min_length=1)
    capacities: dict[str, Need] = Field(default_factory=dict)
    quarters: list[str] | None = None


@dataclass
class CapacityRow:
    """One linear capacity constraint: ``coef @ levels <= capacity`` for a resource (and quarter)."""

    label: str  # "people" or "people@Q1"
    resource: str
    quarter: str | None
    coef: np.ndarray
    capacity: float


@dataclass
class Portfolio:
    """The compiled problem: arrays indexed by project, constraint rows, and the original specs."""

    specs: list[ProjectSpec]
    rows: list[CapacityRow]
    dependencies: list[tuple[int, int]]  # (b, a): b needs a
    exclusions: list[tuple[int, int]]
    mandatory: list[int]
    names: list[str] = field(init=False)
    expected_gain: np.ndarray = field(init=False)
    upper: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.names = [s.name for s in self.specs]
        self.expected_gain = np.array([s.expected_gain for s in self.specs], dtype=float)
        self.upper = np.array([s.max_level for s in self.specs], dtype=int)

    @property
    def n(self) -> int:
        """Number of projects."""
        return len(self.specs)

    @property
    def A(self) -> np.ndarray:
        """Capacity matrix, one row per capacity constraint (the usual name of a constraint matrix)."""
        if not self.rows:
            return np.zeros((0, self.n))
        return np.vstack([r.coef for r in self.rows])

    @property
    def b(self) -> np.ndarray:
        """Capacity vector."""
        return np.array([r.capacity for r in self.rows], dtype=float)

    def with_capacity(self, row: int, capacity: float) -> Portfolio:
        """A copy with one capacity row changed (what-if analysis)."""
        rows = [
            CapacityRow(r.label, r.resource, r.quarter, r.coef, capacity if i == row else r.capacity)
            for i, r in enumerate(self.rows)
        ]
        return Portfolio(self.specs, rows, self.dependencies, self.exclusions, self.mandatory)


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def find_cycle(specs: list[ProjectSpec]) -> list[str] | None:
    """The first dependency cycle as a list of names (first name repeated at the end), or None."""
    sorter = graphlib.TopologicalSorter({s.name: set(s.depends_on) for s in specs})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def _quarter_order(cfg: PortfolioConfig) -> list[str]:
    if cfg.quarters:
        return list(cfg.quarters)
    seen: list[str] = []
    for cap in cfg.capacities.values():
        if isinstance(cap, dict):
            seen.extend(q for q in cap if q not in seen)
    return seen


def compile_portfolio(cfg: PortfolioConfig, capacities: dict[str, Need] | None = None) -> Portfolio:
    """Validate cross-references and build the constraint rows; ``capacities`` override the file's."""
    specs = cfg.projects
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"project names must be unique; repeated: {', '.join(dupes)}")
    index = {n: i for i, n in enumerate(names)}
    for s in specs:
        for ref in [*s.depends_on, *s.excludes]:
            if ref not in index:
                raise DataError(f"project '{s.name}' refers to unknown project '{ref}'{_did_you_mean(ref, names)}")
        if s.name in s.depends_on or s.name in s.excludes:
            raise DataError(f"project '{s.name}' cannot depend on or exclude itself")
    cycle = find_cycle(specs)
    if cycle:
        raise DataError(f"dependencies form a cycle: {' -> '.join(reversed(cycle))}; remove one of these links")

    caps: dict[str, Need] = {**cfg.capacities, **(capacities or {})}
    for res, cap in caps.items():
        values = cap.values() if isinstance(cap, dict) else [cap]
        if any(v < 0 or not math.isfinite(v) for v in values):
            raise ConfigError(f"capacity for '{res}' must be a finite number >= 0")
    needed = sorted({r for s in specs for r in s.needs})
    missing = [r for r in needed if r not in caps]
    if missing:
        raise ConfigError(
            f"projects need resource '{missing[0]}' but no capacity is given; add --capacity {missing[0]}=N "
            f"or a 'capacities' entry (capacities given: {', '.join(caps) or 'none'})"
        )
    quarters = _quarter_order(cfg)
    rows: list[CapacityRow] = []
    for res, cap in caps.items():
        if isinstance(cap, dict):
            for q, qcap in cap.items():
                coef = np.zeros(len(specs))
                for i, s in enumerate(specs):
                    need = s.needs.get(res, 0.0)
                    coef[i] = need.get(q, 0.0) if isinstance(need, dict) else need
                rows.append(CapacityRow(f"{res}@{q}", res, q, coef, float(qcap)))
            for s in specs:
                wanted = s.needs.get(res)
                if isinstance(wanted, dict):
                    extra = [q for q in wanted if q not in cap]
                    if extra:
                        raise ConfigError(
                            f"project '{s.name}' needs '{res}' in quarter '{extra[0]}' but capacity '{res}' "
                            f"has no such quarter (quarters: {', '.join(cap)})"
                        )
        else:
            coef = np.zeros(len(specs))
            for i, s in enumerate(specs):
                need = s.needs.get(res, 0.0)
                coef[i] = sum(need.values()) if isinstance(need, dict) else need
            rows.append(CapacityRow(res, res, None, coef, float(cap)))
    order = {q: k for k, q in enumerate(quarters)}
    rows.sort(key=lambda r: (r.resource, order.get(r.quarter, -1) if r.quarter else -1))
    deps = [(index[s.name], index[a]) for s in specs for a in s.depends_on]
    excl = sorted({tuple(sorted((index[s.name], index[b]))) for s in specs for b in s.excludes})
    mandatory = [i for i, s in enumerate(specs) if s.mandatory]
    return Portfolio(list(specs), rows, deps, [(a, b) for a, b in excl], mandatory)


# ----------------------------------------------------------------------------------------------
# Reading files

_CSV_SCALARS = {
    "name",
    "gain",
    "p_success",
    "gain_dist",
    "gain_sd",
    "gain_low",
    "gain_high",
    "mandatory",
    "max_level",
}
_CSV_LISTS = {"depends_on", "excludes"}
_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"0", "false", "no", "n", ""}


def _read_projects_csv(path: Path) -> list[dict[str, object]]:
    """Rows of a projects CSV as ProjectSpec dicts; ``need_<resource>[@<quarter>]`` columns are needs."""
    if path.suffix.lower() != ".csv":
        raise DataError(f"projects file '{path}' must be .csv, .yaml or .yml")
    table = read_table(path)  # the shared reader: same messages as `finetune` for bad bytes, quotes, blanks
    header = [str(h) for h in table.columns]
    if "name" not in header or "gain" not in header:
        raise DataError(f"{path}: a projects CSV needs at least the columns 'name' and 'gain'")
    for h in header:
        if h not in _CSV_SCALARS | _CSV_LISTS and not h.startswith("need_"):
            allowed = sorted(_CSV_SCALARS | _CSV_LISTS) + ["need_<resource>[@<quarter>]"]
            raise DataError(
                f"{path}: unknown column '{h}'{_did_you_mean(h, sorted(_CSV_SCALARS | _CSV_LISTS))}; "
                f"allowed: {', '.join(allowed)}"
            )
    rows: list[dict[str, object]] = []
    for pos, raw in enumerate(table.to_dict(orient="records")):
        lineno = line_of(table, pos)
        row = {str(k): ("" if v is None else str(v)).strip() for k, v in raw.items()}
        spec: dict[str, object] = {"needs": {}}
        for key, value in row.items():
            if key.startswith("need_"):
                if value == "":
                    continue
                res, _, quarter = key[len("need_") :].partition("@")
                num = _number(value, path, lineno, key)
                needs = spec["needs"]
                assert isinstance(needs, dict)
                if quarter:
                    needs.setdefault(res, {})[quarter] = num
                else:
                    needs[res] = num
            elif key in _CSV_LISTS:
                spec[key] = [p.strip() for p in value.replace("|", ";").split(";") if p.strip()]
            elif key == "mandatory":
                if value.lower() not in _TRUE | _FALSE:
                    raise DataError(f"{path} line {lineno}: mandatory must be true/false, got '{value}'")
                spec[key] = value.lower() in _TRUE
            elif key in ("name", "gain_dist"):
                if value:
                    spec[key] = value
            elif value != "":
                spec[key] = _number(value, path, lineno, key)
        rows.append(spec)
    if not rows:
        raise DataError(f"{path}: no projects (the CSV has only a header)")
    return rows


def _number(value: str, path: Path, lineno: int, column: str) -> float:
    try:
        num = float(value)
    except ValueError:
        raise DataError(f"{path} line {lineno}: column '{column}' must be a number, got '{value}'") from None
    if not math.isfinite(num):
        raise DataError(f"{path} line {lineno}: column '{column}' must be finite, got '{value}'")
    return num


def parse_capacities(items: list[str]) -> dict[str, Need]:
    """Parse ``--capacity people=10`` / ``--capacity gpu@Q1=300`` options into a capacities dict."""
    out: dict[str, Need] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--capacity '{item}' is not RESOURCE=N or RESOURCE@QUARTER=N (e.g. people=10)")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"--capacity '{item}': '{raw}' is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"--capacity '{item}': a capacity must be a finite number >= 0")
        res, _, quarter = key.strip().partition("@")
        if quarter:
            existing = out.get(res)
            if existing is not None and not isinstance(existing, dict):
                raise ConfigError(f"--capacity for '{res}' is given both as a total and per quarter")
            out.setdefault(res, {})[quarter] = value  # type: ignore[index]
        else:
            out[res] = value
    return out


def load_portfolio_config(path: str | Path, overrides: list[str] | None = None) -> PortfolioConfig:
    """Read a portfolio from YAML (projects + capacities) or a projects CSV (capacities from options)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"projects file '{p}' does not exist")
    if p.suffix.lower() == ".csv":
        raw = _read_projects_csv(p)
        try:
            return PortfolioConfig.model_validate({"projects": raw})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = [str(x) for x in err["loc"]]
            where = f"line {int(loc[1]) + 2} " if len(loc) > 1 and loc[1].isdigit() else ""
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise DataError(f"{p} {where}column '{loc[-1]}': {msg}") from None
    if p.suffix.lower() not in (".yaml", ".yml"):
        raise DataError(f"projects file '{p}' must be .csv, .yaml or .yml")
    return build_config(PortfolioConfig, p, overrides)


def load_portfolio(
    path: str | Path, capacities: list[str] | None = None, overrides: list[str] | None = None
) -> Portfolio:
    """Read, validate and compile a portfolio file; ``capacities`` are ``RESOURCE[@Q]=N`` strings."""
    return compile_portfolio(load_portfolio_config(path, overrides), parse_capacities(capacities or []))
