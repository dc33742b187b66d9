"""What a request may send, checked before and while its body streams in.

One pure ASGI middleware (no buffering of its own) does, in order:

1. Authentication before any body is read: a write to ``/api/`` (POST, PUT, PATCH,
   DELETE) without a valid key is answered 401 at once, so an anonymous client cannot
   make the server buffer anything. The owner found here is kept on the request's state,
   and the routes' owner dependency uses it instead of checking the key again.
2. A size limit per route, for what the route accepts: the upload route
   (``POST /api/v1/datasets``) takes multipart/form-data up to AUXSEL_MAX_UPLOAD_MB plus
   the framing of its few form parts; every other route takes at most AUXSEL_MAX_JSON_KB,
   whatever the Content-Type says, and an API route other than the upload refuses
   multipart/form-data with 415. A declared Content-Length over the limit is refused
   before reading; a chunked or lying body is cut off with 413 once it passes the limit.
3. A read timeout on the body: waiting longer than AUXSEL_BODY_TIMEOUT_S for the next
   piece of it is a 408.

A response sent while the request body is still unread says ``Connection: close``, so
the server stops reading the rest of it (uvicorn would otherwise read and drop it on a
kept-alive connection, with no timeout). Request line and header limits live in the
HTTP protocol itself (app/server.py): an ASGI app only sees a request after its headers.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.data.storage import upload_too_large
from app.errors import ProblemError, ProblemHTTPException, problem_response
from app.security.auth import owner_of
from app.settings import Settings

# The upload route's body may exceed the file's limit by the multipart framing: part
# headers, boundaries and the short form fields (each at most 4 KiB, AUXSEL_MAX_FORM_PARTS).
UPLOAD_FRAMING_BYTES = 256 * 1024
UPLOAD_ROUTES = frozenset({("POST", "/api/v1/datasets")})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OWNER_STATE = "auxsel_owner"  # request.state attribute set once the caller is known


def upload_body_limit(settings: Settings) -> int:
    """The most bytes the upload route reads: the file's limit plus multipart framing."""
    return int(settings.max_upload_mb * 2**20) + UPLOAD_FRAMING_BYTES


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "Request body too large",
        f"The request body is larger than {limit // 1024} KiB (AUXSEL_MAX_JSON_KB); "
        "send a smaller body.",
        type_="body-too-large",
    )


def _timed_out(seconds: float) -> ProblemError:
    return ProblemError(
        408,
        "Request timeout",
        f"The request body stalled: no data for {seconds:g} s (AUXSEL_BODY_TIMEOUT_S). "
        "Send the body without pauses.",
        type_="request-timeout",
    )


def _not_json() -> ProblemError:
    return ProblemError(
        415,
        "Unsupported media type",
        "This route accepts application/json; only POST /api/v1/datasets takes "
        "multipart/form-data.",
        type_="unsupported-media-type",
        errors=[{"field": "Content-Type", "message": "Send application/json."}],
    )


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"transfer-encoding" in headers


def _routed(scope: Scope) -> bool:
    """Whether some route of the app serves this method and path."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", [])
    return any(route.matches(scope)[0] == Match.FULL for route in routes)


class BodyLimitMiddleware:
    """Auth before the body, per-route size limits and a body read timeout."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings  # read per request: tests change limits on the fly

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        method: str = scope.get("method", "GET")
        path: str = scope.get("path", "")
        headers = dict(scope.get("headers", []))
        body_pending = _has_body(headers)
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if body_pending:  # the rest of the body is not worth reading
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        async def refuse(problem: ProblemError) -> None:
            await problem_response(problem)(scope, receive, guarded_send)

        # A write to an API route that exists: other requests get their 404 or 405 from
        # the app (which reads no body for them).
        api_write = path.startswith("/api/") and method in WRITE_METHODS and _routed(scope)
        if api_write:
            try:
                owner = await run_in_threadpool(owner_of, Request(scope))
            except ProblemError as problem:
                await refuse(problem)
                return
            scope.setdefault("state", {})[OWNER_STATE] = owner

        is_upload = (method, path) in UPLOAD_ROUTES
        content_type = headers.get(b"content-type", b"").lower()
        if api_write and not is_upload and content_type.startswith(b"multipart/"):
            await refuse(_not_json())
            return
        if is_upload:
            limit = upload_body_limit(settings)
            too_large = upload_too_large(int(settings.max_upload_mb * 2**20))
        else:
            limit = settings.max_json_kb * 1024
            too_large = _too_large(limit)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await refuse(too_large)
            return

        seen = 0
        timeout = settings.body_timeout_s

        async def guarded_receive() -> Message:
            nonlocal seen, body_pending
            if not body_pending:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise ProblemHTTPException(_timed_out(timeout)) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ProblemHTTPException(too_large)
                body_pending = bool(message.get("more_body", False))
            else:
                body_pending = False
            return message

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except ProblemHTTPException as exc:  # raised outside the app's handlers
            if not started:
                await refuse(exc.problem)
