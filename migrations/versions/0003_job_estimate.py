"""job cost estimate, indexes of the fair claim

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("estimate", sa.JSON(), nullable=True))
        batch_op.create_index("ix_jobs_owner_status", ["owner", "status"], unique=False)
        batch_op.create_index("ix_jobs_owner_started_at", ["owner", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_owner_started_at")
        batch_op.drop_index("ix_jobs_owner_status")
        batch_op.drop_column("estimate")
