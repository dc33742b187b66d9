"""SQL for API keys (app/security/auth.py holds the rules: format, hashing, caching)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.db.models import ApiKey


def add(
    session: Session, key_id: str, owner: str, salt: str, secret_hash: str, now: datetime
) -> None:
    session.add(ApiKey(id=key_id, owner=owner, salt=salt, secret_hash=secret_hash, created_at=now))


def get(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def all_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke(session: Session, key_id: str, now: datetime) -> bool:
    """Revoke a live key; True if it was live."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0)) == 1


def mark_used(session: Session, key_id: str, now: datetime, older_than: datetime | None) -> None:
    """Set the key's ``last_used_at`` to ``now``; with ``older_than``, only if it was
    unset or before that time (so a busy key is written at most once a minute)."""
    query = update(ApiKey).where(ApiKey.id == key_id)
    if older_than is not None:
        query = query.where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < older_than))
    session.execute(query.values(last_used_at=now))
