"""Browser-facing request rules, in one pure ASGI middleware that runs before routing
and before any body is read:

- **Public URL.** With ``AUXSEL_PUBLIC_URL`` set, the request's scheme and host are
  taken from it, so links, ``Location`` and ``Link`` headers never reflect a client's
  ``Host`` header (and the sign-in cookie is ``Secure`` behind a TLS proxy).
- **Origin checks.** A state change (POST, PUT, PATCH, DELETE) without
  ``Authorization: Bearer`` must not come from another origin: a browser's ``Origin``
  header must be this server's origin and ``Sec-Fetch-Site`` must not say
  ``cross-site`` / ``same-site`` (a page on another port of the same host is another
  origin but the same site, and it gets the cookie). The sign-in and sign-out forms
  also refuse requests that carry neither header (only browsers use them). Clients
  that are not browsers send neither and are judged by their key alone.
- **Response headers.** ``X-Content-Type-Options: nosniff`` on every answer;
  ``Cache-Control`` on the API's answers when the route set none: ``private, no-cache``
  for answers with an ``ETag`` (conditional polling stays cheap), ``no-store`` else.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ProblemError, problem_response

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BROWSER_ONLY = frozenset({"/signin", "/signout"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
NO_CACHE_PREFIXES = ("/api/", "/openapi.json")


def _refused(detail: str) -> ProblemError:
    return ProblemError(403, "Cross-site request refused", detail, type_="csrf")


class WebSecurityMiddleware:
    def __init__(self, app: ASGIApp, public_url: str | None = None) -> None:
        self.app = app
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
        if scope["method"] in UNSAFE_METHODS:
            problem = self._cross_origin(scope, Headers(scope=scope))
            if problem is not None:
                await problem_response(problem)(scope, receive, send)
                return
        path: str = scope.get("path", "")
        api = path.startswith(NO_CACHE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                names = {name.lower() for name, _ in raw}
                if b"x-content-type-options" not in names:
                    raw.append((b"x-content-type-options", b"nosniff"))
                if api and b"cache-control" not in names:
                    policy = b"private, no-cache" if b"etag" in names else b"no-store"
                    raw.append((b"cache-control", policy))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)

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

    def _own_origin(self, scope: Scope, headers: Headers) -> str:
        if self.public is not None:
            return self.public_origin
        return f"{scope.get('scheme', 'http')}://{headers.get('host', '').lower()}"

    def _cross_origin(self, scope: Scope, headers: Headers) -> ProblemError | None:
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer " and authorization[7:].strip():
            return None  # not an ambient credential: a page cannot add it cross-origin
        origin = headers.get("origin")
        site = headers.get("sec-fetch-site")
        own = self._own_origin(scope, headers)
        if origin is not None and origin.lower() != own:
            hint = (
                ""
                if self.public is not None
                else " Behind a proxy, set AUXSEL_PUBLIC_URL to the address users open."
            )
            return _refused(
                f"This request came from a page at {origin!r}, not from {own!r}: "
                f"changes must come from the dashboard itself or carry an API key.{hint}"
            )
        if site is not None and site.lower() not in ALLOWED_FETCH_SITES:
            return _refused(
                f"This request came from another site (Sec-Fetch-Site: {site}): changes "
                "must come from the dashboard itself or carry an API key."
            )
        if origin is None and site is None and scope.get("path") in BROWSER_ONLY:
            return _refused(
                "The sign-in and sign-out forms take requests from this server's own "
                "pages only (the browser's Origin header is missing). Tools should send "
                "'Authorization: Bearer <key>' to the API instead."
            )
        return None
