"""The demo job: a generated table whose candidate tasks have a known relatedness to the
main task (engine.make_task_family), so the ranking can be checked against the truth."""

from __future__ import annotations

from engine import RecipeName, TaskFamily, make_task_family

DEMO_NAME = "demo: which tasks help y?"
# Low-data regime: 5% of the training rows keep their main label.
DEMO_BUDGET: dict[str, int | float] = {"seeds": 5, "epochs": 30, "main_train_fraction": 0.05}
# The short probe: the demo shows the service in a minute, not a decision.
DEMO_RECIPE: RecipeName = "quick"


def demo_family(seed: int = 0) -> TaskFamily:
    """3,000 rows, 32 features; candidates rel_<i>_<cosine> and two pure-noise tasks."""
    return make_task_family(n_rows=3000, n_features=32, seed=seed)
