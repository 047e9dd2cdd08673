"""`growthcurve review serve`: the reviewers' page. FastAPI, HTML rendered on the server by Jinja2 (autoescape:
every text is user input), a little plain JavaScript for the keys; no front-end build step.

One item at a time with the model's top labels: 1-9 answer with a shown label, ``/`` searches every label,
Enter accepts the highlighted one, ``x`` rejects (not in scope), ``u`` undoes, ``s`` skips. Login by token
(a cookie, HttpOnly, SameSite=Strict); every POST carries a CSRF token. A refused answer is a 4xx JSON (or
HTML) message and leaves the queue unchanged.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from growthcurve.review import queue as rq
from growthcurve.review.auth import csrf_for, csrf_ok, reviewer_of

COOKIE = "gc_review"
LOGIN_CSRF = "gc_login_csrf"
CLAIM_SECONDS = 300  # an item open on someone's page is not handed to another reviewer for this long

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


class AnswerBody(BaseModel):
    """One answer from the page (strict types: nothing is coerced)."""

    model_config = ConfigDict(extra="forbid")

    item_id: StrictInt
    action: StrictStr = Field(max_length=16)
    label: StrictStr | None = Field(None, min_length=1, max_length=256)
    new_label: StrictBool = False
    stream: StrictStr | None = Field(None, max_length=16)
    seconds: StrictFloat | StrictInt | None = Field(None, ge=0, le=86_400, allow_inf_nan=False)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_review_app(engine: sa.Engine, queue: str) -> FastAPI:
    """The page for ``queue`` on ``engine`` (the queue must exist)."""
    q = rq.load_queue(engine, queue)
    claims: dict[int, tuple[str, float]] = {}
    lock = asyncio.Lock()  # one store transaction at a time: SQLite has one writer anyway
    app = FastAPI(title=f"growthcurve review: {queue}", docs_url=None, redoc_url=None, openapi_url=None)

    def html(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        body = _env.get_template(name).render(queue=queue, **ctx)
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @app.exception_handler(rq.ReviewError)
    async def _review_error(_r: Request, exc: rq.ReviewError) -> JSONResponse:
        return _error(exc.status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        msg = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()[:5]
        )
        return _error(422, "invalid_request", msg)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(_r: Request, exc: Exception) -> JSONResponse:  # a bug: still JSON, never a traceback
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    def who(request: Request) -> tuple[str, str]:
        token = request.cookies.get(COOKIE)
        return reviewer_of(engine, token, queue), str(token)

    def login_page(message: str | None, status: int) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        resp = html("login.html", status, message=message, csrf=nonce)
        resp.set_cookie(LOGIN_CSRF, nonce, httponly=True, samesite="strict")
        return resp

    @app.get("/login", response_class=HTMLResponse)
    async def login_form() -> HTMLResponse:
        return login_page(None, 200)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        token, sent = str(form.get("token") or "").strip(), form.get("csrf")
        nonce = request.cookies.get(LOGIN_CSRF)
        if not nonce or not isinstance(sent, str) or not secrets.compare_digest(nonce, sent):
            return login_page("the login form expired: try again", 403)
        try:
            reviewer_of(engine, token, queue)
        except rq.ReviewError as exc:
            return login_page(str(exc), exc.status)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        resp.delete_cookie(LOGIN_CSRF)
        return resp

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        _, token = who(request)
        if not csrf_ok(token, request.headers.get("x-csrf-token")):
            raise rq.ReviewError("missing or wrong CSRF token: reload the page", 403, "bad_csrf")
        resp = JSONResponse({"logged_out": True})
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request, item: int | None = None) -> Response:
        try:
            reviewer, token = who(request)
        except rq.ReviewError as exc:
            return login_page(None if exc.code == "missing_token" else str(exc), 401 if exc.status == 401 else 403)
        now = time.time()
        async with lock:
            snap = await asyncio.to_thread(rq.snapshot, engine, queue)
            chosen = None
            if item is not None and item in snap.items:  # after an undo: show the item again
                it = snap.items[item]
                if not it.done and all(a.reviewer != reviewer for a in it.answers):
                    st = next((s for s, slots in snap.streams.items() if any(i == item for i, _ in slots)), "upload")
                    chosen = (it, st)
            if chosen is None:
                avoid = {i for i, (who_, until) in claims.items() if who_ != reviewer and until > now}
                chosen = rq.next_item(snap, reviewer, avoid)
            if chosen is not None:
                claims[chosen[0].id] = (reviewer, now + CLAIM_SECONDS)
            prog = await asyncio.to_thread(rq.progress, engine, snap, reviewer)
        view = rq.item_view(chosen[0], chosen[1], q.labels) if chosen else None
        state = {
            "csrf": csrf_for(token),
            "item": view,
            "labels": q.labels,
            "allow_new_labels": q.allow_new_labels,
        }
        return html("item.html", reviewer=reviewer, item=view, progress=prog, state=state)

    @app.post("/api/answer")
    async def answer(request: Request, body: AnswerBody) -> dict[str, Any]:
        reviewer, token = who(request)
        if not csrf_ok(token, request.headers.get("x-csrf-token")):
            raise rq.ReviewError("missing or wrong CSRF token: reload the page", 403, "bad_csrf")
        async with lock:
            out = await asyncio.to_thread(
                rq.record_answer,
                engine,
                queue,
                body.item_id,
                reviewer,
                body.action,
                body.label,
                new_label=body.new_label,
                seconds=None if body.seconds is None else float(body.seconds),
                stream=body.stream,
            )
        claims.pop(body.item_id, None)
        return {"stored": True, "reviewer": reviewer, **out}

    @app.post("/api/undo")
    async def undo(request: Request) -> dict[str, Any]:
        reviewer, token = who(request)
        if not csrf_ok(token, request.headers.get("x-csrf-token")):
            raise rq.ReviewError("missing or wrong CSRF token: reload the page", 403, "bad_csrf")
        async with lock:
            item_id = await asyncio.to_thread(rq.undo_last, engine, queue, reviewer)
        if item_id is None:
            raise rq.ReviewError("nothing to undo: you have no answer in this queue yet", 409, "nothing_to_undo")
        return {"undone": True, "item_id": item_id}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


__all__ = ["AnswerBody", "create_review_app"]
