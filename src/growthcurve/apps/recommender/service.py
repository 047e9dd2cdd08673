"""The recommender on the serving layer: a `Handler` for `growthcurve.serving.create_app` and a /recommend route.

Every list served goes through the core's micro-batcher and is logged in the predictions table with the
run's model version (and variant, in an A/B test); clicks come back through the core's /feedback with the
list's ``request_id``, so two recommenders are compared with `growthcurve ab analyze` like two classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from growthcurve.apps.recommender.pipeline import RecommenderRun
from growthcurve.serving import InputError, ServingCore, get_core, require_api_key

MAX_K = 100


@dataclass(frozen=True)
class RecInput:
    """A validated request: whose list, from which history (catalogue indices), how long."""

    user: str | None
    history: tuple[int, ...]
    k: int
    popular: bool  # an unknown user answered with the most popular items


class RecommendRequest(BaseModel):
    """A user id (their history is in the run), or an explicit history of item ids (e.g. a new user)."""

    model_config = ConfigDict(extra="forbid")

    user: StrictStr | None = Field(None, min_length=1, max_length=128)
    history: list[StrictStr] | None = Field(None, min_length=1, max_length=1000)
    k: StrictInt = Field(10, ge=1, le=MAX_K)
    fallback: Literal["popular"] | None = None
    unit_id: StrictStr | None = Field(None, min_length=1, max_length=128)  # A/B unit; default: the user


class RecommenderHandler:
    """Serves one recommender run folder; ``validate`` checks ids cheaply, ``predict_batch`` ranks."""

    task = "recommendation"

    def __init__(self, run: RecommenderRun, model_name: str | None = None) -> None:
        self.run = run
        self.model_name = model_name or str(run.meta.get("name") or run.path.name)
        self.model_version = run.model_version
        self.meta = run.meta

    def validate(self, item: Any) -> RecInput:
        if not isinstance(item, dict):
            raise InputError("each input must be an object with 'user' and/or 'history'")
        user, history, k = item.get("user"), item.get("history"), item.get("k", 10)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InputError(f"'k' must be an integer in 1..{MAX_K}, got {k!r}")
        if history is not None:
            unknown = [i for i in history if i not in self.run.catalogue.index]
            if unknown:
                raise InputError(
                    f"unknown item id(s) {unknown[:5]} in 'history' (not in the run's catalogue)", 422, "unknown_item"
                )
            return RecInput(user, tuple(self.run.catalogue.index[i] for i in history), k, False)
        if user is None:
            raise InputError("send 'user' (a known user id) or 'history' (item ids, oldest first)")
        if user not in self.run.histories:
            if item.get("fallback") == "popular":
                return RecInput(user, (), k, True)
            raise InputError(
                f"unknown user {user!r}: send their 'history', or fallback='popular' for the most popular items",
                404,
                "unknown_user",
            )
        return RecInput(user, tuple(self.run.histories[user]), k, False)

    def predict_batch(self, inputs: list[RecInput]) -> list[dict[str, Any]]:
        ranked = [x for x in inputs if not x.popular]
        lists = (
            iter(self.run.top_for_histories([list(x.history) for x in ranked], max(x.k for x in ranked)))
            if ranked
            else iter(())
        )
        out = []
        for x in inputs:
            items = self.run.top(x.user or "", x.k, fallback="popular") if x.popular else next(lists)[: x.k]
            out.append(
                {
                    "items": items,
                    "fallback": "popular" if x.popular else None,
                    "label": items[0]["item"] if items else None,  # the predictions table's one-line summary
                    "score": items[0]["score"] if items else None,
                }
            )
        return out


def recommend_router() -> APIRouter:
    """POST /recommend: one list per request, logged with its model version; click it via /feedback."""
    router = APIRouter()

    @router.post("/recommend", dependencies=[Depends(require_api_key)], summary="Top-k items for a user")
    async def recommend(body: RecommendRequest, core: Annotated[ServingCore, Depends(get_core)]) -> dict[str, Any]:
        if body.user is None and body.history is None:
            raise InputError("send 'user' (a known user id) or 'history' (item ids, oldest first)")
        item = {"user": body.user, "history": body.history, "k": body.k, "fallback": body.fallback}
        logged = " ".join(body.history) if body.history is not None else str(body.user)
        unit = body.unit_id or body.user
        return await core.predict([item], unit, [logged[: core.settings.max_text_chars]])

    return router
