"""The ``auxsel`` command line: serve, worker, db, demo."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import migrate
from app.settings import Settings, get_settings

cli = typer.Typer(help="auxsel: which auxiliary tasks help your main task?", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
keys_cli = typer.Typer(
    help="API keys (needed whenever the server is not on loopback).", no_args_is_help=True
)
cli.add_typer(keys_cli, name="keys")
console = Console()


@cli.callback()
def root() -> None:
    """auxsel: which auxiliary tasks help your main task?"""


log = logging.getLogger("auxsel.cli")


def _configure_logging(settings: Settings) -> None:
    from app.logging_setup import configure

    configure(settings.log_level, settings.log_format)


def _settings(host: str | None = None, port: int | None = None) -> Settings:
    settings = get_settings()
    updates: dict[str, Any] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    return settings.model_copy(update=updates) if updates else settings


@cli.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (AUXSEL_HOST)."),
    port: int | None = typer.Option(None, help="Port (AUXSEL_PORT)."),
    worker: bool = typer.Option(True, help="Run a worker inside the server process."),
) -> None:
    """Run the API (and, by default, an in-process worker)."""
    from app.main import create_app

    settings = _settings(host, port)
    _configure_logging(settings)
    app = create_app(settings, run_worker=worker)
    from app.logging_setup import uvicorn_log_config

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=uvicorn_log_config(settings.log_format),
    )


@cli.command("worker")
def worker_command() -> None:
    """Run a standalone worker: claim queued jobs until SIGTERM."""
    from app.executors import ExecutorUnavailableError
    from app.storage import make_storage
    from app.worker import Worker

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
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url, revision)
    console.print(f"database at {migrate.current(settings.resolved_database_url)}")


@db_cli.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Migrate the database down."""
    settings = get_settings()
    migrate.downgrade(settings.resolved_database_url, revision)
    console.print(f"database at {migrate.current(settings.resolved_database_url)}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's schema revision."""
    console.print(migrate.current(get_settings().resolved_database_url) or "empty")


def _sessions() -> Any:
    from app.db import make_engine, make_sessionmaker

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url)
    return make_sessionmaker(make_engine(settings.resolved_database_url))


@keys_cli.command("create")
def keys_create(owner: str = typer.Option(..., help="Who the key belongs to.")) -> None:
    """Create a key and print it once (only a salted hash is stored)."""
    from app.auth import create_key

    created = create_key(_sessions(), owner)
    console.print(
        f"key id {created.id} for owner {created.owner!r}; store it now, it is not shown again:"
    )
    typer.echo(created.key)


@keys_cli.command("list")
def keys_list() -> None:
    """List keys (ids and owners, never secrets)."""
    from app.auth import list_keys

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
    from app.auth import revoke_key

    if not revoke_key(_sessions(), key_id):
        console.print(f"[red]no active key {key_id!r}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@cli.command()
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
    from app.client import Client
    from app.demo import DEMO_BUDGET, DEMO_NAME, demo_family
    from app.main import create_app

    settings = _settings(host, port)
    app = create_app(settings, run_worker=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise typer.Exit(1)
        time.sleep(0.05)
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"auxsel is serving at [bold]{url}[/] (API docs at {url}/docs)")

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
                "budget": DEMO_BUDGET,
            }
        )
        console.print(
            f"Demo job {job['id']}: main task [bold]{family.main}[/], "
            f"{len(family.candidates)} candidates (true relatedness in their names)."
        )
        final = follow(client, job["id"])
        if final["status"] == "succeeded":
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


def follow(client: Any, job_id: str) -> dict[str, Any]:
    """Show a progress bar until the job ends."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("queued", total=1)

        def update(job: dict[str, Any]) -> None:
            progress = job["progress"]
            bar.update(
                task,
                completed=progress["done"],
                total=max(progress["total"], 1),
                description=job["status"],
            )

        result: dict[str, Any] = client.wait(job_id, on_update=update)
        return result


def ranking_table(ranking: dict[str, Any]) -> Table:
    """The ranking as a rich table, the baseline in the title."""
    baseline = ranking["baseline"]
    shown = ", ".join(
        f"{k} {v:.4g}" for k, v in baseline.items() if k != "seeds" and isinstance(v, float)
    )
    table = Table(title=f"Baseline (main task alone, {baseline['seeds']} seeds): {shown}")
    for column in (
        "rank",
        "candidate",
        f"gain ({ranking['metric']})",
        "95% interval",
        "q",
        "verdict",
    ):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    colours = {"helpful": "green", "harmful": "red", "inconclusive": "yellow"}
    for c in ranking["candidates"]:
        table.add_row(
            str(c["rank"]),
            c["name"],
            _num(c["gain"], "+.4f"),
            f"[{_num(c['ci_low'], '+.4f')}, {_num(c['ci_high'], '+.4f')}]",
            _num(c["q_value"], ".3f"),
            f"[{colours.get(c['verdict'], 'white')}]{c['verdict']}[/]",
        )
    return table


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _redact(url: str) -> str:
    """A database URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
