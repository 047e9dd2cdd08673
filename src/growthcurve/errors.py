"""User-facing errors: one actionable line, printed by the CLI without a traceback."""

from __future__ import annotations


class GrowthcurveError(Exception):
    """An error caused by the user's input or environment; the message says what to do."""

    exit_code = 2


class DataError(GrowthcurveError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(GrowthcurveError):
    """A configuration value is unknown, of the wrong type, or inconsistent."""


class ModelError(GrowthcurveError):
    """A model path or model option cannot be used."""


class DivergedError(ConfigError):
    """Training produced a non-finite loss (usually a learning rate far too high); a search fails the trial
    and goes on, a single run stops."""
