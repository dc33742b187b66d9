"""Retrying database work through transient failures (a PostgreSQL restart, a dropped
connection, SQLite's busy lock) with capped exponential backoff.

Only work that is safe to repeat goes through here: the worker's writes are fenced by
the job's attempt number and probe runs are stored with ON CONFLICT DO NOTHING, so a
write whose COMMIT was lost with the connection can be sent again without harm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger("auxsel.retry")

T = TypeVar("T")


class DatabaseUnavailable(Exception):  # noqa: N818 - an event, not a programming error
    """The database stayed unreachable for the whole retry budget."""


# SQLSTATEs that end the session, not the statement: the server closed an idle claim
# transaction (repositories/jobs.py, CLAIM_IDLE_TIMEOUT_MS); the next try reconnects.
SESSION_ENDED = frozenset({"25P03"})  # idle_in_transaction_session_timeout


def is_transient(exc: BaseException) -> bool:
    """A failure of the connection or the server, not of the statement."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return bool(exc.connection_invalidated) or (
        getattr(exc.orig, "sqlstate", None) in SESSION_ENDED
    )


def retry_transient(
    fn: Callable[[], T],
    *,
    what: str,
    budget_s: float,
    first_delay_s: float = 0.1,
    max_delay_s: float = 5.0,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient database errors with capped
    exponential backoff for at most ``budget_s`` seconds; then raise
    DatabaseUnavailable. ``on_retry`` runs before each repeat (e.g. to note that the
    previous COMMIT may have landed). Non-transient errors propagate at once."""
    deadline = time.monotonic() + budget_s
    delay = first_delay_s
    failures = 0
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            failures += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseUnavailable(
                    f"{what}: the database stayed unreachable for {budget_s:.0f} s "
                    f"({exc.__class__.__name__})"
                ) from exc
            log.warning(
                "%s: transient database error (%s), retry %d in %.1f s",
                what,
                exc.__class__.__name__,
                failures,
                min(delay, left),
            )
            time.sleep(min(delay, left))
            delay = min(delay * 2, max_delay_s)
            if on_retry is not None:
                on_retry()
            continue
        if failures:
            log.info("%s: succeeded after %d transient error(s)", what, failures)
        return result
