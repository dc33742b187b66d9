"""FastAPI dependencies: settings, a database session per request (committed at the
request boundary), storage, and the caller's identity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.data.storage import Storage
from app.db.session import session_scope
from app.security.auth import cached_owner, owner_of
from app.security.bodylimit import OWNER_STATE
from app.security.ratelimit import enforce
from app.settings import Settings

# The cheap dependencies are ``async``: a plain ``def`` one costs a trip through the
# thread pool on every request (they add up on the status poll).


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the request succeeds. For a write
    (POST, DELETE) on SQLite the transaction takes the write lock at its first
    statement, in the route, after the caller is authenticated (see session_scope)."""
    writes = request.method not in ("GET", "HEAD", "OPTIONS")
    with session_scope(request.app.state.sessions, immediate=writes) as session:
        yield session


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


async def get_owner(request: Request) -> str:
    """The caller's identity: the owner of its API key when auth is on. Without keys
    (the embedded default on loopback) everything belongs to the local user. Writes to
    the API were authenticated before their body was read (app/security/bodylimit.py); a key seen
    in the last seconds is answered from memory; otherwise the database is read in the
    thread pool."""
    known: str | None = getattr(request.state, OWNER_STATE, None)
    if known is not None:
        return known
    owner = cached_owner(request)
    if owner is not None:
        return owner
    return await run_in_threadpool(owner_of, request)


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
