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


def test_column_roles_migration_keeps_old_jobs_inputs_and_infers_old_roles(db_url):
    """0005 adds data set roles (null: inferred on read from the stored profile) and job
    inputs, filled for jobs already stored with what they trained on under the old rule
    (every column of the data set but the job's tasks, or its `features`)."""
    import json

    from sqlalchemy import text

    from app.data.roles import roles_of

    migrate.upgrade(db_url, "0004")
    profile = [
        {"name": n, "dtype": "number", "missing": 0, "unique": 50, "kind": "regression"}
        for n in ("x0", "y", "a", "b")
    ]
    spec = {"dataset_id": "ds_1", "main_task": {"column": "y"}, "candidates": [{"column": "a"}]}
    named = {**spec, "features": ["x0"]}
    engine = create_engine(db_url)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO datasets (id, owner, name, filename, format, sha256, size_bytes,"
                " storage_key, rows, profile, created_at) VALUES ('ds_1', 'o', 'd', 'd.csv',"
                " 'csv', 'h', 1, 'k', 50, :profile, '2026-01-01')"
            ),
            {"profile": json.dumps(profile)},
        )
        for job_id, job_spec in (("job_1", spec), ("job_2", named)):
            db.execute(
                text(
                    "INSERT INTO jobs (id, owner, name, dataset_id, spec, status, progress_done,"
                    " progress_total, attempt, lost_count, cancel_requested, created_at)"
                    " VALUES (:id, 'o', 'j', 'ds_1', :spec, 'succeeded', 0, 0, 1, 0, false,"
                    " '2026-01-01')"
                ),
                {"id": job_id, "spec": json.dumps(job_spec)},
            )
    migrate.upgrade(db_url)
    with engine.connect() as db:
        inputs = dict(db.execute(text("SELECT id, inputs FROM jobs")).all())
        roles = db.execute(text("SELECT roles FROM datasets")).scalar()
    loaded = {k: json.loads(v) if isinstance(v, str) else v for k, v in inputs.items()}
    assert loaded == {"job_1": ["x0", "b"], "job_2": ["x0"]}
    assert roles is None
    inferred = roles_of(None, profile, 50)
    assert inferred["y"]["role"] == "label"  # by its name: not an input of new jobs
    assert inferred["x0"]["role"] == "feature"
    migrate.downgrade(db_url, "0004")
    assert "inputs" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
    assert "roles" not in {c["name"] for c in inspect(engine).get_columns("datasets")}
    engine.dispose()


def test_job_tags_note_migration_keeps_old_jobs_and_goes_down(db_url):
    """0006 adds jobs.tags and jobs.note, null for the jobs already stored (shown as no
    tags and an empty note); down again drops them and keeps the jobs."""
    import json

    from sqlalchemy import text

    migrate.upgrade(db_url, "0005")
    engine = create_engine(db_url)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO jobs (id, owner, name, spec, status, progress_done,"
                " progress_total, attempt, lost_count, cancel_requested, created_at)"
                " VALUES ('job_1', 'o', 'j', :spec, 'queued', 0, 0, 0, 0, false, '2026-01-01')"
            ),
            {"spec": json.dumps({"dataset_id": "ds_1"})},
        )
    migrate.upgrade(db_url, "0006")
    assert migrate.current(db_url) == "0006"
    with engine.connect() as db:
        assert db.execute(text("SELECT tags, note FROM jobs")).one() == (None, None)
    with engine.begin() as db:
        db.execute(text("UPDATE jobs SET tags = :t, note = 'n'"), {"t": json.dumps(["a"])})
    migrate.downgrade(db_url, "0005")
    columns = {c["name"] for c in inspect(engine).get_columns("jobs")}
    assert not {"tags", "note"} & columns
    with engine.connect() as db:
        assert db.execute(text("SELECT id FROM jobs")).scalars().all() == ["job_1"]
    engine.dispose()


def test_train_curves_migration_keeps_old_runs_without_curves(db_url):
    """0007 adds probe_runs.train_curves, null for the runs already stored (the API then
    lists empty training curves); down again drops it and keeps the runs."""
    import json

    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from app.db.models import ProbeRunRecord
    from app.jobs.results import probe_run

    migrate.upgrade(db_url, "0006")
    engine = create_engine(db_url)
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO jobs (id, owner, name, spec, status, progress_done,"
                " progress_total, attempt, lost_count, cancel_requested, created_at)"
                " VALUES ('job_1', 'o', 'j', :spec, 'running', 0, 0, 1, 0, false, '2026-01-01')"
            ),
            {"spec": json.dumps({"dataset_id": "ds_1"})},
        )
        db.execute(
            text(
                "INSERT INTO probe_runs (job_id, probe_key, replicate, aux, metrics, curve,"
                " best_epoch, epochs, attempt, created_at) VALUES ('job_1', 'r0:base', 0,"
                " '[]', :metrics, '[0.5]', 0, 1, 1, '2026-01-01')"
            ),
            {"metrics": json.dumps({"loss": 0.5})},
        )
    migrate.upgrade(db_url, "0007")
    assert migrate.current(db_url) == "0007"
    with engine.connect() as db:
        assert db.execute(text("SELECT train_curves FROM probe_runs")).scalar_one() is None
    with Session(engine) as session:
        old = probe_run(session.scalars(select(ProbeRunRecord)).one())  # resumes as before
    assert (old.curve, old.train_curve, old.aux_curve) == ((0.5,), (), ())
    migrate.downgrade(db_url, "0006")
    assert "train_curves" not in {c["name"] for c in inspect(engine).get_columns("probe_runs")}
    with engine.connect() as db:
        assert db.execute(text("SELECT probe_key FROM probe_runs")).scalars().all() == ["r0:base"]
    engine.dispose()


STORED_SPEC = {"dataset_id": "ds_1", "main_task": {"column": "y"}, "candidates": ["a"]}


def _stored_jobs(db_url: str, budget: dict):
    """Two running jobs in the database at its current revision — job_1 with ``budget``,
    job_2 with no budget stored — and a function reading every job's stored budget."""
    import json

    from sqlalchemy import text

    db_engine = create_engine(db_url)
    insert = text(
        "INSERT INTO jobs (id, owner, name, spec, status, progress_done, progress_total,"
        " attempt, lost_count, cancel_requested, created_at) VALUES (:id, 'o', 'j', :spec,"
        " 'running', 0, 0, 1, 0, false, '2026-01-01')"
    )
    with db_engine.begin() as db:
        db.execute(insert, {"id": "job_1", "spec": json.dumps({**STORED_SPEC, "budget": budget})})
        db.execute(insert, {"id": "job_2", "spec": json.dumps(STORED_SPEC)})

    def budgets() -> dict[str, dict]:
        with db_engine.connect() as db:
            rows = db.execute(text("SELECT id, spec FROM jobs ORDER BY id")).all()
        return {i: (json.loads(s) if isinstance(s, str) else s).get("budget") for i, s in rows}

    return db_engine, budgets


def test_race_spending_migration_keeps_stored_jobs_racing_as_they_ran(db_url):
    """0008: the jobs stored before spending schedules raced under Bonferroni over looks;
    their budgets say so after the upgrade, and the app reads them back so (a resumed
    job takes the rounds it took). A job submitted afterwards gets the default; down
    again removes the key and keeps every other budget field."""
    import engine
    from app.jobs.spec import JobSpec

    migrate.upgrade(db_url, "0007")
    budget = {"seeds": 4, "max_replicates": 12, "race_step": 4}
    db_engine, budgets = _stored_jobs(db_url, budget)
    migrate.upgrade(db_url, "0008")
    assert migrate.current(db_url) == "0008"
    after = budgets()
    assert after["job_1"] == {**budget, "race_spending": "bonferroni"}
    assert after["job_2"] == {"race_spending": "bonferroni"}
    stored = JobSpec.model_validate({**STORED_SPEC, "budget": after["job_1"]})
    assert stored.budget.race_spending == "bonferroni"
    assert JobSpec.model_validate(STORED_SPEC).budget.race_spending == engine.Budget().race_spending
    assert engine.Budget().race_spending != "bonferroni"
    migrate.downgrade(db_url, "0007")
    assert budgets() == {"job_1": budget, "job_2": {}}
    db_engine.dispose()


def test_fdr_migration_keeps_stored_jobs_gated_as_they_ran(db_url):
    """0009: the jobs stored before the q-value method was an option were gated by
    Benjamini-Hochberg; their budgets say so after the upgrade (racing settles on
    verdicts, so a resumed job takes the rounds it took), a job submitted afterwards
    gets the default (Storey's), and down again removes only that key."""
    import engine
    from app.jobs.spec import JobSpec

    migrate.upgrade(db_url, "0008")
    budget = {"seeds": 4, "max_replicates": 12, "race_spending": "obf"}
    db_engine, budgets = _stored_jobs(db_url, budget)
    migrate.upgrade(db_url, "0009")
    assert migrate.current(db_url) == "0009"
    after = budgets()
    assert after["job_1"] == {**budget, "fdr": "bh"}
    assert after["job_2"] == {"fdr": "bh"}
    assert JobSpec.model_validate({**STORED_SPEC, "budget": after["job_1"]}).budget.fdr == "bh"
    assert JobSpec.model_validate(STORED_SPEC).budget.fdr == engine.Budget().fdr == "storey"
    migrate.downgrade(db_url, "0008")
    assert budgets() == {"job_1": budget, "job_2": {}}
    db_engine.dispose()
