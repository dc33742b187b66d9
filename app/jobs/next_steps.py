"""The next-step hint of a ranking: what to do when no candidate's interval excludes
zero, from what the job actually saw (replicates, recipe, main labels, coverage)."""

from __future__ import annotations

import engine
from app.jobs.spec import JobSpec
from app.jobs.status import JobStatus
from app.jobs.views import CandidateOut, RankingOut

MANY_MAIN_LABELS = 500
"""Main-task training rows from which the hint suggests measuring with fewer of them
(``main_train_fraction``): auxiliary tasks matter most where main labels are scarce."""


def _spans_zero(c: CandidateOut) -> bool:
    low, high = c.ci_low, c.ci_high
    return low is None or high is None or not (low > 0 or high < 0)


def next_steps(view: RankingOut, spec: JobSpec, status: str) -> list[str]:
    """What to do next when no candidate's interval excludes zero, from what the job
    saw; empty when one does, when nothing was probed, or while the job still runs."""
    probed = [c for c in view.candidates if c.verdict != "not_probed"]
    if status in (JobStatus.QUEUED, JobStatus.RUNNING) or not probed:
        return []
    if not all(_spans_zero(c) for c in probed):
        return []
    budget = engine.recipe_budget(spec.recipe, **spec.budget.explicit())
    cap = budget.replicate_cap
    used = view.replicates
    widths = [
        c.ci_high - c.ci_low for c in probed if c.ci_low is not None and c.ci_high is not None
    ]
    steps: list[str] = []
    if used < cap and status != JobStatus.SUCCEEDED:
        steps.append(
            f"The job stopped after {used} of the {cap} replicates it could use: run it "
            "again to let it finish; the intervals narrow as replicates are added."
        )
    elif used >= cap:
        steps.append(
            f"Every interval still spans zero after {used} replicates, the most this job "
            f"allowed (budget.max_replicates = {budget.max_replicates}): raise "
            f"max_replicates (e.g. to {2 * cap}) to narrow them"
            + (f"; the widest is {max(widths):.3g} wide." if widths else ".")
        )
    elif budget.race_futility > 0:
        steps.append(
            f"The job settled after {used} of {cap} replicates: every candidate's gain was "
            "within ±1% of the baseline's metric, or too unlikely on its trend so far to "
            "reach a verdict by the cap (budget.race_futility = "
            f"{budget.race_futility:g}); set race_futility to 0 to race every open "
            "candidate to the cap."
        )
    else:
        steps.append(
            f"The job settled after {used} of {cap} replicates with every gain within "
            "±1% of the baseline's metric: under this recipe these candidates make no "
            "difference worth having, and more replicates would not change that."
        )
    full = engine.RECIPES["full"]
    if budget.epochs < full["epochs"] or spec.recipe != "full":
        steps.append(
            f"The probes trained the {spec.recipe!r} recipe, at most {budget.epochs} epochs "
            f"(the full recipe trains up to {full['epochs']}): a short probe measures the "
            "gain of a short model; rerun with recipe 'full' for the gain under full "
            "training."
        )
    main_train = next((c.coverage.main_train for c in probed if c.coverage), 0)
    few_labels_measured = budget.main_train_fraction < 1.0 or budget.main_train_fractions
    if main_train >= MANY_MAIN_LABELS and not few_labels_measured:
        steps.append(
            f"The main task trained on {main_train} labelled rows per replicate; with that "
            "many, auxiliary tasks rarely move its metric. If your own setting has fewer "
            "main labels, set budget.main_train_fraction (e.g. 0.1 for about "
            f"{max(1, main_train // 10)} rows) to measure the gains there."
        )
    few = [c.name for c in probed if c.coverage and c.coverage.note]
    if few:
        steps.append(
            f"Too few labelled rows to judge: {', '.join(few)}. Label more rows of "
            f"{'it' if len(few) == 1 else 'them'} or leave {'it' if len(few) == 1 else 'them'} "
            "out; their intervals say little either way."
        )
    return steps
