"""tags and a note per job

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:30:00

``jobs.tags`` (a JSON list of strings) and ``jobs.note`` (text) are the job's metadata,
kept out of its spec: the spec is what trains (and what a clone copies), the tags and
note are what its owner says about it and can change at any time. Both stay null for
the jobs already stored; the API shows null as no tags and an empty note.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("tags")
