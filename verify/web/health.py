"""``/healthz``: whether the pages can serve, for load balancers and container probes.

Public (no session), and it says nothing about the evidence: only whether the catalog answers.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse

from .common import site

log = logging.getLogger("evidence.web")
NO_STORE = {"Cache-Control": "no-store"}


def healthz(request: Request) -> JSONResponse:
    try:
        with site(request).web.reading() as session:
            session.execute(text("select 1"))
    except SQLAlchemyError as exc:
        log.warning("health check: the catalog does not answer", extra={"error": str(exc)})
        return JSONResponse({"status": "unavailable"}, 503, headers=NO_STORE)
    return JSONResponse({"status": "ok"}, headers=NO_STORE)
