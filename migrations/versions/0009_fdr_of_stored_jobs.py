"""the q-value method of the jobs already stored

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 06:00:00

A verdict's q-value is now Storey's adaptive Benjamini-Hochberg by default (``fdr``,
default ``storey``); before, it was Benjamini-Hochberg's. Racing settles a candidate on
its verdict, so a job stored before this revision must resume, and rank, as it ran: its
spec's budget gets ``fdr: "bh"`` (a data migration, the way 0008 did for the spending
schedule; no column changes). Down again removes the key, which the older code's strict
budget model would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_jobs = sa.table("jobs", sa.column("id", sa.String()), sa.column("spec", sa.JSON()))


def _rewrite_budgets(change: Callable[[dict[str, object]], dict[str, object] | None]) -> None:
    """Apply ``change`` to each stored job's budget (``None``: leave the job as it is)."""
    bind = op.get_bind()
    for job_id, spec in bind.execute(sa.select(_jobs.c.id, _jobs.c.spec)).all():
        spec = json.loads(spec) if isinstance(spec, str | bytes) else spec
        if not isinstance(spec, dict):
            continue
        budget = spec.get("budget")
        new = change(budget if isinstance(budget, dict) else {})
        if new is not None:
            bind.execute(
                _jobs.update().where(_jobs.c.id == job_id).values(spec={**spec, "budget": new})
            )


def upgrade() -> None:
    _rewrite_budgets(lambda b: None if "fdr" in b else {**b, "fdr": "bh"})


def downgrade() -> None:
    _rewrite_budgets(lambda b: {k: v for k, v in b.items() if k != "fdr"} if "fdr" in b else None)
