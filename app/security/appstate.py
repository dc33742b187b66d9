"""Objects kept once per application object on ``app.state``, made on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")
_lock = threading.Lock()


def per_app(request: Request, name: str, make: Callable[[], T]) -> T:
    """``app.state.<name>`` of the request's application, made with ``make()`` by the
    first request that needs it (checked again under a lock, so it is made once)."""
    state = request.app.state
    value: T | None = getattr(state, name, None)
    if value is None:
        with _lock:
            value = getattr(state, name, None)
            if value is None:
                value = make()
                setattr(state, name, value)
    return value
