"""The probe budget: how many replicates, how long and how wide each probe trains."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from engine.errors import SpecError

ProxyName = Literal["lookahead", "grad_cosine"]
"""A screening proxy (see :mod:`engine.proxies`); here so the budget can name one."""
PROXY_NAMES: tuple[ProxyName, ...] = get_args(ProxyName)
SubsetWeighting = Literal["mean", "sum"]
SUBSET_WEIGHTINGS: tuple[SubsetWeighting, ...] = get_args(SubsetWeighting)
ProxyRows = Literal["main", "batch"]
PROXY_ROWS: tuple[ProxyRows, ...] = get_args(ProxyRows)


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

    Screening (methods ``screen`` and ``screen+probe``, see :mod:`engine.methods`):
    screen_epochs: epochs of the joint screening run; it never stops early. None means
    min(epochs, 10): the proxies weight steps by the main loss, which is largest early,
    and on the synthetic benchmarks they are settled by then.
    proxy_every: measure the proxies every this many training steps.
    proxy_rows: where the main task's loss and gradient are measured: ``main``, a
    minibatch of the main task's labelled training rows (robust when main labels are
    few or candidates come from other tables), or ``batch``, the training minibatch
    itself, as in TAG.
    screen_proxy: the proxy that ranks candidates (``lookahead`` or ``grad_cosine``).
    confirm_top: in ``screen+probe``, how many of the best-screened candidates paired
    probes confirm; confirm_random: how many more, drawn at random (seeded) from the
    rest, so that the job can say how well the proxy ranked candidates it did not favour.

    subset_weighting: how a probe with several auxiliary tasks (a subset probe) weighs
    them: ``mean`` (default) gives the set λ in all, λ/k each, so a set is compared
    with a single candidate at the same auxiliary weight and adding a task must bring
    information, not only weight (a duplicated task adds nothing); ``sum`` gives each
    λ. A single pairing is the same either way.

    Subset search (see :mod:`engine.subsets`): subset_search turns it on; subset_budget
    caps how many subsets are trained (each one probe per replicate, paired with the
    replicates' baselines); subset_width is how many one-candidate extensions of the
    current set each greedy step trains side by side.

    dropout: probability of zeroing each hidden unit of the trunk during training
    (inverted dropout, none at evaluation); the mask of a minibatch is drawn from
    (seed, replicate) alone, so every probe of a replicate sees the same masks.
    weight_decay: decoupled weight decay (AdamW) on every parameter; 0 is plain Adam.
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
    screen_epochs: int | None = None
    proxy_every: int = 2
    proxy_rows: ProxyRows = "main"
    screen_proxy: ProxyName = "lookahead"
    confirm_top: int = 5
    confirm_random: int = 2
    subset_weighting: SubsetWeighting = "mean"
    subset_search: bool = False
    subset_budget: int = 6
    subset_width: int = 3
    # Regularisation of the trunk (issue 17; Advice v2 chooses the defaults): dropout
    # after every hidden layer, with masks drawn per replicate so a baseline and its
    # pairings see the same ones; decoupled weight decay (AdamW) on every weight.
    dropout: float = 0.0
    weight_decay: float = 0.0

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
        _check(
            self.screen_epochs is None or self.screen_epochs >= 1,
            "screen_epochs",
            "must be at least 1 (or None for `epochs`)",
        )
        _check(self.proxy_every >= 1, "proxy_every", "must be at least 1")
        _check(
            self.proxy_rows in PROXY_ROWS, "proxy_rows", f"must be one of {', '.join(PROXY_ROWS)}"
        )
        _check(
            self.screen_proxy in PROXY_NAMES,
            "screen_proxy",
            f"must be one of {', '.join(PROXY_NAMES)}",
        )
        _check(self.confirm_top >= 1, "confirm_top", "must be at least 1")
        _check(self.confirm_random >= 0, "confirm_random", "must be zero or more")
        _check(
            self.subset_weighting in SUBSET_WEIGHTINGS,
            "subset_weighting",
            f"must be one of {', '.join(SUBSET_WEIGHTINGS)}",
        )
        _check(isinstance(self.subset_search, bool), "subset_search", "must be true or false")
        _check(self.subset_budget >= 1, "subset_budget", "must be at least 1")
        _check(self.subset_width >= 1, "subset_width", "must be at least 1")
        _check(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", "must be zero or more")

    @property
    def screening_epochs(self) -> int:
        """Epochs of the joint screening run."""
        return min(self.epochs, 10) if self.screen_epochs is None else self.screen_epochs

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
