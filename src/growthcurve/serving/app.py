"""The FastAPI app: /predict (micro-batched), /feedback (acknowledged after commit), health, metrics, A/B.

`create_app(handlers, settings, store_url)` is the one entry point; the CLI (`growthcurve serve`) and the
applications call it. Everything that is not model-specific lives here: assignment of units to variants,
request limits, API keys, the store writer, Prometheus metrics and JSON error bodies.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    create_model,
    model_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from growthcurve.errors import ConfigError
from growthcurve.serving.assign import assign_variant, normalise_weights, unit_uniform, variant_names
from growthcurve.serving.batching import MicroBatcher
from growthcurve.serving.experiment import analysis_config
from growthcurve.serving.handlers import Handler, InputError
from growthcurve.serving.settings import ServeSettings
from growthcurve.serving.storage import FeedbackRejected, PredictionRecord, StoreBusy, StoreWriter, open_store
from growthcurve.store.experiments import Arm, register_experiment

__all__ = ["FeedbackRequest", "PredictRequest", "ServingCore", "create_app", "get_core", "require_api_key"]


# ---- request bodies ---------------------------------------------------------------------------------------
# Strict types: JSON null, numbers or nested lists are refused with 422, never turned into strings. The OpenAPI
# schema states every rule the service enforces, so a client (or a schema-driven fuzzer) can build valid requests.

_TEXT_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": r"\S"}  # not empty, not only blanks
Text = Annotated[str, StringConstraints(strict=True, min_length=1, pattern=r"\S"), WithJsonSchema(_TEXT_SCHEMA)]


def _whole_number(v: Any) -> Any:
    """JSON Schema's ``integer`` includes 2.0 (a number without a fraction); strings and booleans stay refused."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


Integer = Annotated[StrictInt, BeforeValidator(_whole_number)]


class PredictRequest(BaseModel):
    """One text or a list of texts; ``unit_id`` (user/session) is required when an experiment runs.

    `predict_request_model` gives each server its own subclass, whose schema also states its limits."""

    model_config = ConfigDict(extra="forbid")

    text: Text | Annotated[list[Text], Field(min_length=1)]
    top_k: Integer = Field(1, ge=1, le=1000)
    unit_id: StrictStr | None = Field(None, min_length=1, max_length=128)
    # per-word attributions of the predicted label in each answer (Integrated Gradients; torch backend)
    explain: StrictBool = False


def predict_request_model(settings: ServeSettings, experiment: str | None) -> type[PredictRequest]:
    """The /predict body of a server with ``settings``: its schema states the text length (when longer texts
    are refused, with 413) and the number of texts per request (413 beyond), and an A/B test requires
    ``unit_id``. The limits stay the runtime's own checks, which answer 413, not 422."""
    text_schema = dict(_TEXT_SCHEMA)
    if settings.long_text == "reject":
        text_schema["maxLength"] = settings.max_text_chars
    one = Annotated[str, StringConstraints(strict=True, min_length=1, pattern=r"\S"), WithJsonSchema(text_schema)]
    many_schema = {"type": "array", "items": text_schema, "minItems": 1, "maxItems": settings.max_items}
    many = Annotated[list[one], Field(min_length=1), WithJsonSchema(many_schema)]
    fields: dict[str, Any] = {"text": (one | many, ...)}
    if experiment is not None:
        fields["unit_id"] = (StrictStr, Field(min_length=1, max_length=128, description=f"A/B unit of '{experiment}'"))
    model: type[PredictRequest] = create_model("PredictRequest", __base__=PredictRequest, **fields)
    return model


_SIGNALS = {"thumbs": "boolean", "rating": "number", "label": "string", "click": "boolean"}


class FeedbackRequest(BaseModel):
    """A reaction to one prediction (its ``request_id``): at least one of thumbs, rating, label, click."""

    # the schema says it too: at least one signal present and not null
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [{"required": [k], "properties": {k: {"type": t}}} for k, t in _SIGNALS.items()]},
    )

    request_id: StrictStr = Field(min_length=1, max_length=64)
    thumbs: StrictBool | None = None  # true: thumbs up
    # CSAT 1-5 / NPS 0-10; the range inside the union, so the schema states it too
    rating: Annotated[StrictFloat, Field(ge=0, le=10, allow_inf_nan=False)] | None = None
    label: StrictStr | None = Field(None, min_length=1, max_length=256)  # the correct label, per the user
    click: StrictBool | None = None
    comment: StrictStr | None = Field(None, max_length=2000)
    model_version: StrictStr | None = Field(None, max_length=128)  # if sent, must match the prediction's

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.thumbs is None and self.rating is None and self.label is None and self.click is None:
            raise ValueError("send at least one of thumbs, rating, label or click")
        return self


# ---- errors -----------------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str  # stable, for programs: e.g. text_too_long, unit_id_required, unknown_request_id
    message: str  # for people: what to change


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the service: one error with a stable code and a message a person can act on."""

    error: ErrorDetail


class Readiness(BaseModel):
    ready: bool


_WHY = {
    400: "Content-Length is not a number",
    401: "no X-API-Key header (a server with API keys)",
    403: "the X-API-Key matches no key",
    404: "no prediction with this request_id",
    409: "the feedback's model_version differs from its prediction's, or that version is no longer served",
    413: "the body, a text or the number of texts is over the server's limit",
    422: "invalid body: a type, a range, a missing field (unit_id in an A/B test), an unknown label",
    503: "not ready yet, or the store is behind: retry",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error answers a route gives (all share `ErrorBody`)."""
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


# ---- metrics ----------------------------------------------------------------------------------------------


class _Metrics:
    """Prometheus metrics in a registry of the app's own, so several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "growthcurve_http_requests", "HTTP requests by route and status", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "growthcurve_http_request_duration_seconds",
            "Time from request to response",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.batch = Histogram(
            "growthcurve_batch_size",
            "Items per model micro-batch",
            ["model_version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.commit = Histogram(
            "growthcurve_store_commit_ops",
            "Store operations per commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.predictions = Counter(
            "growthcurve_predictions", "Predicted items by model version", ["model_version", "variant"], registry=r
        )
        self.feedback = Counter("growthcurve_feedback", "Stored feedback rows by kind", ["kind"], registry=r)
        self.store_errors = Counter("growthcurve_store_errors", "Prediction logs that failed to commit", registry=r)
        self.info = Gauge(
            "growthcurve_model_info",
            "Served models (value 1)",
            ["model_name", "model_version", "variant", "task", "backend", "experiment"],
            registry=r,
        )


# ---- the core ---------------------------------------------------------------------------------------------


class ServingCore:
    """Handlers + batchers + store writer + assignment: what routes (the built-in and apps' own) call."""

    def __init__(self, handlers: Sequence[Handler], settings: ServeSettings, store_url: str | None) -> None:
        if not handlers:
            raise ConfigError("serve needs at least one model")
        tasks = {h.task for h in handlers}
        if len(tasks) > 1:
            raise ConfigError(f"the served runs must share one task for an A/B test (got {', '.join(sorted(tasks))})")
        self.handlers = list(handlers)
        self.settings = settings
        self.store_url = store_url
        self.roles = variant_names(len(handlers))
        # an arm is named by the version it serves (intents@v1 vs intents@v2); its role (control, treatment)
        # stays a role. Handlers without a lineage, or two arms of one version, keep the role names.
        lineage = [getattr(h, "lineage", None) for h in handlers]
        named = all(lineage) and len(set(lineage)) == len(lineage)
        self.variants: list[str] = [str(x) for x in lineage] if named else list(self.roles)
        self.weights = normalise_weights(settings.weights, len(handlers))
        self.experiment = settings.experiment if len(handlers) > 1 else None
        if len(handlers) > 1 and self.experiment is None:
            raise ConfigError("two or more runs are an A/B test: name the experiment with --experiment NAME")
        self.metrics = _Metrics()
        self.executor: ThreadPoolExecutor | None = None
        self.batchers: list[MicroBatcher] = []
        self.writer: StoreWriter | None = None
        self.ready = False
        for h, v in zip(self.handlers, self.variants, strict=True):
            variant = v if self.experiment else ""
            info = self.metrics.info.labels(
                h.model_name, h.model_version, variant, h.task, settings.backend, self.experiment or ""
            )
            info.set(1)

    def arms(self) -> list[Arm]:
        """The experiment's arms as the store keeps them: variant (= version name), role, share, version."""
        out = []
        for h, v, role, w in zip(self.handlers, self.variants, self.roles, self.weights, strict=True):
            lin = getattr(h, "lineage", None)
            model, _, ver = (lin or "").partition("@v")
            out.append(
                Arm(
                    variant=v,
                    role=role if role == "control" else "treatment",
                    weight=w,
                    model=model or None,
                    version=int(ver) if ver.isdigit() else None,
                    fingerprint=getattr(h, "fingerprint", None) or h.model_version,
                    run=str(getattr(h, "run_dir", "") or "") or None,
                )
            )
        return out

    def register_experiment(self, engine: Any) -> None:
        """Record the experiment, its arms and its analysis in the store (a restart with the same arms is a
        no-op; other arms under the same name are a ConfigError)."""
        if self.experiment is None:
            return
        control = self.variants[0]
        config = analysis_config(control, dict(zip(self.variants, self.weights, strict=True)))
        register_experiment(engine, self.experiment, self.arms(), config, self.settings.salt)

    async def start(self) -> None:
        """Open (and migrate) the store, record the experiment, start the writer and one batcher per model."""
        engine = await asyncio.to_thread(open_store, self.store_url)
        await asyncio.to_thread(self.register_experiment, engine)
        self.writer = StoreWriter(engine, {h.model_version for h in self.handlers})
        self.writer.on_commit = self.metrics.commit.observe
        await self.writer.start([self.experiment] if self.experiment else [])
        # One inference thread for all models: on a small CPU two models computing at once only contend.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="growthcurve-infer")
        for h in self.handlers:
            hist = self.metrics.batch.labels(h.model_version)
            b = MicroBatcher(
                h.predict_batch, self.executor, self.settings.max_batch, self.settings.max_wait_ms, hist.observe
            )
            b.start()
            self.batchers.append(b)
        self.ready = True

    async def stop(self) -> None:
        """Stop taking work, flush the store, free the threads."""
        self.ready = False
        for b in self.batchers:
            await b.stop()
        self.batchers = []
        if self.writer is not None:
            await self.writer.stop()
            self.writer.engine.dispose()
            self.writer = None
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    def choose(self, unit_id: str | None) -> int:
        """The handler index for ``unit_id``: the salted-hash bucket in A/B mode, else the only model."""
        if self.experiment is None:
            return 0
        if unit_id is None:
            raise InputError(
                f"unit_id is required: this server runs the A/B experiment '{self.experiment}'", 422, "unit_id_required"
            )
        return assign_variant(unit_uniform(self.settings.salt, self.experiment, unit_id), self.weights)

    def check_text(self, text: str) -> tuple[str, bool]:
        """Apply the text length limit: reject with 413, or cut and flag, as configured."""
        limit = self.settings.max_text_chars
        if len(text) <= limit:
            return text, False
        if self.settings.long_text == "truncate":
            return text[:limit], True
        raise InputError(f"text has {len(text)} characters, the limit is {limit}", 413, "text_too_long")

    async def predict(
        self, items: list[Any], unit_id: str | None, texts: list[str] | None = None, sync_log: bool = False
    ) -> dict[str, Any]:
        """Validate, batch, predict and log ``items`` for one request; returns the response body.

        ``texts`` (optional) are what to store as ``input_text``; apps with non-text inputs leave it None.
        ``sync_log`` waits for the prediction's commit (as ``settings.sync_prediction_log`` does for every
        request): for routes that write rows of their own next to it.
        """
        t0 = time.perf_counter()
        if len(items) > self.settings.max_items:
            raise InputError(
                f"{len(items)} inputs in one request, the limit is {self.settings.max_items}", 413, "too_many_inputs"
            )
        idx = self.choose(unit_id)
        h = self.handlers[idx]
        inputs = [h.validate(x) for x in items]
        if self.writer is None or not self.batchers:
            raise InputError("the server is not ready yet", 503, "not_ready")
        outputs = await self.batchers[idx].submit(inputs)
        infer_ms = (time.perf_counter() - t0) * 1000.0
        rid = uuid.uuid4().hex
        ids = [rid] if len(items) == 1 else [f"{rid}-{i}" for i in range(len(items))]
        variant = self.variants[idx] if self.experiment else None
        log_texts = texts if (texts is not None and self.settings.log_text) else [None] * len(items)
        records = [
            PredictionRecord(
                request_id=i,
                model_name=h.model_name,
                model_version=h.model_version,
                experiment=self.experiment,
                variant=variant,
                unit_id=unit_id,
                input_text=t,
                label=o.get("label"),
                score=o.get("score"),
                output=o,
                latency_ms=round(infer_ms, 3),
            )
            for i, t, o in zip(ids, log_texts, outputs, strict=True)
        ]
        try:
            logged = self.writer.record_prediction(records)
        except StoreBusy as exc:
            raise InputError(str(exc), 503, "store_busy") from None
        if sync_log or self.settings.sync_prediction_log:
            await logged
        else:
            logged.add_done_callback(self._log_failed)
        self.metrics.predictions.labels(h.model_version, variant or "").inc(len(items))
        return {
            "request_id": rid,
            "model_name": h.model_name,
            "model_version": h.model_version,
            "task": h.task,
            "experiment": self.experiment,
            "variant": variant,
            "predictions": [{"request_id": i, **o} for i, o in zip(ids, outputs, strict=True)],
            "latency_ms": round((time.perf_counter() - t0) * 1000.0, 3),
        }

    def _log_failed(self, fut: asyncio.Future[Any]) -> None:
        """A write-behind prediction log that did not commit: counted, since no client waits for it."""
        if not fut.cancelled() and fut.exception() is not None:
            self.metrics.store_errors.inc()

    def _label_check(self, version: str, label: str | None) -> None:
        h = next((x for x in self.handlers if x.model_version == version), None)
        if h is None or label is None:
            return
        if h.task != "text-classification":
            raise FeedbackRejected(
                f"a corrected label applies to text-classification, this model is {h.task}", 422, "label_not_supported"
            )
        labels = getattr(h, "labels", None)
        if labels is not None and label not in labels:
            shown = ", ".join(list(labels)[:20]) + (" ..." if len(labels) > 20 else "")
            raise FeedbackRejected(f"label '{label}' is not one of the model's labels ({shown})", 422, "unknown_label")

    async def feedback(self, body: FeedbackRequest) -> dict[str, Any]:
        """Store one feedback request; returns after the commit that holds it."""
        if self.writer is None:
            raise InputError("the server is not ready yet", 503, "not_ready")
        kinds: list[tuple[str, float | None, str | None]] = []
        if body.thumbs is not None:
            kinds.append(("thumbs", 1.0 if body.thumbs else 0.0, None))
        if body.rating is not None:
            if not math.isfinite(float(body.rating)):
                raise InputError("rating must be a finite number")
            kinds.append(("rating", float(body.rating), None))
        if body.click is not None:
            kinds.append(("click", 1.0 if body.click else 0.0, None))
        if body.label is not None:
            kinds.append(("correct", None, body.label))
        try:
            res = await self.writer.record_feedback(
                body.request_id, kinds, body.comment, body.model_version, self._label_check
            )
        except StoreBusy as exc:
            raise InputError(str(exc), 503, "store_busy") from None
        for k, _, _ in kinds:
            self.metrics.feedback.labels(k).inc()
        return {"request_id": body.request_id, "stored": True, "kinds": [k for k, _, _ in kinds], **res}


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a
# thread hop per request that costs more than the check itself (seen in a py-spy profile under load).


async def get_core(request: Request) -> ServingCore:
    """FastAPI dependency: the app's `ServingCore` (for routes that applications add)."""
    core: ServingCore = request.app.state.core
    return core


async def require_api_key(request: Request) -> None:
    """FastAPI dependency: with API keys configured, ``X-API-Key`` must match one (constant-time compare)."""
    keys: list[str] = request.app.state.core.settings.api_keys
    if not keys:
        return
    sent = request.headers.get("x-api-key")
    if sent is None:
        raise InputError("missing X-API-Key header", 401, "missing_api_key")
    ok = False
    for k in keys:  # compare against every key, so timing does not tell which one was close
        ok |= hmac.compare_digest(sent.encode(), k.encode())
    if not ok:
        raise InputError("invalid API key", 403, "invalid_api_key")


def _declare_api_key(app: FastAPI) -> None:
    """State in the OpenAPI schema what `require_api_key` enforces on a server with API keys: the ``X-API-Key``
    header as a security scheme on every route that depends on it (apps' routes too), with its 401 and 403."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        error_ref = {"$ref": "#/components/schemas/ErrorBody"}
        for route in app.routes:
            if not isinstance(route, APIRoute) or not any(
                d.call is require_api_key for d in route.dependant.dependencies
            ):
                continue
            for method in route.methods or ():
                op = schema["paths"][route.path_format][method.lower()]
                op["security"] = [{"ApiKey": []}]
                for status in (401, 403):
                    op["responses"][str(status)] = {
                        "description": _WHY[status],
                        "content": {"application/json": {"schema": error_ref}},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---- ASGI middleware --------------------------------------------------------------------------------------

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
    Awaitable[None],
]


class _BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before anything parses them (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                await _error(400, "bad_content_length", "Content-Length is not a number")(scope, receive, send)
                return
            if n > self.limit:
                await self._too_large(scope, receive, send)
                return
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
            if not msg.get("more_body", False):
                break
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            message: dict[str, Any] = await receive()
            return message

        await self.app(scope, replay, send)

    async def _too_large(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _error(413, "body_too_large", f"request body over {self.limit} bytes")(scope, receive, send)


class _Observe:
    """Count requests by route and status and time them (unknown paths share one label: bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, routes: set[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(msg: dict[str, Any]) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope["path"] if scope["path"] in self.routes else "other"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)


# ---- the app ----------------------------------------------------------------------------------------------


def create_app(
    handlers: Sequence[Handler],
    settings: ServeSettings | None = None,
    store_url: str | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The service for ``handlers`` (one model, or several = an A/B test), logging to ``store_url``.

    ``routers`` are extra routes of an application, included as they are; inside them use
    ``Depends(get_core)`` for the core and ``Depends(require_api_key)`` to protect them.
    """
    settings = settings or ServeSettings()
    core = ServingCore(handlers, settings, store_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        await core.start()
        try:
            yield
        finally:
            await core.stop()

    app = FastAPI(
        title="growthcurve serve",
        description="Predictions from growthcurve run folders, with feedback into the store and model-version A/B.",
        version="1",
        lifespan=lifespan,
    )
    app.state.core = core

    @app.exception_handler(InputError)
    async def _input_error(_r: Request, exc: InputError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(FeedbackRejected)
    async def _rejected(_r: Request, exc: FeedbackRejected) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if (
            len(errors) == 1
            and errors[0].get("type") == "missing"
            and tuple(errors[0].get("loc", ()))
            == (
                "body",
                "unit_id",
            )
        ):
            message = f"unit_id is required: this server runs the A/B experiment '{core.experiment}'"
            return _error(422, "unit_id_required", message)
        return _error(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        # keep the exception's headers: a 405 carries the Allow header RFC 9110 requires
        response = _error(exc.status_code, "http_error", str(exc.detail))
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    @app.exception_handler(Exception)
    async def _internal(_r: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    auth = [Depends(require_api_key)]

    async def predict(body: PredictRequest) -> dict[str, Any]:
        texts = [body.text] if isinstance(body.text, str) else list(body.text)
        checked = [core.check_text(t) for t in texts]
        items = [{"text": t, "top_k": body.top_k, **({"explain": True} if body.explain else {})} for t, _ in checked]
        out = await core.predict(items, body.unit_id, [t for t, _ in checked])
        for p, (_, cut) in zip(out["predictions"], checked, strict=True):
            p["truncated"] = cut
        return out

    # this server's own body (its limits and, in an A/B test, the required unit_id): FastAPI reads the route's
    # annotations when the route is added, so they are set first
    predict.__annotations__["body"] = predict_request_model(settings, core.experiment)
    app.post(
        "/predict",
        dependencies=auth,
        summary="Predict one text or a list of texts",
        responses=_errors(400, 413, 422, 503),
    )(predict)

    @app.post(
        "/feedback",
        dependencies=auth,
        summary="Feedback on one prediction, stored before the answer",
        responses=_errors(400, 404, 409, 413, 422, 503),
    )
    async def post_feedback(body: FeedbackRequest) -> dict[str, Any]:
        return await core.feedback(body)

    @app.get("/health", summary="The process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="Models loaded and the store open",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "not ready: loading, or the store is closed"}},
    )
    async def ready() -> JSONResponse:
        ok = core.ready and core.writer is not None and core.writer.running and all(b.running for b in core.batchers)
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/models", summary="The served models (and variants in an A/B test)")
    async def models() -> dict[str, Any]:
        return {
            "experiment": core.experiment,
            "models": [
                {
                    "variant": v if core.experiment else None,
                    "weight": w,
                    "model_name": h.model_name,
                    "model_version": h.model_version,
                    "task": h.task,
                    "labels": len(getattr(h, "labels", []) or []),
                }
                for h, v, w in zip(core.handlers, core.variants, core.weights, strict=True)
            ],
        }

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(core.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for r in routers:
        app.include_router(r)
    if settings.api_keys:
        _declare_api_key(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    paths = {getattr(r, "path", "") for r in app.routes}
    app.add_middleware(_Observe, metrics=core.metrics, routes=paths)
    return app
