"""The API's documentation: ``/openapi.json`` and ``/docs`` (Swagger UI, served from
this server's vendored copy, no CDN), exposed as ``AUXSEL_DOCS`` says: ``public``,
``authenticated`` (a bearer key or a dashboard sign-in; with API keys off that is
everyone who can connect) or ``off`` (404)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.api.deps import OptionalOwnerDep
from app.dashboard.render import TEMPLATES, page_csrf_token, to_sign_in
from app.errors import ProblemError
from app.security import auth
from app.settings import Settings

SWAGGER_UI = "5.35.0"  # app/dashboard/static/vendor/README.md lists the files and hashes
# Swagger UI sets inline styles; its scripts still come from this origin only.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _mode(request: Request) -> str:
    settings: Settings = request.app.state.settings
    if settings.docs == "off":
        raise ProblemError(
            404, "Not found", "The API docs are off (AUXSEL_DOCS=off).", type_="not-found"
        )
    return settings.docs


@router.get("/openapi.json")
def openapi_document(request: Request, owner: OptionalOwnerDep) -> Response:
    if _mode(request) == "authenticated" and owner is None:
        raise auth.unauthorized(
            "The API description needs an API key on this server (AUXSEL_DOCS="
            "authenticated): send 'Authorization: Bearer <key>' or sign in to the dashboard."
        )
    document: dict[str, object] = request.app.openapi()
    return JSONResponse(document)


@router.get("/docs")
def docs_page(request: Request, owner: OptionalOwnerDep) -> Response:
    if _mode(request) == "authenticated" and owner is None:
        return to_sign_in(request)
    response = TEMPLATES.TemplateResponse(
        request,
        "docs.html",
        {"csrf_token": page_csrf_token(request), "version": SWAGGER_UI},
    )
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response
