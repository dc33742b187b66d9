"""Two jobs' rankings side by side: aligned by candidate name, with what changed."""

from __future__ import annotations

from app.jobs.views import (
    CandidateComparison,
    CandidateOut,
    CandidateSide,
    ComparedJob,
    JobComparison,
    RankingOut,
)


def _side(candidate: CandidateOut | None) -> CandidateSide | None:
    if candidate is None:
        return None
    return CandidateSide(
        rank=candidate.rank,
        gain=candidate.gain,
        ci_low=candidate.ci_low,
        ci_high=candidate.ci_high,
        verdict=candidate.verdict,
    )


def _compared(view: RankingOut, name: str) -> ComparedJob:
    return ComparedJob(
        job_id=view.job_id,
        name=name,
        metric=view.metric,
        recipe=view.recipe,
        recipe_text=view.recipe_text,
        main_task=view.main_task,
        baseline=view.baseline,
    )


def compare_view(a: RankingOut, a_name: str, b: RankingOut, b_name: str) -> JobComparison:
    """Two rankings aligned by candidate name, with what changed from a to b."""
    in_a = {c.name: c for c in a.candidates}
    in_b = {c.name: c for c in b.candidates}
    order = [c.name for c in a.candidates] + [c.name for c in b.candidates if c.name not in in_a]
    rows = []
    for name in order:
        left, right = in_a.get(name), in_b.get(name)
        rows.append(
            CandidateComparison(
                name=name,
                a=_side(left),
                b=_side(right),
                rank_change=left.rank - right.rank if left and right else None,
                gain_difference=(
                    right.gain - left.gain
                    if left and right and left.gain is not None and right.gain is not None
                    else None
                ),
                verdict_changed=left.verdict != right.verdict if left and right else None,
            )
        )
    notes = []
    if a.metric != b.metric:
        notes.append(f"The jobs rank by different metrics ({a.metric} and {b.metric}).")
    if (a.main_task.column, a.main_task.kind) != (b.main_task.column, b.main_task.kind):
        notes.append(
            f"The main tasks differ ({a.main_task.column} [{a.main_task.kind}] and "
            f"{b.main_task.column} [{b.main_task.kind}])."
        )
    if a.recipe_text != b.recipe_text:
        notes.append(f"The recipes differ ({a.recipe_text}; {b.recipe_text}).")
    return JobComparison(
        a=_compared(a, a_name),
        b=_compared(b, b_name),
        notes=notes,
        candidates=rows,
        only_in_a=[n for n in in_a if n not in in_b],
        only_in_b=[n for n in in_b if n not in in_a],
    )
