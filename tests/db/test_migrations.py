"""The schema comes from Alembic: upgrade from empty to head and back, on both databases."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from app.db import migrate
from app.db.models import Base

TABLES = {"datasets", "jobs", "probe_runs", "candidate_scores", "idempotency_keys"}


def _tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_to_head_and_downgrade_to_base(db_url):
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current(db_url) is not None
    assert set(Base.metadata.tables) <= _tables(db_url)
    assert _tables(db_url) >= TABLES
    engine = create_engine(db_url)
    columns = {c["name"] for c in inspect(engine).get_columns("jobs")}
    uniques = {u["name"] for u in inspect(engine).get_unique_constraints("probe_runs")}
    engine.dispose()
    assert {"attempt", "lease_expires_at", "cancel_requested", "lost_count"} <= columns
    assert "uq_probe_runs_job_key" in uniques
    migrate.downgrade(db_url, "base")
    assert migrate.current(db_url) is None
    assert not (TABLES & _tables(db_url))
    migrate.upgrade(db_url)  # and up again
    assert _tables(db_url) >= TABLES


def test_models_match_migrations(db_url):
    """Autogenerate finds nothing to do: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
