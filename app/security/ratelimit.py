"""Per-owner rate limits on the expensive requests: job submissions and uploads.

A token bucket per (owner, action) in this process: capacity = the per-minute rate
(so a client may burst up to a minute's worth), refilled continuously. Over the limit,
the request is refused with 429 problem+json and ``Retry-After`` (whole seconds until a
token is back) before any of its body is read.

In-process on purpose: checking a limit costs no database write, and what it protects
is this replica's CPU, disk and the shared queue. With several API replicas each
replica limits separately, so an owner can get up to (replicas x rate) in total; put
the limit at the load balancer, or divide the setting by the replica count, where that
matters (docs/security.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from app.errors import ProblemError
from app.security.appstate import per_app
from app.settings import Settings

Action = Literal["submit", "upload"]

SETTING = {"submit": "AUXSEL_RATE_SUBMIT_PER_MIN", "upload": "AUXSEL_RATE_UPLOAD_PER_MIN"}
WHAT = {"submit": "job submissions", "upload": "uploads"}


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by (owner, action); thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, owner: str, action: str, per_min: float) -> float:
        """Take one token. Returns 0 when allowed, else the seconds until one is back.
        A rate of 0 or less means no limit."""
        if per_min <= 0:
            return 0.0
        capacity = max(per_min, 1.0)
        rate = per_min / 60.0  # tokens per second
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((owner, action))
            if bucket is None:
                bucket = self._buckets[(owner, action)] = _Bucket(capacity, now)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    def __len__(self) -> int:
        return len(self._buckets)


def limiter_of(request: Request) -> RateLimiter:
    """The app's limiter (one per application object, created on first use)."""
    return per_app(request, "rate_limiter", RateLimiter)


def rate_for(settings: Settings, action: Action) -> float:
    return float(getattr(settings, f"rate_{action}_per_min", 0.0))


def enforce(request: Request, owner: str, action: Action) -> None:
    """Raise a 429 ProblemError when ``owner`` is over its ``action`` rate."""
    settings: Settings = request.app.state.settings
    per_min = rate_for(settings, action)
    wait = limiter_of(request).take(owner, action, per_min)
    if wait <= 0:
        return
    retry_after = max(1, math.ceil(wait))
    raise ProblemError(
        429,
        "Too many requests",
        f"Rate limit of {per_min:g} {WHAT[action]} per minute reached for this API key; "
        f"retry in {retry_after} s.",
        type_="rate-limited",
        errors=[
            {
                "field": "rate",
                "message": f"The limit is the {SETTING[action]} setting of the server.",
            }
        ],
        headers={"Retry-After": str(retry_after)},
    )
