"""The assistant on the serving layer: a `Handler` for `growthcurve.serving.create_app` and POST /answer.

Every answer goes through the core's micro-batcher and is logged in the predictions table (label = the
intent, score = the calibrated confidence) with the run's model version; the conversation turn is logged
in ``assist_turns`` before the response, so a restart loses nothing. Thumbs and corrected intents come
back through the core's /feedback with the answer's ``request_id``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from growthcurve.apps.assist.pipeline import AssistRun, log_turn, new_session_id
from growthcurve.errors import DataError
from growthcurve.serving import InputError, ServingCore, get_core, require_api_key


class AnswerRequest(BaseModel):
    """One customer question, optionally in an existing conversation (``session_id``, a string)."""

    model_config = ConfigDict(extra="forbid")

    question: StrictStr
    session_id: StrictStr | None = Field(None, min_length=1, max_length=128)
    top_k: StrictInt | None = Field(None, ge=1, le=50)


class AssistHandler:
    """Serves one assist run. Its task is "text-classification" because what the core logs and what
    /feedback corrects is the intent label; the answer text and handoff ride along in the output."""

    task = "text-classification"

    def __init__(self, run: AssistRun, model_name: str | None = None) -> None:
        self.run = run
        self.model_name = model_name or run.name
        self.model_version = run.model_version
        self.meta = {**run.meta, "app": "assist"}
        self.labels = run.labels

    def validate(self, item: Any) -> tuple[str, int | None]:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise InputError("each input must be an object with a 'question' string")
        q = item["question"]
        if not q.strip():
            raise InputError("'question' is empty: send what the customer asked", 422, "empty_question")
        if len(q) > self.run.max_question_chars:
            raise InputError(
                f"'question' has {len(q)} characters, the limit is {self.run.max_question_chars}",
                413,
                "question_too_long",
            )
        return q, item.get("top_k")

    def predict_batch(self, inputs: list[tuple[str, int | None]]) -> list[dict[str, Any]]:
        _, cal, vecs, ood = self.run.scores([q for q, _ in inputs])
        return [
            self.run._result(c, v, k or self.run.top_k, None if ood is None else float(ood[i]))
            for i, ((_, k), c, v) in enumerate(zip(inputs, cal, vecs, strict=True))
        ]


def answer_router(store_url: str | None) -> APIRouter:
    """POST /answer: an answer or a handoff, logged as a conversation turn; rate it via /feedback."""
    from growthcurve.store import init_db

    router = APIRouter()
    state: dict[str, Any] = {}

    def engine() -> Any:
        if "engine" not in state:  # the core has migrated the store by the time a request arrives
            state["engine"] = init_db(store_url)
        return state["engine"]

    @router.post("/answer", dependencies=[Depends(require_api_key)], summary="Answer a question or hand over")
    async def answer(body: AnswerRequest, core: Annotated[ServingCore, Depends(get_core)]) -> dict[str, Any]:
        text, _ = core.check_text(body.question)
        session = body.session_id or new_session_id()
        # the turn goes into the same SQLite file through another connection: let the prediction's commit land
        # first, so the two writers never overlap and a feedback right after the answer always finds it
        out = await core.predict([{"question": text, "top_k": body.top_k}], session, [text], sync_log=True)
        result = out["predictions"][0]
        handler = (
            core.handlers[0]
            if core.experiment is None
            else next(h for h in core.handlers if h.model_version == out["model_version"])
        )
        assert isinstance(handler, AssistHandler)  # the assist app serves assistants only
        try:
            turn = await asyncio.to_thread(
                log_turn, engine(), session, "http", handler.run, text, result, out["request_id"]
            )
        except DataError as exc:
            raise InputError(str(exc), 503, "store_unavailable") from None
        return {**out, "session_id": session, "turn": turn}

    return router
