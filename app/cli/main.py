"""The ``auxsel`` command line: serve, worker, db, keys, demo, and the client commands
submit, status, ranking and jobs."""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperCommand

from app.jobs.status import JobStatus
from app.settings import Settings, get_settings

# alembic and uvicorn are imported inside the commands that need them: the client
# commands (submit, status, ranking, jobs) then start in half the time.

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

    processes: dict[str, Any] = {}
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


def _serve_target(settings: Settings) -> Any:
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
    return "app.cli.main:served_app"


def served_app() -> Any:
    """One API process of ``auxsel serve --workers N`` (a uvicorn app factory)."""
    from app.main import create_app

    settings = get_settings()
    _configure_logging(settings)
    return create_app(settings, run_worker=settings.serve_worker)


@cli.command("worker")
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


def _sessions() -> Any:
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
    import uvicorn

    from app.cli.client import Client
    from app.demo import DEMO_BUDGET, DEMO_NAME, demo_family
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


# --- client commands: talk to a running server (AUXSEL_URL, AUXSEL_API_KEY) ---------

# Exit codes of the client commands (2 is click's usage error).
EXIT_REFUSED = 1  # the server answered with an error (bad column, unknown job, no key)
EXIT_UNREACHABLE = 3  # no server at the URL
EXIT_JOB_FAILED = 4  # the job ended failed or canceled

err_console = Console(stderr=True)
UrlOption = typer.Option(
    None, "--url", help="Server URL (AUXSEL_URL; default http://127.0.0.1:8000)."
)
ApiKeyOption = typer.Option(
    None, "--api-key", help="API key if the server needs one (AUXSEL_API_KEY).", show_default=False
)
KINDS = ("binary", "multiclass", "regression")


class ListOptionsCommand(TyperCommand):
    """Lets list options take several values after one flag (``--candidates a b c``),
    as well as the repeated form click understands (``--candidates a --candidates b``):
    values up to the next flag are rewritten into the repeated form."""

    list_options: frozenset[str] = frozenset({"--candidates", "--kind", "--features"})

    # ctx is typer's vendored click Context, which typer does not export.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        current: str | None = None
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten.extend(args[i:])
                break
            if arg.startswith("-"):
                current = arg if arg in self.list_options else None
                rewritten.append(arg)
            elif current is not None and rewritten[-1] != current:
                rewritten.extend([current, arg])
            else:
                rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


@contextmanager
def _server(url: str | None, api_key: str | None) -> Iterator[tuple[Any, str]]:
    """A client of the configured server; turns its failures into messages and exit codes."""
    from app.cli.client import ApiError, Client

    settings = get_settings()
    base = (url or settings.url).rstrip("/")
    key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    try:
        with Client(base, key) as client:
            yield client, base
    except httpx.TransportError as exc:
        err_console.print(
            f"[red]cannot reach the auxsel server at {base}[/] ({exc.__class__.__name__}). "
            "Is it running ('auxsel serve')? Point at another one with --url or AUXSEL_URL."
        )
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    except ApiError as exc:
        problem = exc.problem
        errors = problem.get("errors") or []
        headline = problem.get("title") if errors else problem.get("detail")
        err_console.print(f"[red]error[/] ({exc.status}): {headline or exc}")
        for error in errors:
            err_console.print(f"  {error.get('field')}: {error.get('message')}")
        if exc.status == 401:
            err_console.print("Pass a key with --api-key or AUXSEL_API_KEY.")
        raise typer.Exit(EXIT_REFUSED) from exc


def _print_failure(job: dict[str, Any]) -> None:
    from app.jobs.failures import explain

    if job["status"] == JobStatus.CANCELED:
        err_console.print(f"job {job['id']} was canceled.")
        return
    err_console.print(f"[red]job {job['id']} failed[/]: {explain(job.get('error'))}")
    detail = (job.get("error") or {}).get("detail")
    if detail:
        err_console.print(f"  reason {job['error']['reason']}: {detail}")


def _parse_kinds(pairs: list[str], labels: set[str]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for pair in pairs:
        column, sep, kind = pair.rpartition("=")
        if not sep or not column or kind not in KINDS:
            raise typer.BadParameter(
                f"{pair!r}: write COLUMN=KIND with KIND one of {', '.join(KINDS)}.",
                param_hint="--kind",
            )
        if column not in labels:
            raise typer.BadParameter(
                f"{column!r} is neither --main nor one of --candidates.", param_hint="--kind"
            )
        kinds[column] = kind
    return kinds


def _hidden(value: str) -> list[int]:
    try:
        return [int(part) for part in value.replace(",", " ").split()]
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r}: give layer widths as integers, e.g. 128 or 64,32.",
            param_hint="--hidden",
        ) from exc


@cli.command(cls=ListOptionsCommand)
def submit(
    data: Annotated[
        str,
        typer.Argument(
            help="CSV or Parquet file to upload, or the id of an uploaded data set (ds_...)."
        ),
    ],
    main: Annotated[str, typer.Option("--main", help="The main task's label column.")],
    candidates: Annotated[
        list[str],
        typer.Option(
            "--candidates", help="Candidate auxiliary tasks' columns: --candidates A B C."
        ),
    ],
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", help="COL=KIND (binary, multiclass or regression); inferred otherwise."
        ),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--features", help="Feature columns (default: every column that is not a label)."
        ),
    ] = None,
    name: str | None = typer.Option(None, help="Job name."),
    method: str = typer.Option("probe", help="probe | screen | screen+probe."),
    metric: str | None = typer.Option(None, help="Primary metric (default loss)."),
    seed: int | None = typer.Option(None, help="Seed of splits and initialisations."),
    seeds: int | None = typer.Option(None, help="Replicates, each with its own split."),
    epochs: int | None = typer.Option(None, help="Epochs per probe at most."),
    hidden: str | None = typer.Option(None, help="Hidden layer widths, e.g. 128 or 64,32."),
    lam: float | None = typer.Option(None, help="Weight of the auxiliary loss."),
    batch_size: int | None = typer.Option(None, help="Minibatch size."),
    lr: float | None = typer.Option(None, help="Adam learning rate."),
    patience: int | None = typer.Option(None, help="Early-stop patience (0 = none)."),
    main_train_fraction: float | None = typer.Option(
        None, help="Share of the main task's training labels kept."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Show progress until the job ends, then print the ranking."
    ),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Upload a table (or use an uploaded one) and submit a job on it."""
    kinds = _parse_kinds(kind or [], {main, *candidates})
    path = Path(data)
    if not path.is_file() and not data.startswith("ds_"):
        raise typer.BadParameter(f"no file {data!r} (and not a data set id).", param_hint="DATA")
    budget: dict[str, Any] = {
        key: value
        for key, value in {
            "seeds": seeds,
            "epochs": epochs,
            "hidden": _hidden(hidden) if hidden is not None else None,
            "lam": lam,
            "batch_size": batch_size,
            "lr": lr,
            "patience": patience,
            "main_train_fraction": main_train_fraction,
        }.items()
        if value is not None
    }

    def task(column: str) -> dict[str, str]:
        return {"column": column, **({"kind": kinds[column]} if column in kinds else {})}

    with _server(url, api_key) as (client, base):
        if path.is_file():
            dataset = client.upload(path)
            console.print(
                f"uploaded {path.name}: {dataset['rows']} rows x {dataset['columns']} columns, "
                f"data set {dataset['id']} (pass that id instead of the file to reuse it)"
            )
        else:
            dataset = client.dataset(data)
        spec: dict[str, Any] = {
            "dataset_id": dataset["id"],
            "main_task": task(main),
            "candidates": [task(c) for c in candidates],
            "method": method,
            "budget": budget,
        }
        optional = {"name": name, "metric": metric, "seed": seed, "features": features or None}
        spec.update({k: v for k, v in optional.items() if v is not None})
        job = client.submit(spec)
        console.print(f"submitted job {job['id']} ({job['name']}): {base}/jobs/{job['id']}")
        if not wait:
            console.print(f"follow it with: auxsel status {job['id']} --wait")
            return
        final = follow(client, job["id"])
        if final["status"] != JobStatus.SUCCEEDED:
            _print_failure(final)
            raise typer.Exit(EXIT_JOB_FAILED)
        console.print(ranking_table(client.ranking(job["id"])))


@cli.command()
def status(
    job_id: str = typer.Argument(..., help="The job's id."),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the job ends."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A job's status and progress (with --wait, until it ends; exit 4 if it failed)."""
    with _server(url, api_key) as (client, base):
        job = follow(client, job_id) if wait else client.job(job_id)
        progress = job["progress"]
        table = Table(show_header=False, box=None)
        table.add_row("job", f"{job['id']}  {job['name']}")
        table.add_row("status", job["status"])
        table.add_row(
            "progress",
            f"{progress['done']} / {progress['total']} probe-epochs ({progress['fraction']:.0%})",
        )
        for field in ("created_at", "started_at", "finished_at"):
            table.add_row(field.removesuffix("_at"), _when(job[field]))
        table.add_row("page", f"{base}/jobs/{job['id']}")
        console.print(table)
        if job["status"] == JobStatus.FAILED:
            _print_failure(job)
        if wait and job["status"] in (JobStatus.FAILED, JobStatus.CANCELED):
            raise typer.Exit(EXIT_JOB_FAILED)


class RankingFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@cli.command()
def ranking(
    job_id: str = typer.Argument(..., help="The job's id."),
    format: Annotated[
        RankingFormat, typer.Option("--format", help="Output format.")
    ] = RankingFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A finished job's ranking: a table, or JSON / CSV for other tools."""
    from app.cli.client import ApiError

    with _server(url, api_key) as (client, _):
        try:
            if format is RankingFormat.csv:
                typer.echo(client.ranking_csv(job_id), nl=False)
                return
            result = client.ranking(job_id)
        except ApiError as exc:
            if exc.status != 409:
                raise
            job = client.job(job_id)
            if job["status"] in (JobStatus.FAILED, JobStatus.CANCELED):
                _print_failure(job)
                raise typer.Exit(EXIT_JOB_FAILED) from exc
            err_console.print(
                f"job {job_id} is {job['status']} ({job['progress']['fraction']:.0%}); "
                f"wait for it with: auxsel status {job_id} --wait"
            )
            raise typer.Exit(EXIT_REFUSED) from exc
        if format is RankingFormat.json:
            typer.echo(json.dumps(result, indent=2))
        else:
            console.print(ranking_table(result))


@cli.command("jobs")
def jobs_command(
    status: str | None = typer.Option(
        None, "--status", help="queued | running | succeeded | failed | canceled."
    ),
    limit: int = typer.Option(20, help="How many, newest first."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Jobs, newest first."""
    with _server(url, api_key) as (client, _):
        items = client.jobs(status=status, page_size=limit)
    table = Table()
    for column in ("id", "status", "done", "created"):
        table.add_column(column, no_wrap=True)  # ids are for copying: never cut them
    table.add_column("name", overflow="fold", min_width=12)
    for job in items:
        table.add_row(
            job["id"],
            job["status"],
            f"{job['progress']['fraction']:.0%}",
            _when(job["created_at"], short=True),
            job["name"],
        )
    console.print(table if items else "no jobs" + (f" with status {status}" if status else ""))


def _when(value: str | None, short: bool = False) -> str:
    """An API timestamp (UTC) as 'YYYY-MM-DD HH:MM:SS', or 'MM-DD HH:MM' when short."""
    if not value:
        return "-"
    text = value.replace("T", " ")
    return text[5:16] if short else text[:19]


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
        table.add_column(
            column,
            justify="left" if column == "candidate" else "right",
            overflow="fold",  # a cut candidate name would be ambiguous
        )
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
