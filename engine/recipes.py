"""Training recipes: what the user will train, and so what every probe of a job trains.

A probe measures the gain of the model it trains, so the advice answers for one recipe:
the trunk widths, dropout, weight decay, learning rate, batch size, epochs, patience,
λ and how the tasks share parameters (``sharing``, with its ``coupling``) below.
``full`` (the default) is a standard full-training MLP and is :class:`engine.Budget`'s
own defaults; ``quick`` is round 1's short narrow probe, cheaper and kept for a first
look, not for decisions (docs/validity.md measures how far its ranking is from full
training's). Both train hard sharing; ``sharing="soft_l2"`` or ``"soft_trace"`` (a
budget knob) trains either with soft sharing. A job's explicit budget knobs override
its recipe's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from types import MappingProxyType
from typing import Any, Literal, get_args

from engine.budget import Budget
from engine.errors import SpecError

RecipeName = Literal["full", "quick"]
RECIPE_NAMES: tuple[RecipeName, ...] = get_args(RecipeName)
DEFAULT_RECIPE: RecipeName = "full"

RECIPE_KNOBS: tuple[str, ...] = (
    "hidden",
    "dropout",
    "weight_decay",
    "lr",
    "batch_size",
    "epochs",
    "patience",
    "lam",
    "sharing",
    "coupling",
)
"""The budget options a recipe sets: how one model trains, not how many are trained."""


def _knobs(budget: Budget) -> Mapping[str, Any]:
    values = asdict(budget)
    return MappingProxyType({name: values[name] for name in RECIPE_KNOBS})


RECIPES: Mapping[RecipeName, Mapping[str, Any]] = MappingProxyType(
    {
        "full": _knobs(Budget()),
        "quick": _knobs(
            Budget(hidden=(32,), lr=3e-3, epochs=30, patience=8, dropout=0.0, weight_decay=0.0)
        ),
    }
)

ESTIMAND = (
    "expected gain in the main task's test {metric} when trained with this candidate, "
    "under this recipe on this data set, averaged over splits"
)
"""What a candidate's gain estimates, in words (``metric`` filled in)."""


def check_recipe(recipe: str) -> RecipeName:
    """``recipe`` as a known recipe name, or a SpecError naming the choices."""
    for name in RECIPE_NAMES:
        if recipe == name:
            return name
    raise SpecError(
        f"Unknown recipe {recipe!r}.",
        field="recipe",
        hint=f"Use one of {', '.join(RECIPE_NAMES)}, and set single knobs in the budget.",
    )


def recipe_budget(recipe: str = DEFAULT_RECIPE, **budget: Any) -> Budget:
    """The budget of a job that trains ``recipe``; knobs in ``budget`` override it."""
    return Budget.from_kwargs(**(dict(RECIPES[check_recipe(recipe)]) | budget))


def recipe_of(budget: Budget) -> dict[str, Any]:
    """The recipe knobs a budget trains with (to state what a ranking answers for)."""
    return dict(_knobs(budget))


def describe_recipe(recipe: str, budget: Budget) -> str:
    """One line naming the recipe and every knob, e.g. for a report's header."""
    knobs = recipe_of(budget)
    preset = RECIPES.get(recipe)  # type: ignore[call-overload]
    # Under hard sharing the coupling trains nothing, so it changes no recipe.
    ignored = {"coupling"} if knobs["sharing"] == "hard" else set()
    changed = preset is not None and any(
        preset[k] != v for k, v in knobs.items() if k not in ignored
    )
    widths = "-".join(str(h) for h in knobs["hidden"])
    return (
        f"{recipe}{' (changed)' if changed else ''}: trunk {widths}, dropout {knobs['dropout']:g}, "
        f"weight decay {knobs['weight_decay']:g}, lr {knobs['lr']:g}, batch "
        f"{knobs['batch_size']}, at most {knobs['epochs']} epochs, patience "
        f"{knobs['patience']}, λ {knobs['lam']:g}, {describe_sharing(budget)}"
    )


def describe_sharing(budget: Budget) -> str:
    """The parameter sharing a budget's probes train, in words."""
    if budget.sharing == "hard":
        return "hard parameter sharing"
    penalty = "L2 distance" if budget.sharing == "soft_l2" else "trace norm"
    return f"soft parameter sharing ({penalty}, coupling {budget.coupling:g})"
