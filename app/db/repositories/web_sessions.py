"""SQL for the dashboard's sign-in sessions (app/security/sessions.py holds the rules).
Rows are found by the SHA-256 of the session token, never the token itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.db.models import ApiKey, WebSession


def add(session: Session, id_hash: str, key_id: str, now: datetime, expires_at: datetime) -> None:
    session.add(WebSession(id_hash=id_hash, key_id=key_id, created_at=now, expires_at=expires_at))


def sweep(session: Session, ended_before: datetime) -> None:
    """Delete sessions that expired before ``ended_before``."""
    session.execute(delete(WebSession).where(WebSession.expires_at < ended_before))


def live_owner(session: Session, id_hash: str, now: datetime) -> str | None:
    """The owner of a live session (not revoked, not expired, its key not revoked)."""
    owner: str | None = session.execute(
        select(ApiKey.owner)
        .join(WebSession, WebSession.key_id == ApiKey.id)
        .where(
            WebSession.id_hash == id_hash,
            WebSession.revoked_at.is_(None),
            WebSession.expires_at > now,
            ApiKey.revoked_at.is_(None),
        )
    ).scalar_one_or_none()
    return owner


def revoke(session: Session, id_hash: str, now: datetime) -> bool:
    """Revoke a live session; True if it was live."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.id_hash == id_hash, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0)) == 1
