"""The probe budget: how many replicates, how long and how wide each probe trains.

Every option's default, range and one-line description are declared once, on its
field (:class:`Bounds`); the checks below and the HTTP API's schema both read them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar, get_args

from engine.errors import SpecError

ProxyName = Literal["lookahead", "grad_cosine"]
"""A screening proxy (see :mod:`engine.proxies`); here so the budget can name one."""
PROXY_NAMES: tuple[ProxyName, ...] = get_args(ProxyName)
SubsetWeighting = Literal["mean", "sum"]
SUBSET_WEIGHTINGS: tuple[SubsetWeighting, ...] = get_args(SubsetWeighting)
ProxyRows = Literal["main", "batch"]
PROXY_ROWS: tuple[ProxyRows, ...] = get_args(ProxyRows)
Sharing = Literal["hard", "soft_l2", "soft_trace"]
"""How the tasks of a probe share parameters (see :mod:`engine.soft`)."""
SHARINGS: tuple[Sharing, ...] = get_args(Sharing)
RaceSpending = Literal["obf", "pocock", "bonferroni"]
"""How racing splits the 0.05 error rate over its looks (see :mod:`engine.racing`)."""
RACE_SPENDINGS: tuple[RaceSpending, ...] = get_args(RaceSpending)
FdrMethod = Literal["bh", "storey"]
"""How a verdict's q-value adjusts for the job's many candidates (see
:mod:`engine.scoring`)."""
FDR_METHODS: tuple[FdrMethod, ...] = get_args(FdrMethod)

T = TypeVar("T")


@dataclass(frozen=True)
class Bounds:
    """A numeric option's range (``ge``/``gt`` below, ``le``/``lt`` above; None = open)
    and what it means. For a list option (``hidden``) the range is each item's and
    ``min_items`` the shortest list."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_items: int | None = None
    doc: str = ""

    @property
    def limited(self) -> bool:
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt))

    def admits(self, value: float) -> bool:
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def describe(self) -> str:
        """The range in words, for an error message."""
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None:
            left = "[" if self.ge is not None else "("
            right = "]" if self.le is not None else ")"
            return f"in {left}{low:g}, {high:g}{right}"
        if self.ge is not None:
            return "zero or more" if self.ge == 0 else f"at least {self.ge:g}"
        if self.gt is not None:
            return "positive" if self.gt == 0 else f"above {self.gt:g}"
        if self.le is not None:
            return f"at most {self.le:g}"
        return f"below {self.lt:g}" if self.lt is not None else "any value"


BOUNDS = "bounds"
"""The key of a budget field's :class:`Bounds` in its ``dataclasses.field`` metadata."""


def option(
    default: T,
    doc: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_items: int | None = None,
) -> T:
    """A budget field: its default, its :class:`Bounds` and its description."""
    bounds = Bounds(ge=ge, gt=gt, le=le, lt=lt, min_items=min_items, doc=doc)
    return field(default=default, metadata={BOUNDS: bounds})


@dataclass(frozen=True)
class Budget:
    """Training knobs shared by every probe of a job.

    seeds: replicates; each draws its own split, initialisation and batch order.
    epochs: maximum epochs per probe; patience: epochs without a better main-task
    validation metric before a probe stops (0 = never stop early).
    hidden: trunk layer widths. lam: weight λ of each auxiliary loss.
    main_train_fraction: share of the main task's training labels kept (the rest of
    those rows still carry auxiliary labels), to study the low-data regime.
    main_train_fractions: several such shares in one job (see :mod:`engine.fractions`):
    the job runs at each, on nested splits (a replicate's kept main rows at a smaller
    share are a prefix of those at a larger one; validation and test rows, the
    initialisation, minibatch order and dropout masks are the same at every share), so
    a candidate's gain-versus-share curve is a paired comparison. Empty (default): the
    single ``main_train_fraction``.
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

    sharing: how a probe's tasks share the trunk (Ruder 2017, §3): ``hard`` (default),
    one trunk for every task; ``soft_l2`` and ``soft_trace``, one trunk per task, the
    main and the candidate trunk coupled layer by layer by ``coupling`` × the squared
    L2 distance of their parameters (Duong et al. 2015) or the trace norm of the two
    stacked (Yang & Hospedales 2017); see :mod:`engine.soft`. coupling: that weight
    (ignored under hard sharing); 0 trains independent trunks; under ``soft_l2`` a large
    one approaches hard sharing, under ``soft_trace`` it shrinks both trunks toward
    zero (the trace norm bounds their scale, not only their difference).
    """

    # The training recipe (hidden .. lam, dropout, weight_decay): by default the "full"
    # recipe of engine.recipes, a standard full-training MLP, because probes that train
    # like the user's model rank candidates like full training does and short narrow
    # ones do not (docs/validity.md, advice v2). ``recipe="quick"`` is the old probe.
    seeds: int = option(5, "Replicates (own split each); 1 gives gains without intervals.", ge=1)
    epochs: int = option(150, "Most epochs per probe.", ge=1)
    hidden: tuple[int, ...] = option((256, 64), "Trunk layer widths.", ge=1, min_items=1)
    lam: float = option(1.0, "Auxiliary loss weight.", ge=0, le=1000)
    batch_size: int = option(128, "Rows per training step.", ge=1, le=65536)
    lr: float = option(1e-3, "Learning rate (Adam).", gt=0, le=10)
    patience: int = option(15, "Epochs without improvement before a stop; 0 = no early stop.", ge=0)
    main_train_fraction: float = option(
        1.0, "Share of the main task's training labels kept.", gt=0, le=1
    )
    main_train_fractions: tuple[float, ...] = option(
        (),
        "Shares of the main task's training labels to run the job at, each in (0, 1] "
        "(nested, paired splits); empty runs main_train_fraction alone.",
        gt=0,
        le=1,
        min_items=0,
    )
    val_fraction: float = option(0.2, "Share of main labels held out for validation.", gt=0, lt=1)
    test_fraction: float = option(0.2, "Share of main labels held out for testing.", gt=0, lt=1)
    memory_mb: float = option(2048, "Most memory one training chunk may take.", gt=0)
    screen_epochs: int | None = option(
        None, "Screening run epochs (default min(epochs, 10)).", ge=1
    )
    proxy_every: int = option(2, "Training steps between proxy measurements.", ge=1)
    proxy_rows: ProxyRows = "main"
    screen_proxy: ProxyName = "lookahead"
    confirm_top: int = option(5, "screen+probe: best-screened candidates probed.", ge=1)
    confirm_random: int = option(2, "screen+probe: random others probed.", ge=0)
    subset_weighting: SubsetWeighting = "mean"
    subset_search: bool = option(False, "Greedy subset search.")
    subset_budget: int = option(6, "Subsets the search may train.", ge=1, le=100)
    subset_width: int = option(3, "Extensions each greedy step trains side by side.", ge=1)
    # Regularisation of the trunk: dropout after every hidden layer, with masks drawn
    # per replicate so a baseline and its pairings see the same ones; decoupled weight
    # decay (AdamW) on every weight.
    # Racing (engine.racing): after the first ``seeds`` replicates, rounds of
    # ``race_step`` more for the candidates still open, up to ``max_replicates``;
    # ``race_spending`` splits the error rate over those looks (obf won on
    # benchmarks.racing_coverage: docs/validity.md); ``race_futility`` stops a candidate
    # whose conditional power at the cap is below it (engine.racing). The cap of 20 won
    # on the validity benchmark's tune half (helpful recall 0.43 -> 0.64, precision
    # 0.80 -> 0.90 against a cap of 10: docs/validity.md).
    max_replicates: int = option(
        20, "Most replicates per candidate when racing (at most seeds: no racing).", ge=1
    )
    race_step: int = option(5, "Replicates each racing round adds.", ge=1)
    race_spending: RaceSpending = option(  # noqa: RUF009 (a str: immutable)
        "obf",
        "How racing splits the 0.05 error rate over its rounds: obf (O'Brien-Fleming-like: "
        "little to early rounds, most to the last, so a candidate raced to the cap is "
        "nearly as powerful as in a fixed job), pocock (more early, less last) or "
        "bonferroni (0.05 / rounds each).",
    )
    race_futility: float = option(
        0.0,
        "Racing: stop an open candidate when the chance that its interval at the cap "
        "excludes zero, were its gain what it measures so far, is below this (0 = never).",
        ge=0,
        lt=1,
    )
    # ``fdr``: storey won on the validity benchmark's tune half (docs/validity.md).
    fdr: FdrMethod = option(  # noqa: RUF009 (a str: immutable)
        "storey",
        "The q-value a verdict needs at most 0.05 of: bh (Benjamini-Hochberg) or storey "
        "(adaptive BH: BH's times the estimated share of candidates without an effect).",
    )
    dropout: float = option(0.0, "Dropout after every hidden layer.", ge=0, lt=1)
    weight_decay: float = option(0.0, "Decoupled weight decay (AdamW).", ge=0, le=10)
    sharing: Sharing = option(  # noqa: RUF009 (a str: immutable, as ruff sees for float)
        "hard",
        "How a probe's tasks share the trunk: hard (one shared trunk), soft_l2 or "
        "soft_trace (a trunk per task, coupled by an L2 distance or a trace norm).",
    )
    # A stored job that left the coupling out stores null and trains this default when
    # it runs or resumes: changing it needs a migration writing 0.1 into those budgets
    # (as 0008 did for race_spending). docs/validity.md measures the choice.
    coupling: float = option(
        0.1, "Soft sharing: weight of the trunks' coupling penalty.", ge=0, le=1e6
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        fractions = tuple(sorted({float(f) for f in self.main_train_fractions}))
        object.__setattr__(self, "main_train_fractions", fractions)
        for f in fields(self):
            bounds = self.bounds(f.name)
            value = getattr(self, f.name)
            if bounds.min_items is not None:
                _check(len(value) >= bounds.min_items, f.name, "needs at least one layer width")
                each = "widths must be positive" if f.name == "hidden" else ""
                each = each or f"items must each be {bounds.describe()}"
                _check(all(bounds.admits(h) for h in value), f.name, each)
            elif bounds.limited and value is not None:
                number = isinstance(value, int | float) and not isinstance(value, bool)
                _check(number and bounds.admits(value), f.name, f"must be {bounds.describe()}")
        _check(
            self.val_fraction + self.test_fraction < 0.9,
            "test_fraction",
            "validation and test fractions together must leave rows to train on",
        )
        _check(
            not self.main_train_fractions or self.main_train_fraction == 1.0,
            "main_train_fraction",
            "must be left at 1 when main_train_fractions is set (list the shares there)",
        )
        _check(
            self.proxy_rows in PROXY_ROWS, "proxy_rows", f"must be one of {', '.join(PROXY_ROWS)}"
        )
        _check(
            self.screen_proxy in PROXY_NAMES,
            "screen_proxy",
            f"must be one of {', '.join(PROXY_NAMES)}",
        )
        _check(
            self.subset_weighting in SUBSET_WEIGHTINGS,
            "subset_weighting",
            f"must be one of {', '.join(SUBSET_WEIGHTINGS)}",
        )
        _check(isinstance(self.subset_search, bool), "subset_search", "must be true or false")
        _check(
            self.race_spending in RACE_SPENDINGS,
            "race_spending",
            f"must be one of {', '.join(RACE_SPENDINGS)}",
        )
        _check(self.fdr in FDR_METHODS, "fdr", f"must be one of {', '.join(FDR_METHODS)}")
        _check(self.sharing in SHARINGS, "sharing", f"must be one of {', '.join(SHARINGS)}")
        _check(
            self.sharing == "hard" or not self.subset_search,
            "sharing",
            "must be hard for a subset search (soft sharing probes pair one candidate)",
        )

    @classmethod
    def bounds(cls, name: str) -> Bounds:
        """The range and description of option ``name`` (open for a named choice)."""
        found = next(f for f in fields(cls) if f.name == name)
        bounds = found.metadata.get(BOUNDS)
        return bounds if isinstance(bounds, Bounds) else Bounds()

    @property
    def replicate_cap(self) -> int:
        """The most replicates any probe of the job trains (the splits drawn). One
        replicate gives no interval to race on, so ``seeds=1`` trains one."""
        return self.seeds if self.seeds < 2 else max(self.seeds, self.max_replicates)

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
