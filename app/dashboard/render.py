"""How a dashboard page is rendered: the templates and their filters, the security
headers every page carries (CSP, nosniff, no-store), and the sign-in redirect."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

import engine
from app.dashboard import charts, views
from app.jobs.fractions import percent_share
from app.security import auth
from app.security import sessions as web_sessions
from app.settings import Settings

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.filters.update(
    signed=views.signed,
    number=views.number,
    percent=views.percent,
    duration=views.duration,
    percent_share=percent_share,
    candidate_colour=charts.candidate_colour,
)
TEMPLATES.env.globals["duration_s"] = views.duration_s
TEMPLATES.env.globals["q_level"] = engine.Q_LEVEL  # the verdicts' legend

# Everything the pages load comes from this origin; data for the charts travels in
# <script type="application/json"> blocks, which the policy does not execute.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def forget_cookies(response: Response, request: Request) -> None:
    for name in (web_sessions.COOKIE, web_sessions.LEGACY_COOKIE):
        if name in request.cookies:
            response.delete_cookie(name, path="/", httponly=True, samesite="strict")


def to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/signin?{query(next=target)}", status_code=303)
    forget_cookies(response, request)  # a revoked, expired or pre-session cookie
    return response


def query(**params: str) -> str:
    return urlencode(params)


def page_csrf_token(request: Request) -> str | None:
    """The CSRF token that this page's scripts and forms send back (with a session)."""
    token = request.cookies.get(web_sessions.COOKIE)
    return web_sessions.csrf_token(token) if token else None


def render(
    request: Request, template: str, context: Mapping[str, object], status_code: int = 200
) -> HTMLResponse:
    settings = settings_of(request)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "auth_on": auth.auth_enabled(settings),
            "csrf_token": page_csrf_token(request),
            **context,
        },
        status_code=status_code,
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response
