"""Dashboard sign-in sessions and their CSRF token.

Signing in with an API key starts a server-side session: the browser's cookie holds a
random 256-bit session token, the database only its SHA-256 (table ``web_sessions``),
tied to the key. Signing out revokes the row; so does revoking the key, and every
session expires after ``AUXSEL_SESSION_HOURS``. The key itself never reaches the cookie.

Every state change made with the cookie (anything but GET/HEAD/OPTIONS) must carry the
session's CSRF token: in the ``X-CSRF-Token`` header (the dashboard's scripts) or the
``csrf_token`` form field (the sign-out form). The token is derived from the session
token by a one-way hash, so pages can show it without revealing the session, and a
page on another origin (which cannot read the cookie or our pages) cannot produce it.
Requests with ``Authorization: Bearer`` carry no ambient credential and need no token.
Browser origins are checked as well, before any body is read (app/security/guard.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from fastapi import Request
from sqlalchemy.orm import Session

from app.db.models import utcnow
from app.db.repositories import api_keys as key_repo
from app.db.repositories import web_sessions as repo
from app.errors import ProblemError

COOKIE = "auxsel_session"
LEGACY_COOKIE = "auxsel_key"  # before round 2 the cookie held the raw key: never read
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session (shown in its pages, sent back with each change)."""
    return hashlib.sha256(f"auxsel-csrf:{session_token}".encode()).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(session_token), str(presented))


def start(session: Session, key_id: str, hours: float) -> str:
    """A new session for a verified key, in the caller's write transaction; returns the
    token for the cookie. Sessions that ended more than a day ago are swept on the way."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    repo.sweep(session, now - timedelta(days=1))
    repo.add(session, _digest(token), key_id, now, now + timedelta(hours=hours))
    key_repo.mark_used(session, key_id, now, older_than=None)
    return token


def owner_of_token(session: Session, token: str) -> str | None:
    """The owner of a live session (not revoked, not expired, its key not revoked)."""
    if not token or len(token) > 200:
        return None
    return repo.live_owner(session, _digest(token), utcnow())


def end(session: Session, token: str) -> bool:
    """Revoke a session (sign-out), in the caller's write transaction; True if it was
    live."""
    return repo.revoke(session, _digest(token), utcnow())


def csrf_refused(detail: str) -> ProblemError:
    return ProblemError(403, "Cross-site request refused", detail, type_="csrf")


def cookie_owner(request: Request, session: Session) -> str | None:
    """The owner signed in through the session cookie (read on the request's
    ``session``), None without a live session. A state change made with the cookie
    needs the session's CSRF token (403 without)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    owner = owner_of_token(session, token)
    if owner is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_matches(
        token, request.headers.get(CSRF_HEADER)
    ):
        raise csrf_refused(
            f"A change made with the dashboard's sign-in cookie needs the page's "
            f"'{CSRF_HEADER}' header. Scripts and tools should send "
            "'Authorization: Bearer <key>' instead of the cookie."
        )
    return owner
