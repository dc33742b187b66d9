"""Database engine and sessions. SQLite runs in WAL mode with a busy timeout and foreign
keys on; write transactions that must not race (job claims) use BEGIN IMMEDIATE."""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connections kept open per process. The API runs sync routes in a pool of 40 threads:
# a smaller pool closed and reopened connections under load (each reopened SQLite
# connection re-ran its PRAGMAs and re-read the schema; a PostgreSQL one forks a
# backend), which cost more than the status poll's query. PostgreSQL's default of 100
# connections still allows three API processes with full pools plus workers.
SQLITE_POOL = {"pool_size": 40, "max_overflow": 20}
POSTGRES_POOL = {"pool_size": 10, "max_overflow": 20}


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **SQLITE_POOL
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    # Connections that died with the server (a PostgreSQL restart) are replaced.
    return create_engine(url, pool_pre_ping=True, **POSTGRES_POOL)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


_IMMEDIATE: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def _immediate(engine: Engine) -> Engine:
    """``engine`` whose transactions begin with BEGIN IMMEDIATE (same pool)."""
    bound = _IMMEDIATE.get(engine)
    if bound is None:
        bound = _IMMEDIATE[engine] = engine.execution_options(sqlite_begin="IMMEDIATE")
    return bound


def new_session(factory: sessionmaker[Session], *, immediate: bool = False) -> Session:
    """A new session (no I/O until its first statement); ``immediate``: see
    session_scope."""
    bind = factory.kw.get("bind")
    if immediate and isinstance(bind, Engine) and bind.dialect.name == "sqlite":
        return factory(bind=_immediate(bind))
    return factory()


@contextmanager
def session_scope(factory: sessionmaker[Session], *, immediate: bool = False) -> Iterator[Session]:
    """A session committed on success and rolled back on error. ``immediate`` makes
    SQLite's transaction a write transaction from its first statement (BEGIN IMMEDIATE):
    a read-then-write transaction that meets another writer in between would otherwise
    fail at once instead of waiting. The lock is taken lazily, at the first statement,
    not when the session is made: a request's session exists before its caller is
    authenticated, and nothing may hold the write lock while that (or anything else
    that could wait on another connection) runs."""
    with new_session(factory, immediate=immediate) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def write_transaction(factory: sessionmaker[Session]) -> AbstractContextManager[Session]:
    """A write transaction (see session_scope)."""
    return session_scope(factory, immediate=True)
