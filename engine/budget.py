"""The probe budget: how many replicates, how long and how wide each probe trains."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from engine.errors import SpecError


@dataclass(frozen=True)
class Budget:
    """Training knobs shared by every probe of a job.

    seeds: replicates; each draws its own split, initialisation and batch order.
    epochs: maximum epochs per probe; patience: epochs without a better main-task
    validation metric before a probe stops (0 = never stop early).
    hidden: trunk layer widths. lam: weight λ of each auxiliary loss.
    main_train_fraction: share of the main task's training labels kept (the rest of
    those rows still carry auxiliary labels), to study the low-data regime.
    memory_mb: cap on the memory one batched training chunk may take; larger jobs are
    split into chunks that train one after another.
    """

    # Chosen by the validity study (docs/validity.md): a narrow trunk ranked candidates
    # closer to full training than 128 wide on every data set, at less compute, and 5
    # replicates rank them better than 3 for 1.7x the compute.
    seeds: int = 5
    epochs: int = 30
    hidden: tuple[int, ...] = (32,)
    lam: float = 1.0
    batch_size: int = 128
    lr: float = 3e-3
    patience: int = 8
    main_train_fraction: float = 1.0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    memory_mb: float = 2048

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        _check(self.seeds >= 1, "seeds", "must be at least 1")
        _check(self.epochs >= 1, "epochs", "must be at least 1")
        _check(len(self.hidden) >= 1, "hidden", "needs at least one layer width")
        _check(all(h >= 1 for h in self.hidden), "hidden", "widths must be positive")
        _check(self.lam >= 0, "lam", "must be zero or more")
        _check(self.batch_size >= 1, "batch_size", "must be at least 1")
        _check(self.lr > 0, "lr", "must be positive")
        _check(self.patience >= 0, "patience", "must be zero or more")
        _check(0 < self.main_train_fraction <= 1, "main_train_fraction", "must be in (0, 1]")
        _check(0 < self.val_fraction < 1, "val_fraction", "must be in (0, 1)")
        _check(0 < self.test_fraction < 1, "test_fraction", "must be in (0, 1)")
        _check(
            self.val_fraction + self.test_fraction < 0.9,
            "test_fraction",
            "validation and test fractions together must leave rows to train on",
        )
        _check(self.memory_mb > 0, "memory_mb", "must be positive")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Budget:
        """Build a budget from keywords, naming any unknown one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise SpecError(
                f"Unknown budget option {unknown[0]!r}.",
                field=f"budget.{unknown[0]}",
                hint=f"Known options: {', '.join(sorted(known))}.",
            )
        return cls(**kwargs)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise SpecError(f"Budget option {name} {message}.", field=f"budget.{name}")
