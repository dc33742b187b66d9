"""FastAPI dependencies: settings, a database session per request (committed at the
request boundary), storage, and the caller's identity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.auth import owner_of
from app.bodylimit import OWNER_STATE
from app.db import session_scope
from app.ratelimit import enforce
from app.settings import Settings
from app.storage import Storage


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the request succeeds."""
    writes = request.method not in ("GET", "HEAD", "OPTIONS")
    with session_scope(request.app.state.sessions, immediate=writes) as session:
        yield session


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_owner(request: Request) -> str:
    """The caller's identity: the owner of its API key when auth is on. Without keys
    (the embedded default on loopback) everything belongs to the local user. Writes to
    the API were authenticated before their body was read (app/bodylimit.py)."""
    known: str | None = getattr(request.state, OWNER_STATE, None)
    return known if known is not None else owner_of(request)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
StorageDep = Annotated[Storage, Depends(get_storage)]
OwnerDep = Annotated[str, Depends(get_owner)]


def limit_submissions(request: Request, owner: OwnerDep) -> None:
    """429 when the caller is over AUXSEL_RATE_SUBMIT_PER_MIN."""
    enforce(request, owner, "submit")


def limit_uploads(request: Request, owner: OwnerDep) -> None:
    """429 when the caller is over AUXSEL_RATE_UPLOAD_PER_MIN (before the body is read)."""
    enforce(request, owner, "upload")
