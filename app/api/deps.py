"""FastAPI dependencies: settings, a database session per request (committed at the
request boundary), storage, and the caller's identity."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.data.storage import Storage
from app.db.session import new_session
from app.security.auth import cached_owner, optional_owner, owner_before_session, owner_of
from app.security.guard import OWNER_STATE
from app.security.ratelimit import enforce
from app.settings import Settings

# The cheap dependencies are ``async``: a plain ``def`` one costs a trip through the
# thread pool on every request (they add up on the status poll).


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, committed when the request succeeds (rolled back when
    it fails). For a write (POST, DELETE) on SQLite the transaction takes the write
    lock at its first statement, in the route, after the caller is authenticated (see
    session_scope).

    Making a session does no I/O, so it is made here, on the event loop; ending it
    goes to the thread pool only when the request used it."""
    writes = request.method not in ("GET", "HEAD", "OPTIONS")
    session = new_session(request.app.state.sessions, immediate=writes)
    try:
        yield session
    except BaseException:
        await _end(session, session.rollback)
        raise
    await _end(session, session.commit)


async def _end(session: Session, outcome: Callable[[], None]) -> None:
    """Commit or roll back (``outcome``) and close; a session that never began a
    transaction has nothing to end and holds no connection."""
    if not session.in_transaction():
        session.close()
        return

    def end() -> None:
        try:
            outcome()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    await run_in_threadpool(end)


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


# scope="function": commit before the response is sent. FastAPI's default ("request")
# ends the dependency after the response has gone out, so a client that polls the
# moment it reads 202 could miss its own job (tests/api/test_read_your_writes.py).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_owner(request: Request, session: SessionDep) -> str:
    """The caller's identity: the owner of its API key when auth is on. Without keys
    (the embedded default on loopback) everything belongs to the local user. Writes to
    the API were authenticated before their body was read (app/security/guard.py); a
    key seen in the last seconds is answered from memory; otherwise the request's own
    session reads it, in the thread pool."""
    known: str | None = getattr(request.state, OWNER_STATE, None)
    if known is not None:
        return known
    owner = cached_owner(request)
    if owner is not None:
        return owner
    return await run_in_threadpool(owner_of, request, session)


async def get_poll_owner(request: Request) -> str:
    """get_owner for the status poll, which has no request session (its one read runs
    on a pooled connection, app/db/repositories/jobs.py status_row): a session
    dependency would cost the poll more than its read. Keys off or a cached key need
    no database; a key not in the cache is read on a short session of its own."""
    owner = cached_owner(request)
    if owner is not None:
        return owner
    return await run_in_threadpool(owner_before_session, request)


async def get_optional_owner(request: Request, session: SessionDep) -> str | None:
    """The dashboard's reader: like get_owner, but None (sign in) instead of 401."""
    owner = cached_owner(request)
    if owner is not None:
        return owner
    return await run_in_threadpool(optional_owner, request, session)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StorageDep = Annotated[Storage, Depends(get_storage)]
OwnerDep = Annotated[str, Depends(get_owner)]
PollOwnerDep = Annotated[str, Depends(get_poll_owner)]
OptionalOwnerDep = Annotated[str | None, Depends(get_optional_owner)]


def limit_submissions(request: Request, owner: OwnerDep) -> None:
    """429 when the caller is over AUXSEL_RATE_SUBMIT_PER_MIN."""
    enforce(request, owner, "submit")


def limit_uploads(request: Request, owner: OwnerDep) -> None:
    """429 when the caller is over AUXSEL_RATE_UPLOAD_PER_MIN (before the body is read)."""
    enforce(request, owner, "upload")
