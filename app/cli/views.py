"""What the CLI prints: a job's progress bar, tables (ranking, comparison, probe runs,
data sets), timestamps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, ConsoleDimensions, Group
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from app.cli.client import (
        Client,
        ComparisonJSON,
        DatasetJSON,
        JobJSON,
        RankingJSON,
        RunsJSON,
        SideJSON,
    )

PIPE_WIDTH = 10_000
"""The width output takes when it is not a terminal (a pipe, a file): wide enough that
no line is ever wrapped, so no id, name or number is cut in two."""


class CliConsole(Console):
    """A rich Console that lays out for the terminal when its stream is one, and
    otherwise never wraps: piped or redirected output has one line per row, whatever
    width the terminal that started the pipe (or COLUMNS) has."""

    def __init__(self, *, stderr: bool = False, width: int | None = None) -> None:
        # rich takes COLUMNS as the width when none is given: only an explicit width
        # holds off the terminal test.
        super().__init__(stderr=stderr, width=width)
        self._explicit_width = width is not None

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self._explicit_width and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size
        self._explicit_width = True


console = CliConsole()
err_console = CliConsole(stderr=True)


def when(value: str | None, short: bool = False) -> str:
    """An API timestamp (UTC) as 'YYYY-MM-DD HH:MM:SS', or 'MM-DD HH:MM' when short."""
    if not value:
        return "-"
    text = value.replace("T", " ")
    return text[5:16] if short else text[:19]


def follow(client: Client, job_id: str, on: Console | None = None, poll_s: float = 0.5) -> JobJSON:
    """Show a progress bar (on the CLI's console unless ``on`` is given) until the job
    ends."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=on or console,
    ) as bar:
        task = bar.add_task("queued", total=1)

        def update(job: JobJSON) -> None:
            progress = job["progress"]
            bar.update(
                task,
                completed=progress["done"],
                total=max(progress["total"], 1),
                description=job["status"],
            )

        return client.wait(job_id, on_update=update, poll_s=poll_s)


def answers_for(ranking: RankingJSON) -> str:
    """What the ranking answers for: its recipe, every knob named, and what each gain
    estimates (empty from a server that does not say)."""
    lines = []
    if ranking.get("recipe_text"):
        lines.append(f"Answers for: {ranking['recipe_text']}")
    if ranking.get("estimand"):
        lines.append(f"Each gain estimates the {ranking['estimand']}.")
    return "\n".join(lines)


def ranking_table(ranking: RankingJSON) -> Group:
    """The ranking as a rich table, the baseline in the title, then the recipe it
    answers for and its estimand (lines of their own, not cut to the table's width)."""
    baseline = ranking["baseline"]
    shown = ", ".join(
        f"{k} {v:.4g}" for k, v in baseline.items() if k != "seeds" and isinstance(v, float)
    )
    title = f"Baseline (main task alone, {baseline['seeds']} seeds): {shown}"
    if ranking.get("provisional"):
        title = (
            f"PROVISIONAL ranking from the {ranking.get('replicates', baseline['seeds'])} "
            f"replicate(s) stored so far; not a final answer. {title}"
        )
    table = Table(title=title)
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
    steps = [Text(f"Next step: {step}") for step in ranking.get("next_steps", [])]
    # A job at several shares of the main labels: where each candidate helps.
    shares = [
        Text(f"{c['name']}: {c['fraction_summary']}")
        for c in ranking["candidates"]
        if c.get("fraction_summary")
    ]
    return Group(table, *coverage_table(ranking), *shares, *steps, Text(answers_for(ranking)))


def coverage_table(ranking: RankingJSON) -> list[Table | Text]:
    """Each candidate's label coverage (rows labelled, share, overlap with the main
    task's training rows) and the note of each with too few labels; nothing for a
    server from before coverage."""
    rows = [(c["name"], cov) for c in ranking["candidates"] if (cov := c.get("coverage"))]
    if not rows:
        return []
    table = Table(title="Label coverage (no training; training rows: mean over replicates)")
    for column in ("candidate", "rows labelled", "share", "main training rows with it"):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for name, cov in rows:
        table.add_row(
            name + (" !" if cov.get("note") else ""),
            str(cov["labelled"]),
            f"{cov['share']:.1%}",
            f"{cov['train_overlap']:.0f} of {cov['main_train']}",
        )
    notes = [Text(f"! {name}: {cov['note']}") for name, cov in rows if cov.get("note")]
    return [table, *notes]


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


def datasets_table(items: list[DatasetJSON]) -> Table:
    table = Table()
    for column in ("id", "rows", "columns", "size", "created"):
        table.add_column(column, no_wrap=True, justify="left" if column == "id" else "right")
    table.add_column("name", overflow="fold", min_width=12)
    for d in items:
        table.add_row(
            d["id"],
            str(d["rows"]),
            str(d["columns"]),
            _size(d["size_bytes"]),
            when(d["created_at"], short=True),
            d["name"],
        )
    return table


def runs_table(runs: RunsJSON) -> Table:
    """One row per probe run: its candidates (baseline: none), replicate, the job's
    metric at the best epoch, the epochs, and any error."""
    metric = runs["metric"]
    table = Table(title=f"Probe runs of {runs['job_id']} ({len(runs['items'])})")
    table.add_column("run", no_wrap=True)
    table.add_column("replicate", justify="right")
    table.add_column("with", overflow="fold")
    table.add_column(metric, justify="right")
    table.add_column("best / epochs", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold")
    for run in runs["items"]:
        table.add_row(
            run["key"],
            str(run["replicate"]),
            ", ".join(run["candidates"]) or "(main task alone)",
            _num(run["metrics"].get(metric), ".4g"),
            f"{run['best_epoch']} / {run['epochs']}",
            run["error"] or "",
        )
    return table


def _side(side: SideJSON | None, value: str) -> str:
    if side is None:
        return "-"
    if value == "gain":
        return _num(side["gain"], "+.4f")
    return str(side[value])  # type: ignore[literal-required]


def comparison_table(result: ComparisonJSON) -> Group:
    """Two rankings side by side (A's order, then B's own), what changed from A to B,
    then the notes on what makes them answer different questions."""
    a, b = result["a"], result["b"]
    table = Table(
        title=f"A = {a['job_id']} ({a['name']})  vs  B = {b['job_id']} ({b['name']}), "
        f"gains in {a['metric']}" + (f" / {b['metric']}" if b["metric"] != a["metric"] else "")
    )
    table.add_column("candidate", overflow="fold")
    for column in ("rank A", "rank B", "moved", "gain A", "gain B", "gain B-A"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict A -> B", no_wrap=True)
    for row in result["candidates"]:
        left, right = row["a"], row["b"]
        change = row["rank_change"]
        moved = "-" if change is None else ("=" if change == 0 else f"{change:+d}")
        if left is None or right is None:
            verdict = f"only in {'B' if left is None else 'A'}: {(left or right or {})['verdict']}"  # type: ignore[index]
        elif row["verdict_changed"]:
            verdict = f"{left['verdict']} -> {right['verdict']}"
        else:
            verdict = f"{left['verdict']} (same)"
        table.add_row(
            row["name"],
            _side(left, "rank"),
            _side(right, "rank"),
            moved,
            _side(left, "gain"),
            _side(right, "gain"),
            _num(row["gain_difference"], "+.4f"),
            verdict,
        )
    notes = [f"note: {n}" for n in result["notes"]]
    return Group(table, Text("\n".join(notes)))
