"""What the CLI prints: a job's progress bar, a ranking table, timestamps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from app.cli.client import Client, JobJSON, RankingJSON

console = Console()


def when(value: str | None, short: bool = False) -> str:
    """An API timestamp (UTC) as 'YYYY-MM-DD HH:MM:SS', or 'MM-DD HH:MM' when short."""
    if not value:
        return "-"
    text = value.replace("T", " ")
    return text[5:16] if short else text[:19]


def follow(client: Client, job_id: str) -> JobJSON:
    """Show a progress bar until the job ends."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
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

        return client.wait(job_id, on_update=update)


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
    return Group(table, *coverage_table(ranking), *steps, Text(answers_for(ranking)))


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
