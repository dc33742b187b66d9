"""The request guard: every rule that applies to a request before routing, in one pure
ASGI middleware with one pass over the request's headers (no buffering of its own).
In order:

1. **Public URL.** With ``AUXSEL_PUBLIC_URL`` set, the request's scheme and host are
   taken from it, so links, ``Location`` and ``Link`` headers never reflect a client's
   ``Host`` header (and the sign-in cookie is ``Secure`` behind a TLS proxy).
2. **Origin checks.** A state change (POST, PUT, PATCH, DELETE) without
   ``Authorization: Bearer`` must not come from another origin: a browser's ``Origin``
   header must be this server's origin and ``Sec-Fetch-Site`` must not say
   ``cross-site`` / ``same-site`` (a page on another port of the same host is another
   origin but the same site, and it gets the cookie). The sign-in and sign-out forms
   also refuse requests that carry neither header (only browsers use them). Clients
   that are not browsers send neither and are judged by their key alone.
3. **No NUL in the URL.** PostgreSQL can neither store nor compare text that holds one
   (the driver raises, which was a 500), and no id, name or parameter of the API has
   one: a NUL in the path is a 404, in a query parameter a 422 naming the parameter.
   JSON bodies and upload form fields are checked where they are validated.
4. **Authentication before any body is read**: a write to ``/api/`` (POST, PUT, PATCH,
   DELETE) without a valid key is answered 401 at once, so an anonymous client cannot
   make the server buffer anything. The owner found here is kept on the request's
   state, and the routes' owner dependency uses it instead of checking the key again.
5. **A size limit per route**, for what the route accepts: the upload route
   (``POST /api/v1/datasets``) takes multipart/form-data up to AUXSEL_MAX_UPLOAD_MB plus
   the framing of its few form parts; every other route takes at most
   AUXSEL_MAX_JSON_KB, whatever the Content-Type says, and an API route other than the
   upload refuses multipart/form-data with 415. A declared Content-Length over the
   limit is refused before reading; a chunked or lying body is cut off with 413 once it
   passes the limit.
6. **A read timeout on the body**: waiting longer than AUXSEL_BODY_TIMEOUT_S for the
   next piece of it is a 408.
7. **Response headers.** ``X-Content-Type-Options: nosniff`` on every answer;
   ``Cache-Control`` on the API's answers when the route set none: ``private,
   no-cache`` for answers with an ``ETag`` (conditional polling stays cheap),
   ``no-store`` else. A response sent while the request body is still unread says
   ``Connection: close``, so the server stops reading the rest of it (uvicorn would
   otherwise read and drop it on a kept-alive connection, with no timeout).

Request line and header limits live in the HTTP protocol itself (app/server.py): an
ASGI app only sees a request after its headers.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.data.storage import upload_too_large
from app.errors import ProblemError, ProblemHTTPException, invalid, problem_response
from app.security.auth import owner_before_session
from app.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BROWSER_ONLY = frozenset({"/signin", "/signout"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
NO_CACHE_PREFIXES = ("/api/", "/openapi.json")
# The upload route's body may exceed the file's limit by the multipart framing: part
# headers, boundaries and the short form fields (each at most 4 KiB, AUXSEL_MAX_FORM_PARTS).
UPLOAD_FRAMING_BYTES = 256 * 1024
UPLOAD_ROUTES = frozenset({("POST", "/api/v1/datasets")})
OWNER_STATE = "auxsel_owner"  # request.state attribute set once the caller is known
NOSNIFF = (b"x-content-type-options", b"nosniff")
CONNECTION_CLOSE = (b"connection", b"close")


def upload_body_limit(settings: Settings) -> int:
    """The most bytes the upload route reads: the file's limit plus multipart framing."""
    return int(settings.max_upload_mb * 2**20) + UPLOAD_FRAMING_BYTES


def _cross_site(detail: str) -> ProblemError:
    return ProblemError(403, "Cross-site request refused", detail, type_="csrf")


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


def nul_problem(path: str, query: bytes) -> ProblemError | None:
    """A NUL in the path is a 404 (no resource is named so), in a query parameter a 422
    naming the parameter."""
    if "\x00" in path:
        return ProblemError(
            404, "Not found", "No resource has a NUL character in its path.", type_="not-found"
        )
    if b"\x00" in query or b"%00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return invalid(name.replace("\x00", "") or "query", "Holds a NUL character.")
    return None


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


def _bearer(headers: dict[bytes, bytes]) -> bool:
    authorization = headers.get(b"authorization", b"")
    return authorization[:7].lower() == b"bearer " and bool(authorization[7:].strip())


class SecurityGuard:
    """Public URL, origin checks, NUL guard, auth before the body, per-route size
    limits, body read timeout and security headers: one middleware, one pass."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings  # limits are read per request: tests change them on the fly
        public_url = settings.public_url
        self.public = urlsplit(public_url) if public_url else None
        if self.public is not None:  # worked out once: this runs on every request
            default = 443 if self.public.scheme == "https" else 80
            self.public_origin = f"{self.public.scheme}://{self.public.netloc}"
            self.public_host = self.public.netloc.encode("latin-1")
            self.public_server = (self.public.hostname or "", self.public.port or default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.public is not None:
            scope = self._as_public(scope)
        method: str = scope["method"]
        path: str = scope.get("path", "")
        # One dict of the headers, for every rule below (the first of repeated names).
        headers: dict[bytes, bytes] = dict(reversed(scope.get("headers", ())))
        api = path.startswith(NO_CACHE_PREFIXES)
        body_pending = _has_body(headers)
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                raw = list(message.get("headers", ()))
                names = {name.lower() for name, _ in raw}
                if b"x-content-type-options" not in names:
                    raw.append(NOSNIFF)
                if api and b"cache-control" not in names:
                    policy = b"private, no-cache" if b"etag" in names else b"no-store"
                    raw.append((b"cache-control", policy))
                if body_pending:  # the rest of the body is not worth reading
                    raw.append(CONNECTION_CLOSE)
                message = {**message, "headers": raw}
            await send(message)

        async def refuse(problem: ProblemError) -> None:
            await problem_response(problem)(scope, receive, guarded_send)

        unsafe = method in UNSAFE_METHODS
        problem = self._cross_origin(scope, headers, path) if unsafe else None
        if problem is None:
            problem = nul_problem(path, scope.get("query_string", b""))
        if problem is not None:
            await refuse(problem)
            return

        # A write to an API route that exists: other requests get their 404 or 405 from
        # the app (which reads no body for them).
        api_write = unsafe and path.startswith("/api/") and _routed(scope)
        if api_write:
            try:
                owner = await run_in_threadpool(owner_before_session, Request(scope))
            except ProblemError as refused:
                await refuse(refused)
                return
            scope.setdefault("state", {})[OWNER_STATE] = owner

        settings = self.settings
        is_upload = (method, path) in UPLOAD_ROUTES
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        if api_write and not is_upload and multipart:
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

        if not body_pending:
            app_receive = receive
        else:
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

            app_receive = guarded_receive
        try:
            await self.app(scope, app_receive, guarded_send)
        except ProblemHTTPException as exc:  # raised outside the app's handlers
            if not started:
                await refuse(exc.problem)

    def _as_public(self, scope: Scope) -> Scope:
        assert self.public is not None
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"host"]
        headers.append((b"host", self.public_host))
        return {
            **scope,
            "scheme": self.public.scheme,
            "server": self.public_server,
            "headers": headers,
        }

    def _own_origin(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        if self.public is not None:
            return self.public_origin
        host = headers.get(b"host", b"").decode("latin-1").lower()
        return f"{scope.get('scheme', 'http')}://{host}"

    def _cross_origin(
        self, scope: Scope, headers: dict[bytes, bytes], path: str
    ) -> ProblemError | None:
        if _bearer(headers):
            return None  # not an ambient credential: a page cannot add it cross-origin
        raw_origin = headers.get(b"origin")
        raw_site = headers.get(b"sec-fetch-site")
        origin = raw_origin.decode("latin-1") if raw_origin is not None else None
        site = raw_site.decode("latin-1") if raw_site is not None else None
        own = self._own_origin(scope, headers)
        if origin is not None and origin.lower() != own:
            hint = (
                ""
                if self.public is not None
                else " Behind a proxy, set AUXSEL_PUBLIC_URL to the address users open."
            )
            return _cross_site(
                f"This request came from a page at {origin!r}, not from {own!r}: "
                f"changes must come from the dashboard itself or carry an API key.{hint}"
            )
        if site is not None and site.lower() not in ALLOWED_FETCH_SITES:
            return _cross_site(
                f"This request came from another site (Sec-Fetch-Site: {site}): changes "
                "must come from the dashboard itself or carry an API key."
            )
        if origin is None and site is None and path in BROWSER_ONLY:
            return _cross_site(
                "The sign-in and sign-out forms take requests from this server's own "
                "pages only (the browser's Origin header is missing). Tools should send "
                "'Authorization: Bearer <key>' to the API instead."
            )
        return None
