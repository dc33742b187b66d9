"""A job's status: the one vocabulary the API, the database, the worker, the dashboard
and the CLI spell it with. Light on purpose (no SQLAlchemy): the CLI imports it."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """queued → running → succeeded | failed | canceled (a lost lease re-queues)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


ACTIVE: frozenset[JobStatus] = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""Not finished: waiting for a worker or being worked on."""
FINISHED: frozenset[JobStatus] = frozenset(JobStatus) - ACTIVE
"""Ended for good; a finished job is never claimed, cancelled or re-queued."""
