"""training and auxiliary-task loss curves per probe run

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:45:00

``probe_runs.train_curves`` (JSON: ``{"main": [...], "aux": [...]}``) holds each probe's
training loss per epoch for the main task and for its auxiliary task(s), recorded by the
engine as it trains (the mean over each epoch's minibatches). Null for the runs already
stored: the job page then offers no training curves for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("probe_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("train_curves", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probe_runs", schema=None) as batch_op:
        batch_op.drop_column("train_curves")
