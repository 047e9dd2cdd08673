"""Range checks for numeric CLI options, reported as the framework's usage error (exit 2).

typer's ``min=``/``max=`` cover closed integer ranges only (no open bounds, and NaN passes a float range),
so float options use :func:`in_range` as their ``callback``: one ``Invalid value for '--alpha': …`` line.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import typer


def interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    """Human form of a range: '(0, 1)', '>= 0', '> 0'."""
    if lo is not None and hi is not None:
        return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "finite"


def in_range(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[float | None], float | None]:
    """A typer callback that accepts a finite value inside the range (and None for optional options)."""
    where = interval(lo, hi, lo_open, hi_open)

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        bad = not math.isfinite(value)
        bad = bad or (lo is not None and (value <= lo if lo_open else value < lo))
        bad = bad or (hi is not None and (value >= hi if hi_open else value > hi))
        if bad:
            shown = "a finite number" if where == "finite" else f"in {where}" if "," in where else where
            raise typer.BadParameter(f"must be {shown}, got {value:g}")
        return value

    return check


def probability() -> Callable[[float | None], float | None]:
    """The callback for a significance level, power or share: strictly between 0 and 1."""
    return in_range(0.0, 1.0, lo_open=True, hi_open=True)
