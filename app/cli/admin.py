"""The admin commands: run the service (serve, worker, demo) and manage its database
and API keys (db, keys). They read the server's settings (app/settings.py); the
commands that talk to a running server over HTTP are in app/cli/remote.py."""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, TypedDict

import typer
from rich.table import Table

from app.cli.views import console, follow, ranking_table
from app.jobs.status import JobStatus
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.orm import Session, sessionmaker

# alembic and uvicorn are imported inside the commands that need them: the client
# commands (submit, status, ranking, jobs) then start in half the time.

db_cli = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
keys_cli = typer.Typer(
    help="API keys (needed whenever the server is not on loopback).", no_args_is_help=True
)

log = logging.getLogger("auxsel.cli")


def _configure_logging(settings: Settings) -> None:
    from app.logging_setup import configure

    configure(settings.log_level, settings.log_format)


def _settings(host: str | None = None, port: int | None = None) -> Settings:
    settings = get_settings()
    updates: dict[str, object] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    return settings.model_copy(update=updates) if updates else settings


def serve(
    host: str | None = typer.Option(None, help="Bind address (AUXSEL_HOST)."),
    port: int | None = typer.Option(None, help="Port (AUXSEL_PORT)."),
    worker: bool | None = typer.Option(
        None, help="Run a worker inside the server process (AUXSEL_SERVE_WORKER, default on)."
    ),
    workers: int | None = typer.Option(
        None,
        min=1,
        help="API processes (AUXSEL_SERVE_WORKERS, default 1). More than 1 needs "
        "PostgreSQL; with --worker each process runs its own worker.",
    ),
) -> None:
    """Run the API (and, by default, an in-process worker)."""
    import uvicorn

    settings = _settings(host, port)
    settings = settings.model_copy(
        update={
            "serve_worker": settings.serve_worker if worker is None else worker,
            "serve_workers": settings.serve_workers if workers is None else workers,
        }
    )
    _configure_logging(settings)
    from app.logging_setup import uvicorn_log_config
    from app.server import uvicorn_options

    processes: _Processes = {}
    if settings.serve_workers > 1:
        processes = {"factory": True, "workers": settings.serve_workers}
        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
            # uvicorn restarts a process that misses its health check; a busy machine
            # (a process starting, training beside it) must not count as hung.
            processes["timeout_worker_healthcheck"] = 60
    uvicorn.run(
        _serve_target(settings),
        **processes,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=uvicorn_log_config(settings.log_format),
        **uvicorn_options(settings),
    )


class _Processes(TypedDict, total=False):
    factory: bool
    workers: int
    timeout_worker_healthcheck: int


def _serve_target(settings: Settings) -> FastAPI | str:
    """The app for one process; for N processes, the import string of a factory that
    each of them calls (with the settings handed down in AUXSEL_* variables)."""
    from app.main import create_app

    if settings.serve_workers == 1:
        return create_app(settings, run_worker=settings.serve_worker)
    if settings.is_sqlite:
        typer.secho(
            f"--workers {settings.serve_workers} needs PostgreSQL (AUXSEL_DATABASE_URL): "
            "SQLite has one writer and a cache per process, and the embedded default is "
            "one process by design. Use --workers 1, or PostgreSQL.",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    if settings.serve_worker:
        log.warning(
            "each of the %d API processes runs its own worker; for training capacity run "
            "'auxsel serve --no-worker' beside separate 'auxsel worker' processes",
            settings.serve_workers,
        )
    from app.db import migrate

    migrate.upgrade(settings.resolved_database_url)  # once, before the processes race
    os.environ.update(
        {
            "AUXSEL_HOST": settings.host,
            "AUXSEL_PORT": str(settings.port),
            "AUXSEL_SERVE_WORKER": "true" if settings.serve_worker else "false",
        }
    )
    return "app.cli.admin:served_app"


def served_app() -> FastAPI:
    """One API process of ``auxsel serve --workers N`` (a uvicorn app factory)."""
    from app.main import create_app

    settings = get_settings()
    _configure_logging(settings)
    return create_app(settings, run_worker=settings.serve_worker)


def worker_command() -> None:
    """Run a standalone worker: claim queued jobs until SIGTERM."""
    from app.data.storage import make_storage
    from app.jobs.executors import ExecutorUnavailableError
    from app.jobs.worker import Worker

    settings = get_settings()
    _configure_logging(settings)
    try:
        worker = Worker(settings, _sessions(), make_storage(settings.uploads_dir))
    except ExecutorUnavailableError as exc:
        typer.secho(str(exc), fg="red", err=True)  # not rich: "[ray]" is no markup
        raise typer.Exit(2) from exc
    worker.install_signal_handlers()
    if settings.metrics_port:
        from app.metrics import serve_worker_metrics

        serve_worker_metrics(settings.metrics_host, settings.metrics_port)
    log.info(
        "worker %s on %s (executor %s)",
        worker.worker_id,
        _redact(settings.resolved_database_url),
        settings.executor,
    )
    worker.run_forever()


@db_cli.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database up (to head by default)."""
    from app.db import migrate

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url, revision)
    console.print(f"database at {migrate.current(settings.resolved_database_url)}")


@db_cli.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Migrate the database down."""
    from app.db import migrate

    settings = get_settings()
    migrate.downgrade(settings.resolved_database_url, revision)
    console.print(f"database at {migrate.current(settings.resolved_database_url)}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's schema revision."""
    from app.db import migrate

    console.print(migrate.current(get_settings().resolved_database_url) or "empty")


def _sessions() -> sessionmaker[Session]:
    from app.db import migrate
    from app.db.session import make_engine, make_sessionmaker

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)
    return make_sessionmaker(make_engine(settings.resolved_database_url))


@keys_cli.command("create")
def keys_create(owner: str = typer.Option(..., help="Who the key belongs to.")) -> None:
    """Create a key and print it once (only a salted hash is stored)."""
    from app.security.auth import create_key

    created = create_key(_sessions(), owner)
    console.print(
        f"key id {created.id} for owner {created.owner!r}; store it now, it is not shown again:"
    )
    typer.echo(created.key)


@keys_cli.command("list")
def keys_list() -> None:
    """List keys (ids and owners, never secrets)."""
    from app.security.auth import list_keys

    table = Table("id", "owner", "created", "last used", "revoked")
    with _sessions()() as session:
        for key in list_keys(session):
            table.add_row(
                key.id,
                key.owner,
                f"{key.created_at:%Y-%m-%d %H:%M}",
                f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "-",
                f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "-",
            )
    console.print(table)


@keys_cli.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id from 'keys list'.")) -> None:
    """Revoke a key at once."""
    from app.security.auth import revoke_key

    if not revoke_key(_sessions(), key_id):
        console.print(f"[red]no active key {key_id!r}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


def demo(
    host: str | None = typer.Option(None, help="Bind address (AUXSEL_HOST)."),
    port: int | None = typer.Option(None, help="Port (AUXSEL_PORT)."),
    seed: int = typer.Option(0, help="Seed of the generated table and of the job."),
    exit_when_done: bool = typer.Option(
        False, "--exit", help="Stop the server once the demo job is done."
    ),
) -> None:
    """Start the service on the embedded default, upload a generated demo table, run
    a job on it, print the ranking, and keep serving."""
    import uvicorn

    from app.cli.client import Client
    from app.demo import DEMO_BUDGET, DEMO_NAME, DEMO_RECIPE, demo_family
    from app.main import create_app
    from app.server import uvicorn_options

    settings = _settings(host, port)
    app = create_app(settings, run_worker=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            **uvicorn_options(settings),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise typer.Exit(1)
        time.sleep(0.05)
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"auxsel is serving at [bold]{url}[/]: dashboard {url}/, API docs {url}/docs")

    family = demo_family(seed)
    with Client(url) as client:
        dataset = client.upload_bytes(
            family.frame.to_csv(index=False).encode(), "demo.csv", name="demo table"
        )
        job = client.submit(
            {
                "name": DEMO_NAME,
                "dataset_id": dataset["id"],
                "main_task": {"column": family.main},
                "candidates": [{"column": c} for c in family.candidates],
                "seed": seed,
                "recipe": DEMO_RECIPE,
                "budget": DEMO_BUDGET,
            }
        )
        console.print(
            f"Demo job {job['id']}: main task [bold]{family.main}[/], "
            f"{len(family.candidates)} candidates (true relatedness in their names). "
            f"Watch it at {url}/jobs/{job['id']}"
        )
        final = follow(client, job["id"])
        if final["status"] == JobStatus.SUCCEEDED:
            console.print(ranking_table(client.ranking(job["id"])))
            console.print(f"JSON: {url}/api/v1/jobs/{job['id']}/ranking")
        else:
            console.print(f"[red]job {final['status']}[/]: {final.get('error')}")
    if exit_when_done:
        server.should_exit = True
        thread.join(timeout=30)
        return
    console.print("Serving; press Ctrl-C to stop.")
    try:
        while thread.is_alive():
            thread.join(timeout=0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(timeout=30)


def _redact(url: str) -> str:
    """A database URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url
