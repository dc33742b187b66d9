"""The ``auxsel`` command line. This module only assembles the command tree: the admin
commands (serve, worker, db, keys, demo) live in app/cli/admin.py, the client commands
that talk to a running server in app/cli/submit.py (submit) and app/cli/remote.py
(status, ranking, runs, compare, cancel, jobs, datasets, and the shared plumbing)."""

from __future__ import annotations

import typer

from app.cli import admin, remote, submit

cli = typer.Typer(help="auxsel: which auxiliary tasks help your main task?", no_args_is_help=True)
cli.add_typer(admin.db_cli, name="db")
cli.add_typer(admin.keys_cli, name="keys")


@cli.callback()
def root() -> None:
    """auxsel: which auxiliary tasks help your main task?"""


# The order of registration is the order of `auxsel --help`.
cli.command()(admin.serve)
cli.command("worker")(admin.worker_command)
cli.command()(admin.demo)
cli.command(cls=submit.ListOptionsCommand)(submit.submit)
cli.command()(remote.status)
cli.command()(remote.ranking)
cli.command()(remote.runs)
cli.command()(remote.compare)
cli.command()(remote.cancel)
cli.command("jobs")(remote.jobs_command)
cli.command("datasets")(remote.datasets_command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
