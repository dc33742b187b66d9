"""The status poll, ``GET /api/v1/jobs/{job_id}``: every client's hot loop.

Its answer is built in one place (``status_answer``), for the route in
app/api/routes/jobs.py and for ``StatusPollFastPath``, an ASGI middleware that answers
the common case — a known owner (keys off, or a key verified in the last seconds) and a
job that exists — without FastAPI's routing, dependency solving and exception wrappers:
they were about half of a poll's server CPU (py-spy, issue 16). Anything else (a key not
in the cache, an unknown id, an over-long ``If-None-Match``, a database error) goes on
to the route unchanged, which answers it as before (401, 404, 422, 503).
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic_core import to_json
from starlette._utils import get_route_path
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.db.models import Job
from app.db.repositories import jobs as repo
from app.jobs.status import ACTIVE
from app.security.auth import cached_owner
from app.services import jobs as service
from app.settings import Settings

PREFIX = "/api/v1/jobs/"
MAX_IF_NONE_MATCH = 1024  # the route's Header(max_length=...): longer is its 422


async def read_status(request: Request, owner: str, job_id: str) -> SimpleNamespace | None:
    """The poll's one read: a primary-key lookup outside any transaction
    (repo.status_row). On SQLite (WAL: a reader never waits for a writer) it is a
    library call of tens of µs, done on the loop: a trip through the thread pool costs
    more, and 40 threads contending for the GIL far more. PostgreSQL's read crosses the
    network, so it goes to the thread pool."""
    engine = request.app.state.sessions.kw["bind"]
    if engine.dialect.name == "sqlite":
        return repo.status_row(engine, owner, job_id)
    return await run_in_threadpool(repo.status_row, engine, owner, job_id)


def unfinished_headers(job: Job | SimpleNamespace, settings: Settings) -> dict[str, str]:
    """``Retry-After`` while the job is queued or running."""
    if job.status in ACTIVE:
        return {"Retry-After": str(settings.retry_after_s)}
    return {}


def status_answer(
    job: SimpleNamespace, request: Request, settings: Settings, if_none_match: str | None
) -> Response:
    """The job's status as JSON with its ETag, or 304 without a body when
    ``If-None-Match`` names that ETag."""
    body = to_json(service.job_view(job, request, validate=False))
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    headers.update(unfinished_headers(job, settings))
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list (or ``*``) with ``etag``."""
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class StatusPollFastPath:
    """ASGI middleware (inside the security guard and the request metrics): answers
    ``GET /api/v1/jobs/{job_id}`` when it can do so exactly as the route would, and
    passes every other request on."""

    def __init__(self, app: ASGIApp, route: APIRoute, siblings: frozenset[str]) -> None:
        self.app = app
        self.route = route  # stored in the scope as the router would: the metrics' label
        self.siblings = siblings  # GET /api/v1/jobs/<literal> routes (e.g. compare)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._answer(scope) if scope["type"] == "http" else None
        if response is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        await response(scope, receive, send)

    async def _answer(self, scope: Scope) -> Response | None:
        if scope["method"] != "GET":
            return None
        path = get_route_path(scope)
        if not path.startswith(PREFIX):
            return None
        job_id = path[len(PREFIX) :]
        if not job_id or "/" in job_id or job_id in self.siblings:
            return None
        request = Request(scope)
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and len(if_none_match) > MAX_IF_NONE_MATCH:
            return None
        owner = cached_owner(request)
        if owner is None:
            return None
        try:
            job = await read_status(request, owner, job_id)
        except Exception:  # the route reads again and answers the error (503)
            return None
        if job is None:
            return None
        return status_answer(job, request, request.app.state.settings, if_none_match)


def install(app: FastAPI, router: APIRouter) -> None:
    """Put the fast path in front of ``router``'s status route (call before the
    security guard is added, so that the guard and the metrics stay outside it)."""
    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    gets = [r for r in routes if "GET" in (r.methods or ())]
    route = next(r for r in gets if r.path == PREFIX + "{job_id}")
    siblings = frozenset(
        r.path.removeprefix(PREFIX) for r in gets if r.path.startswith(PREFIX) and "{" not in r.path
    )
    app.add_middleware(StatusPollFastPath, route=route, siblings=siblings)
