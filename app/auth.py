"""API keys and the caller's identity.

A key is ``auxsel_<id>_<secret>``: the id finds the stored row, and the secret is
checked against a salted SHA-256 (the secret is 32 random bytes, so a fast hash is
enough; nothing that could be brute-forced is stored). Auth is on whenever the server
listens on anything but loopback (setting ``AUXSEL_AUTH=auto``), or when forced on.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app import sessions as web_sessions
from app.db import write_transaction
from app.errors import ProblemError
from app.models import ApiKey, utcnow
from app.settings import Settings

log = logging.getLogger("auxsel.auth")
PREFIX = "auxsel_"


@dataclass(frozen=True)
class CreatedKey:
    id: str
    owner: str
    key: str


def auth_enabled(settings: Settings) -> bool:
    if settings.auth == "on":
        return True
    if settings.auth == "off":
        return False
    return not is_loopback(settings.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def create_key(sessions: sessionmaker[Session], owner: str) -> CreatedKey:
    if not owner.strip():
        raise ValueError("owner must not be empty")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    with write_transaction(sessions) as session:
        session.add(
            ApiKey(
                id=key_id,
                owner=owner.strip(),
                salt=salt,
                secret_hash=_hash(salt, secret),
                created_at=utcnow(),
            )
        )
    return CreatedKey(key_id, owner.strip(), f"{PREFIX}{key_id}_{secret}")


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(sessions: sessionmaker[Session], key_id: str) -> bool:
    with write_transaction(sessions) as session:
        result = session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0)) == 1


def verify(session: Session, presented: str) -> str | None:
    """The owner of a valid, unrevoked key; None otherwise."""
    if not presented.startswith(PREFIX):
        return None
    try:
        key_id, secret = presented[len(PREFIX) :].split("_", 1)
    except ValueError:
        return None
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(row.salt, secret)):
        return None
    return row.owner


def mark_used(sessions: sessionmaker[Session], presented: str) -> None:
    """Record that a key was used, at most once a minute (so polling does not turn every
    read into a write). Bookkeeping only: a busy database skips it, never the request."""
    key_id = presented[len(PREFIX) :].split("_", 1)[0]
    now = utcnow()
    stale = now - timedelta(seconds=60)
    try:
        with write_transaction(sessions) as session:
            session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == key_id,
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale),
                )
                .values(last_used_at=now)
            )
    except OperationalError:
        log.info("could not record the use of key %s (database busy)", key_id)


def presented_key(request: Request) -> str | None:
    """The bearer key of the request. (The dashboard's cookie holds a session id, not a
    key: see app/sessions.py.)"""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "Unauthorized",
        detail,
        type_="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="auxsel"'},
    )


def owner_of(request: Request) -> str:
    """The caller's owner name: from its API key when auth is on, else ``local``."""
    settings: Settings = request.app.state.settings
    if not auth_enabled(settings):
        return "local"
    key = presented_key(request)
    if key is None:
        signed_in = web_sessions.cookie_owner(request)  # 403 without its CSRF token
        if signed_in is not None:
            return signed_in
        raise unauthorized(
            "This server needs an API key: send 'Authorization: Bearer <key>' "
            "(create one with 'auxsel keys create --owner NAME')."
        )
    with request.app.state.sessions() as session:
        owner = verify(session, key)
    if owner is None:
        raise unauthorized("The API key is not valid or was revoked.")
    mark_used(request.app.state.sessions, key)
    return owner
