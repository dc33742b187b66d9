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
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import ApiKey, utcnow
from app.db.repositories import api_keys as repo
from app.db.session import write_transaction
from app.errors import ProblemError
from app.security import sessions as web_sessions
from app.security.appstate import per_app
from app.settings import Settings

log = logging.getLogger("auxsel.auth")
PREFIX = "auxsel_"
USE_INTERVAL_S = 60.0  # last_used_at is written at most this often per key
_state_lock = threading.Lock()  # guards the per-database key caches made lazily


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
        repo.add(session, key_id, owner.strip(), salt, _hash(salt, secret), utcnow())
    return CreatedKey(key_id, owner.strip(), f"{PREFIX}{key_id}_{secret}")


def list_keys(session: Session) -> list[ApiKey]:
    return repo.all_keys(session)


def revoke_key(sessions: sessionmaker[Session], key_id: str) -> bool:
    with write_transaction(sessions) as session:
        revoked = repo.revoke(session, key_id, utcnow())
    cache = _CACHES.get(sessions)
    if cache is not None:  # this process forgets it now; others within AUTH_CACHE_S
        cache.forget(key_id)
    return revoked


class KeyCache:
    """Owners of keys that verified, for ``ttl_s`` seconds, so that a status poll costs
    one database read (its job), not two. Only keys that verified are kept (a flood of
    wrong keys cannot grow it) and at most ``max_entries``; entries are found by the
    SHA-256 of the whole presented key, so a different secret never matches. A key
    revoked in this process is forgotten at once; one revoked elsewhere (``auxsel keys
    revoke``) stops working within ``ttl_s`` (AUXSEL_AUTH_CACHE_S; 0 turns it off)."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[bytes, tuple[str, str, float]] = {}  # digest: id, owner, until
        self._lock = threading.Lock()

    @staticmethod
    def _digest(presented: str) -> bytes:
        return hashlib.sha256(presented.encode()).digest()

    def get(self, presented: str) -> str | None:
        if self.ttl_s <= 0:
            return None
        entry = self._entries.get(self._digest(presented))
        if entry is None or entry[2] < self.clock():
            return None
        return entry[1]

    def put(self, presented: str, owner: str) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = self.clock()
                self._entries = {k: v for k, v in self._entries.items() if v[2] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            until = self.clock() + self.ttl_s
            self._entries[self._digest(presented)] = (key_id_of(presented), owner, until)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[0] != key_id}


# One cache per database (sessionmaker), so that revoke_key reaches it.
_CACHES: weakref.WeakKeyDictionary[sessionmaker[Session], KeyCache] = weakref.WeakKeyDictionary()


def key_cache_of(sessions: sessionmaker[Session], ttl_s: float) -> KeyCache:
    cache = _CACHES.get(sessions)
    if cache is None:
        with _state_lock:
            cache = _CACHES.get(sessions)
            if cache is None:
                cache = _CACHES[sessions] = KeyCache(ttl_s)
    return cache


def key_id_of(presented: str) -> str:
    return presented[len(PREFIX) :].split("_", 1)[0]


def verify(session: Session, presented: str) -> str | None:
    """The owner of a valid, unrevoked key; None otherwise."""
    if not presented.startswith(PREFIX):
        return None
    try:
        key_id, secret = presented[len(PREFIX) :].split("_", 1)
    except ValueError:
        return None
    row = repo.get(session, key_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(row.salt, secret)):
        return None
    return row.owner


def mark_used(sessions: sessionmaker[Session], key_id: str) -> None:
    """Record that a key was used (only if its last_used_at is a minute old or more).
    Bookkeeping only: a busy or unreachable database skips it, never a request."""
    now = utcnow()
    stale = now - timedelta(seconds=USE_INTERVAL_S)
    try:
        with write_transaction(sessions) as session:
            repo.mark_used(session, key_id, now, older_than=stale)
    except (OperationalError, OSError):
        log.info("could not record the use of key %s (database busy or down)", key_id)


class KeyUse:
    """When keys were used, kept off the request path: at most once a minute per key
    and process a short-lived thread writes ``last_used_at`` on its own connection. A
    request never writes it, so it never waits for a write lock (on SQLite the request
    may itself hold it: waiting there was a self-deadlock until the busy timeout)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        interval_s: float = USE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, key_id: str) -> threading.Thread | None:
        """Note a use of ``key_id``; the thread that records it, if one was started."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key_id)
            if last is not None and now - last < self.interval_s:
                return None
            self._last[key_id] = now
        thread = threading.Thread(
            target=mark_used, args=(self.sessions, key_id), name="auxsel-key-use", daemon=True
        )
        thread.start()
        return thread


def key_use_of(request: Request) -> KeyUse:
    """The app's key-use recorder (one per application object, made on first use)."""
    return per_app(request, "key_use", lambda: KeyUse(request.app.state.sessions))


def presented_key(request: Request) -> str | None:
    """The bearer key of the request. (The dashboard's cookie holds a session id, not a
    key: see app/security/sessions.py.)"""
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


def cached_owner(request: Request) -> str | None:
    """The caller's owner when it is known without a database read (keys off, or a key
    that verified in the last AUXSEL_AUTH_CACHE_S seconds); None otherwise."""
    settings: Settings = request.app.state.settings
    if not auth_enabled(settings):
        return "local"
    key = presented_key(request)
    if key is None:
        return None
    owner = key_cache_of(request.app.state.sessions, settings.auth_cache_s).get(key)
    if owner is not None:
        key_use_of(request).touch(key_id_of(key))
    return owner


def _key_owner(request: Request, session: Session, key: str) -> str | None:
    """The owner of a presented bearer key (from the cache, else read on ``session``);
    None when it is not valid. Its use is recorded off the request path."""
    settings: Settings = request.app.state.settings
    cache = key_cache_of(request.app.state.sessions, settings.auth_cache_s)
    owner = cache.get(key)
    if owner is None:
        owner = verify(session, key)
        if owner is None:
            return None
        cache.put(key, owner)
    key_use_of(request).touch(key_id_of(key))
    return owner


def optional_owner(request: Request, session: Session) -> str | None:
    """Who is asking, read on the request's ``session``: ``local`` when keys are off,
    else the owner of the bearer key or of the dashboard's sign-in cookie; None when
    neither is valid (the dashboard then asks to sign in). A state change made with
    the cookie needs its CSRF token (403 without)."""
    if not auth_enabled(request.app.state.settings):
        return "local"
    key = presented_key(request)
    if key is None:
        return web_sessions.cookie_owner(request, session)
    return _key_owner(request, session, key)


def owner_of(request: Request, session: Session) -> str:
    """The caller's owner name (see optional_owner); 401 without a valid key or
    sign-in. ``session`` is the request's own (app/api/deps.py): no transaction of the
    request's holds a write lock yet, and the key-use bookkeeping runs on its own
    thread, so nothing here waits for another connection of this request."""
    owner = optional_owner(request, session)
    if owner is not None:
        return owner
    if presented_key(request) is not None:
        raise unauthorized("The API key is not valid or was revoked.")
    raise unauthorized(
        "This server needs an API key: send 'Authorization: Bearer <key>' "
        "(create one with 'auxsel keys create --owner NAME')."
    )


def owner_before_session(request: Request) -> str:
    """owner_of where the request has no session of its own: the guard's check of an
    API write before its body is read (no route, so no dependency, has run yet), and
    the status poll, whose one read runs on a pooled connection without a session. A
    short read session of its own, holding no lock; a key in the cache needs none."""
    owner = cached_owner(request)
    if owner is not None:
        return owner
    with request.app.state.sessions() as session:
        return owner_of(request, session)
