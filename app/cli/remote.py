"""The client commands that read or act on a server's jobs (status, ranking, runs,
cancel, compare, jobs, datasets; submit is in app/cli/submit.py) and the plumbing they
share. They talk to a running server over HTTP (app/cli/client.py), found with --url /
--api-key or AUXSEL_URL / AUXSEL_API_KEY (ClientSettings); they never read the server's
own settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated

import httpx
import typer
from rich.table import Table

from app.cli.client import ApiError, Client, ClientSettings, JobJSON
from app.cli.views import (
    comparison_table,
    console,
    datasets_table,
    err_console,
    follow,
    ranking_table,
    runs_table,
    when,
)
from app.jobs.status import JobStatus

# Exit codes of the client commands (2 is click's usage error).
EXIT_REFUSED = 1  # the server answered with an error (bad column, unknown job, no key)
EXIT_UNREACHABLE = 3  # no server at the URL
EXIT_JOB_FAILED = 4  # the job ended failed or canceled
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting (the job goes on on the server)
UrlOption = typer.Option(
    None, "--url", help="Server URL (AUXSEL_URL; default http://127.0.0.1:8000)."
)
ApiKeyOption = typer.Option(
    None, "--api-key", help="API key if the server needs one (AUXSEL_API_KEY).", show_default=False
)


@contextmanager
def server(url: str | None, api_key: str | None) -> Iterator[tuple[Client, str]]:
    """A client of the configured server; turns its failures into messages and exit codes."""
    settings = ClientSettings()
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


def watch_command(job_id: str, url: str | None) -> str:
    """The command that watches the job again (with --url when it was given)."""
    return f"auxsel status {job_id} --wait" + (f" --url {url}" if url else "")


def follow_job(client: Client, job_id: str, url: str | None) -> JobJSON:
    """follow() the job; on Ctrl-C say that it keeps running on the server, how to
    watch it again and how to cancel it, and exit 130."""
    try:
        return follow(client, job_id)
    except KeyboardInterrupt:
        cancel = "auxsel cancel " + job_id + (f" --url {url}" if url else "")
        err_console.print(
            f"\nstopped waiting; job {job_id} keeps running on the server.\n"
            f"watch it again with: {watch_command(job_id, url)}\n"
            f"stop it with: {cancel}",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def print_failure(job: JobJSON) -> None:
    from app.jobs.failures import explain

    if job["status"] == JobStatus.CANCELED:
        err_console.print(f"job {job['id']} was canceled.")
        return
    error = job.get("error")
    err_console.print(f"[red]job {job['id']} failed[/]: {explain(error)}")
    if error and error.get("detail"):
        err_console.print(f"  reason {error['reason']}: {error['detail']}")


def status(
    job_id: str = typer.Argument(..., help="The job's id."),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the job ends."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A job's status and progress (with --wait, until it ends; exit 4 if it failed)."""
    with server(url, api_key) as (client, base):
        job = follow_job(client, job_id, url) if wait else client.job(job_id)
        progress = job["progress"]
        table = Table(show_header=False, box=None)
        table.add_row("job", f"{job['id']}  {job['name']}")
        table.add_row("status", job["status"])
        table.add_row(
            "progress",
            f"{progress['done']} / {progress['total']} probe-epochs ({progress['fraction']:.0%})",
        )
        table.add_row("created", when(job["created_at"]))
        table.add_row("started", when(job["started_at"]))
        table.add_row("finished", when(job["finished_at"]))
        table.add_row("page", f"{base}/jobs/{job['id']}")
        console.print(table)
        if job["status"] == JobStatus.FAILED:
            print_failure(job)
        if wait and job["status"] in (JobStatus.FAILED, JobStatus.CANCELED):
            raise typer.Exit(EXIT_JOB_FAILED)


class RankingFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def ranking(
    job_id: str = typer.Argument(..., help="The job's id."),
    format: Annotated[
        RankingFormat, typer.Option("--format", help="Output format.")
    ] = RankingFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A finished job's ranking: a table, or JSON / CSV for other tools."""
    with server(url, api_key) as (client, _):
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
                print_failure(job)
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


def jobs_command(
    status: str | None = typer.Option(
        None, "--status", help="queued | running | succeeded | failed | canceled."
    ),
    limit: int = typer.Option(20, help="How many, newest first."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Jobs, newest first."""
    with server(url, api_key) as (client, _):
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
            when(job["created_at"], short=True),
            job["name"],
        )
    console.print(table if items else "no jobs" + (f" with status {status}" if status else ""))


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = typer.Option("--format", help="table, or json for other tools.")


def datasets_command(
    limit: int = typer.Option(50, help="How many, newest first."),
    format: Annotated[OutputFormat, FormatOption] = OutputFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Uploaded data sets, newest first (pass an id to `auxsel submit` instead of a file)."""
    with server(url, api_key) as (client, _):
        items = client.datasets(page_size=limit)
    if format is OutputFormat.json:
        typer.echo(json.dumps(items, indent=2))
    else:
        console.print(datasets_table(items) if items else "no data sets")


def runs(
    job_id: str = typer.Argument(..., help="The job's id."),
    format: Annotated[OutputFormat, FormatOption] = OutputFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A job's probe runs so far: which candidates each trained with, its metrics at the
    best epoch, and its epochs."""
    with server(url, api_key) as (client, _):
        result = client.runs(job_id)
    if format is OutputFormat.json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(runs_table(result) if result["items"] else f"job {job_id} has no runs yet")


def cancel(
    job_id: str = typer.Argument(..., help="The job's id."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Cancel a job: a queued one at once, a running one at its next training step."""
    with server(url, api_key) as (client, _):
        job = client.cancel(job_id)
    if job["status"] == JobStatus.CANCELED:
        console.print(f"job {job_id} canceled.")
    else:
        console.print(
            f"job {job_id} is {job['status']}: it stops at its next training step "
            f"(check with: {watch_command(job_id, url)})."
        )


def compare(
    job_a: str = typer.Argument(..., help="The first job's id."),
    job_b: str = typer.Argument(..., help="The second job's id."),
    format: Annotated[OutputFormat, FormatOption] = OutputFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Two finished jobs' rankings side by side: each candidate's rank, gain and verdict
    in both, and what changed from A to B."""
    with server(url, api_key) as (client, _):
        result = client.compare(job_a, job_b)
    if format is OutputFormat.json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(comparison_table(result))
