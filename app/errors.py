"""RFC 9457 problem details: one exception type that carries its HTTP status, and the
handlers that render it and every other error as application/problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.db.retry import is_transient

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://auxsel.dev/problems/"
# A problem lists at most this many field errors, then how many more there were: a
# request with 300,000 bad list items must not be answered with 30 MiB of errors.
MAX_ERRORS = 20
log = logging.getLogger("auxsel.errors")
RowT = TypeVar("RowT")


class ProblemError(Exception):
    """A problem to report to the client. ``errors`` lists field problems as
    ``{"field": "budget.seeds", "message": "..."}``; ``extensions`` are further members
    of the problem object (RFC 9457 section 3.2), e.g. the numbers behind a refusal."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type_: str = "about:blank",
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extensions: Mapping[str, object] | None = None,
        errors_omitted: int = 0,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_ if type_ == "about:blank" else TYPE_BASE + type_
        self.errors = errors or []
        self.errors_omitted = errors_omitted
        self.headers = headers or {}
        self.extensions = extensions or {}

    def body(self, instance: str | None = None) -> dict[str, object]:
        body: dict[str, object] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors[:MAX_ERRORS]
            omitted = self.errors_omitted + max(0, len(self.errors) - MAX_ERRORS)
            if omitted:
                body["errors_omitted"] = omitted
        return {**self.extensions, **body}


class ProblemHTTPException(StarletteHTTPException):
    """A ProblemError raised where only an HTTPException passes through (from an ASGI
    ``receive``: FastAPI turns any other error while reading a body into a 400)."""

    def __init__(self, problem: ProblemError) -> None:
        super().__init__(problem.status, problem.detail, headers=problem.headers or None)
        self.problem = problem


def field_problem(
    status: int, title: str, detail: str, fix: str, *, type_: str, field: str = "file"
) -> ProblemError:
    """A problem caused by one field of the request (the uploaded ``file`` by default);
    ``fix`` says what to change."""
    return ProblemError(
        status, title, detail, type_=type_, errors=[{"field": field, "message": fix}]
    )


def not_found(what: str, ident: str) -> ProblemError:
    return ProblemError(
        404, f"{what} not found", f"No {what.lower()} with id {ident!r}.", type_="not-found"
    )


def found(row: RowT | None, what: str, ident: str) -> RowT:
    """``row``, or a 404 for the ``what`` with id ``ident`` when there is none."""
    if row is None:
        raise not_found(what, ident)
    return row


def invalid(field: str, message: str, detail: str | None = None) -> ProblemError:
    """A 422 for one field, with the message saying what to change."""
    return ProblemError(
        422,
        "Invalid request",
        detail or message,
        type_="validation-error",
        errors=[{"field": field, "message": message}],
    )


def problem_response(problem: ProblemError, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(str(request.url.path) if request else None),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


def _json_message(loc: tuple[int | str, ...], ctx: object) -> str:
    """Why a body is not JSON, and where (its character offset), from FastAPI's
    ``json_invalid`` error: ``loc`` is ("body", offset), ``ctx`` the decoder's message."""
    reason = ctx.get("error") if isinstance(ctx, Mapping) else None
    where = next((p for p in loc[1:] if isinstance(p, int)), None)
    message = "The body is not valid JSON"
    if reason:
        message += f": {reason}"
    if where is not None:
        message += f" at character {where} (0-based offset in the body)"
    return message + "."


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's 405 names only the
    first matching route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods - {"HEAD"})


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        found = exc.errors()
        for err in found[:MAX_ERRORS]:
            loc = tuple(err.get("loc", ()))
            field = _field_path(loc)
            message = str(err.get("msg", "invalid value"))
            if err.get("type") == "extra_forbidden":
                message = "Unknown field; remove it (see the API docs for the allowed fields)."
            elif err.get("type") == "json_invalid":
                # FastAPI puts the decoder's character offset where a field path would be.
                field, message = "body", _json_message(loc, err.get("ctx"))
            errors.append({"field": field, "message": message})
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        problem = ProblemError(
            422,
            "Invalid request",
            f"{first['field']}: {first['message']}",
            type_="validation-error",
            errors=errors,
            errors_omitted=len(found) - len(errors),
        )
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ProblemHTTPException):
            return problem_response(exc.problem, request)
        titles = {
            404: "Not found",
            405: "Method not allowed",
            400: "Bad request",
            413: "Request body too large",
        }
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        problem = ProblemError(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            headers=headers,
        )
        return problem_response(problem, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):  # the database is restarting or unreachable: retry later
            log.warning(
                "database unavailable on %s %s: %s",
                request.method,
                request.url.path,
                exc.__class__.__name__,
            )
            return problem_response(
                ProblemError(
                    503,
                    "Database unavailable",
                    "The database did not answer; retry shortly (POST /jobs with an "
                    "Idempotency-Key is safe to repeat).",
                    type_="database-unavailable",
                    headers={"Retry-After": "2"},
                ),
                request,
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        problem = ProblemError(
            500, "Internal error", "The server failed to handle the request; it was logged."
        )
        return problem_response(problem, request)
