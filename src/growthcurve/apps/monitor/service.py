"""The monitor on the serving layer: a `Handler` answering /predict with sentiment + topic, and GET /alerts.

/predict goes through the core's micro-batcher and prediction log like any served run (feedback on its
``request_id`` through /feedback); /alerts reads the newest surges from the store the monitor writes.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from growthcurve.apps.monitor.model import RunClassifier
from growthcurve.apps.monitor.pipeline import list_alerts
from growthcurve.serving import InputError, model_version, require_api_key


class MonitorHandler:
    """Serves a monitor folder: per text, the sentiment label/score, whether it is negative, and its topic."""

    task = "text-classification"

    def __init__(self, classifier: RunClassifier, model_name: str) -> None:
        self.classifier = classifier
        self.model_name = model_name
        version = model_version(classifier.sentiment.run.path)  # the run's model/ folder
        if classifier.topic is not None:  # both weights define the answer
            version = f"{version[:6]}{model_version(classifier.topic.run.path)[:6]}"
        self.model_version = version
        self.meta = {**classifier.sentiment.run.meta, "monitor": classifier.meta}

    def validate(self, item: Any) -> str:
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise InputError("each input must be a string or an object with a 'text' string")
        if not text.strip():
            raise InputError("'text' is empty (or only whitespace): send the text to classify")
        return text

    def predict_batch(self, inputs: list[str]) -> list[dict[str, Any]]:
        return self.classifier.predict(inputs)


def alerts_router(engine: sa.Engine) -> APIRouter:
    """GET /alerts: the newest alerts of the store (``monitor``, ``topic``, ``limit`` filters)."""
    router = APIRouter()

    @router.get("/alerts", dependencies=[Depends(require_api_key)], summary="Newest negative-surge alerts")
    async def alerts(
        monitor: Annotated[str | None, Query(max_length=128)] = None,
        topic: Annotated[str | None, Query(max_length=256)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        rows = list_alerts(engine, monitor, topic, limit)
        return {"alerts": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]}

    return router
