"""Model-version A/B: sticky variant assignment by a salted hash, so no assignment table is needed.

A unit (user or session id) hashes to a number uniform in [0, 1), which falls into one bucket of the
cumulative weights. The same (salt, experiment, unit) always lands in the same bucket, on every server
process and after every restart; a new salt or experiment name reshuffles everyone. These are pure
functions so the distribution can be tested over many ids without a server.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from growthcurve.errors import ConfigError

__all__ = ["assign_variant", "normalise_weights", "parse_weights", "unit_uniform", "variant_names"]


def unit_uniform(salt: str, experiment: str, unit_id: str) -> float:
    """A number in [0, 1) from ``sha256(salt:experiment:unit_id)``: its first 8 bytes over 2**64."""
    digest = hashlib.sha256(f"{salt}:{experiment}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def normalise_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Weights scaled to sum 1 (equal when None); a wrong count, a negative or a zero total is a ConfigError."""
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ConfigError(f"--weights has {len(weights)} values but {n} runs are served: give one weight per run")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ConfigError(f"--weights must be finite and >= 0 (got {list(weights)})")
    total = float(sum(weights))
    if total <= 0:
        raise ConfigError("--weights sum to 0: at least one run needs a positive weight")
    return [w / total for w in weights]


def parse_weights(text: str | None, n: int) -> list[float]:
    """``"50,50"`` → ``[0.5, 0.5]``; a value that is not a number is a ConfigError naming it."""
    if text is None:
        return normalise_weights(None, n)
    values: list[float] = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise ConfigError(f"--weights '{text}': '{part}' is not a number (example: --weights 50,50)") from None
    return normalise_weights(values, n)


def assign_variant(u: float, weights: Sequence[float]) -> int:
    """Index of the bucket of the cumulative (normalised) ``weights`` that ``u`` in [0, 1) falls into."""
    acc = 0.0
    last = 0
    for i, w in enumerate(weights):
        if w <= 0:
            continue
        acc += w
        last = i
        if u < acc:
            return i
    return last  # float rounding left acc a hair under 1: the last positive bucket takes the remainder


def variant_names(n: int) -> list[str]:
    """Arm names: ``control`` for the first run (what `ab analyze` treats as control), then treatments."""
    if n == 1:
        return ["control"]
    if n == 2:
        return ["control", "treatment"]
    return ["control", *(f"treatment{i}" for i in range(1, n))]
