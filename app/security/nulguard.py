"""No NUL character reaches a handler through the URL: PostgreSQL can neither store nor
compare text that holds one (the driver raises, which was a 500), and no id, name or
parameter of the API has one. JSON bodies and upload form fields are checked where they
are validated (app/api/schemas.py, app/services/datasets.py)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ProblemError, invalid, problem_response


class NulGuardMiddleware:
    """Pure ASGI middleware: a NUL in the path is a 404 (no resource is named so), a NUL
    in a query parameter a 422 naming the parameter."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = nul_problem(scope.get("path", ""), scope.get("query_string", b""))
            if problem is not None:
                await problem_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def nul_problem(path: str, query: bytes) -> ProblemError | None:
    if "\x00" in path:
        return ProblemError(
            404, "Not found", "No resource has a NUL character in its path.", type_="not-found"
        )
    if b"\x00" in query or b"%00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return invalid(name.replace("\x00", "") or "query", "Holds a NUL character.")
    return None
