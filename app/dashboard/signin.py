"""Sign-in and sign-out: the form that turns an API key into a dashboard session
(an HttpOnly cookie holding a session id, never the key) and ends it."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import SessionDep
from app.dashboard import views
from app.dashboard.render import forget_cookies, render, settings_of
from app.errors import ProblemError
from app.security import auth
from app.security import sessions as web_sessions

router = APIRouter(include_in_schema=False)

# The sign-in form: an API key (~56 characters) and a next path.
SIGNIN_MAX_BYTES = 8 * 1024


@router.get("/signin", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str | None = None) -> Response:
    if not auth.auth_enabled(settings_of(request)):
        return RedirectResponse(views.safe_next(next), status_code=303)
    return render(request, "signin.html", {"next": views.safe_next(next), "error": None})


@router.post("/signin", response_class=HTMLResponse)
async def sign_in(request: Request, session: SessionDep) -> Response:
    """Check the key and start a session: the HttpOnly, SameSite=Strict cookie holds a
    session id (never the key), which sign-out revokes. The form is one short,
    url-encoded field; app/security/guard.py has refused other origins before this runs."""
    form = await small_form(request)
    key = form.get("key", "").strip()
    target = views.safe_next(form.get("next") or "/")
    settings = settings_of(request)
    if not auth.auth_enabled(settings):
        return RedirectResponse(target, status_code=303)
    owner = await run_in_threadpool(auth.verify, session, key) if key else None
    if owner is None:
        return render(
            request,
            "signin.html",
            {
                "next": target,
                "error": "That key is not valid or was revoked." if key else "Paste your API key.",
            },
            status_code=401,
        )
    old = request.cookies.get(web_sessions.COOKIE)

    def switch() -> str:
        """End the old session and start the new one in the request's transaction,
        committed before the cookie is sent."""
        if old:
            web_sessions.end(session, old)
        token = web_sessions.start(session, auth.key_id_of(key), settings.session_hours)
        session.commit()
        return token

    token = await run_in_threadpool(switch)
    response = RedirectResponse(target, status_code=303)
    if web_sessions.LEGACY_COOKIE in request.cookies:  # it held a raw key: drop it
        response.delete_cookie(web_sessions.LEGACY_COOKIE, path="/")
    response.set_cookie(
        web_sessions.COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
async def sign_out(request: Request, session: SessionDep) -> Response:
    """End the session (revoked in the database, so a copied cookie dies with it). A
    live session's sign-out needs the page's CSRF token: other pages cannot force it.
    The short form is read first: on SQLite the request's transaction holds the write
    lock from its first statement, never while waiting for a client."""
    token = request.cookies.get(web_sessions.COOKIE)
    if token:
        form = await small_form(request)

        def end_live() -> None:
            if web_sessions.owner_of_token(session, token) is None:
                return
            if not web_sessions.csrf_matches(token, form.get(web_sessions.CSRF_FIELD)):
                raise web_sessions.csrf_refused(
                    "Sign out from the dashboard's own page (its form carries a CSRF token)."
                )
            web_sessions.end(session, token)
            session.commit()

        await run_in_threadpool(end_live)
    response = RedirectResponse(
        "/signin" if auth.auth_enabled(settings_of(request)) else "/", status_code=303
    )
    forget_cookies(response, request)
    return response


async def small_form(request: Request) -> dict[str, str]:
    """A short url-encoded form (sign-in, sign-out), read with a hard cap: anything
    else (multipart, whose file parts would be spooled to disk) is refused before a
    byte of the body is read, and a body over SIGNIN_MAX_BYTES is cut off with 413."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("", "application/x-www-form-urlencoded"):
        raise ProblemError(
            415,
            "Unsupported form encoding",
            f"This form takes application/x-www-form-urlencoded, not {media!r}.",
            type_="unsupported-media-type",
        )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > SIGNIN_MAX_BYTES:
        raise _form_too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > SIGNIN_MAX_BYTES:
            raise _form_too_large()
    fields = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=20)
    return dict(fields)


def _form_too_large() -> ProblemError:
    return ProblemError(
        413,
        "Request body too large",
        f"This form is one short field; its body is limited to {SIGNIN_MAX_BYTES} bytes.",
        type_="body-too-large",
    )
