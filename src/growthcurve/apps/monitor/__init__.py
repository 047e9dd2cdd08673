"""Financial sentiment monitor: topic + sentiment over a stream, windowed counts, surge alerts that are right.

Public API: `fit_monitor`, `RunClassifier`, `StreamMonitor`, `RunSummary`, `write_outputs`,
`list_alerts`, `list_windows`, `load_state`, `DetectorSettings`, `SurgeDetector`, `surge_pvalue`,
`post_alert`, and the synthetic generator (`growthcurve.apps.monitor.synthetic`).
"""

from growthcurve.apps.monitor.detect import DetectorSettings, SurgeDetector, adjust, surge_pvalue
from growthcurve.apps.monitor.model import RunClassifier, fit_monitor, pick_negative
from growthcurve.apps.monitor.pipeline import (
    RunSummary,
    StreamMonitor,
    list_alerts,
    list_windows,
    load_state,
    write_outputs,
)
from growthcurve.apps.monitor.webhook import post_alert

__all__ = [
    "DetectorSettings",
    "RunClassifier",
    "RunSummary",
    "StreamMonitor",
    "SurgeDetector",
    "adjust",
    "fit_monitor",
    "list_alerts",
    "list_windows",
    "load_state",
    "pick_negative",
    "post_alert",
    "surge_pvalue",
    "write_outputs",
]
