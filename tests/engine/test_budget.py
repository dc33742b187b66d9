"""Every budget option's range is declared once, on its field, and the budget enforces
exactly that range (the HTTP API's schema reads the same declaration)."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from engine import Budget, SpecError


def _bounded() -> list[str]:
    return [f.name for f in fields(Budget) if Budget.bounds(f.name).limited]


@pytest.mark.parametrize("name", _bounded())
def test_each_bound_is_enforced_at_its_edge(name: str) -> None:
    bounds = Budget.bounds(name)
    default = Budget()
    # A list option's bounds are each item's: hidden's are widths (integers),
    # main_train_fractions' shares.
    listed = isinstance(getattr(default, name), tuple)
    integer = isinstance(getattr(default, name), int) or name == "hidden"
    step = 1 if integer else 1e-9

    def make(value: float) -> Budget:
        typed = int(value) if integer else value
        return replace(default, **{name: (typed,) if listed else typed})

    for edge, outside in (
        (bounds.ge, None if bounds.ge is None else bounds.ge - step),
        (bounds.le, None if bounds.le is None else bounds.le + step),
        (None, bounds.gt),
        (None, bounds.lt),
    ):
        if edge is not None:
            make(edge)  # the bound itself is allowed
        if outside is not None:
            with pytest.raises(SpecError) as info:
                make(outside)
            assert info.value.field == f"budget.{name}"


def test_messages_say_the_range() -> None:
    with pytest.raises(SpecError, match="lam must be in \\[0, 1000\\]"):
        Budget(lam=1001)
    with pytest.raises(SpecError, match="main_train_fraction must be in \\(0, 1\\]"):
        Budget(main_train_fraction=0)
    with pytest.raises(SpecError, match="seeds must be at least 1"):
        Budget(seeds=0)
    with pytest.raises(SpecError, match="lr must be in \\(0, 10\\]"):
        Budget(lr=0)


def test_every_option_has_a_description_or_is_a_named_choice() -> None:
    for f in fields(Budget):
        if Budget.bounds(f.name).limited:
            assert Budget.bounds(f.name).doc, f.name
