"""column roles of data sets; the input columns of jobs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 13:30:00

``datasets.roles`` stays null for data sets uploaded before roles: the app infers their
roles from the stored profile when it reads them (app/data/roles.py). ``jobs.inputs`` is
filled for the jobs already stored with the columns they trained on under the old rule
(the spec's ``features``, else every column of the data set but the job's own tasks),
so their pages keep showing what they used; a job whose data set is gone keeps null.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _loaded(value: object) -> object:
    return json.loads(value) if isinstance(value, str | bytes) else value


def old_inputs(spec: dict[str, object], profile: list[dict[str, object]]) -> list[str]:
    """The inputs a job stored before roles trained on (engine.prepare's old default)."""
    features = spec.get("features")
    if isinstance(features, list):
        return [str(f) for f in features]
    main = spec.get("main_task")
    tasks = {str(main.get("column"))} if isinstance(main, dict) else set()
    candidates = spec.get("candidates")
    for c in candidates if isinstance(candidates, list) else []:
        if isinstance(c, dict) and c.get("dataset_id") in (None, spec.get("dataset_id")):
            tasks.add(str(c.get("column")))
    return [str(col["name"]) for col in profile if str(col["name"]) not in tasks]


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roles", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs", sa.JSON(), nullable=True))

    bind = op.get_bind()
    datasets = sa.table(
        "datasets", sa.column("id", sa.String()), sa.column("profile", sa.JSON())
    )
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String()),
        sa.column("dataset_id", sa.String()),
        sa.column("spec", sa.JSON()),
        sa.column("inputs", sa.JSON()),
    )
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.spec, datasets.c.profile).join(
            datasets, datasets.c.id == jobs.c.dataset_id
        )
    ).all()
    for job_id, spec, profile in rows:
        spec, profile = _loaded(spec), _loaded(profile)
        if isinstance(spec, dict) and isinstance(profile, list):
            bind.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(inputs=old_inputs(spec, profile))
            )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("inputs")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("roles")
