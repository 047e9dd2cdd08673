"""`growthcurve report --serve`: a tiny Starlette app that rebuilds the page on every GET, so a reload shows
what the store holds now (a new run, fresh feedback) without restarting anything."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from growthcurve.errors import GrowthcurveError
from growthcurve.report.build import ReportInputs, build_report, render_html


def report_app(inputs: ReportInputs) -> Starlette:
    """``/`` the report, rebuilt per request; ``/health`` for a probe. A build error is a 500 JSON body."""
    lock = asyncio.Lock()  # matplotlib's pyplot state is global: build one page at a time

    async def page(_request: Request) -> Response:
        async with lock:
            try:
                html = await asyncio.to_thread(lambda: render_html(build_report(inputs)))
            except GrowthcurveError as exc:  # e.g. the store went away: say so, keep serving
                return JSONResponse({"error": {"code": "report_failed", "message": str(exc)}}, status_code=500)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/", page), Route("/health", health)])
