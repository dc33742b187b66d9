"""the racing schedule of the jobs already stored

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 20:30:00

Racing's error rate is now split over looks by a spending schedule (``race_spending``,
default ``obf``); before, it was split evenly (Bonferroni). A job stored before this
revision raced, and must resume, under Bonferroni: its spec's budget gets
``race_spending: "bonferroni"`` (a data migration; no column changes). Down again
removes the key, which the older code's strict budget model would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
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
    _rewrite_budgets(
        lambda b: None if "race_spending" in b else {**b, "race_spending": "bonferroni"}
    )


def downgrade() -> None:
    _rewrite_budgets(
        lambda b: {k: v for k, v in b.items() if k != "race_spending"}
        if "race_spending" in b
        else None
    )
