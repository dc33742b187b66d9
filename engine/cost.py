"""What a job will cost before it runs: floating-point operations and peak memory.

Pure arithmetic on the sizes a submission already knows (rows, encoded feature width,
label widths, number of candidates) and the budget, so a service can refuse a job
that would run for weeks or could never fit in memory, cheaply, before queueing it.

The figures are estimates of the order of magnitude, not measurements:

* FLOPs count the multiply-adds of the dense layers (forward 2, backward 4 per
  parameter and row) over every planned probe-epoch (:func:`engine.planned_epochs`,
  the most a job can take: early stopping only makes it cheaper), the validation pass
  of every epoch, and for screening the proxies' per-candidate backward and look-ahead
  passes. Elementwise work, losses and data movement are left out.
* Memory is the training data as tensors on the device plus the largest chunk: one
  probe (parameters, gradient, two Adam moments and a minibatch's activations, the
  same estimate :func:`engine.chunk_plan` packs chunks with), or as many probes as
  the chunk cap ``budget.memory_mb`` lets train together (a job's shares train
  together, so their probes count as one job's). One probe larger than the
  cap still runs alone, so it is the single probe's size that makes a job impossible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.budget import Budget
from engine.pipeline import planned_epochs
from engine.plan import probe_memory_bytes, probe_parameters

_MIB = 2**20


@dataclass(frozen=True)
class JobShape:
    """The sizes of a job's problem that its cost depends on.

    rows: rows of the main table; n_features: encoded feature width (a text column
    counts one column per kept category); main_outputs / aux_outputs: width of the
    main head and of the widest candidate head (classes of a multiclass label, else 1).
    """

    rows: int
    n_features: int
    n_candidates: int
    main_outputs: int = 1
    aux_outputs: int = 1


@dataclass(frozen=True)
class CostEstimate:
    """A job's estimated cost (see the module's docstring for what is counted)."""

    flops: float
    memory_bytes: int
    probe_epochs: int
    probe_bytes: int
    data_bytes: int
    parameters: int

    @property
    def memory_mb(self) -> float:
        return self.memory_bytes / _MIB

    def to_dict(self) -> dict[str, float | int]:
        """The figures a job resource shows (FLOPs to 3 significant digits)."""
        return {
            "flops": float(f"{self.flops:.3g}"),
            "memory_mb": round(self.memory_mb, 1),
            "probe_epochs": self.probe_epochs,
            "probe_memory_mb": round(self.probe_bytes / _MIB, 1),
            "data_memory_mb": round(self.data_bytes / _MIB, 1),
        }


def data_memory_bytes(
    rows: int, n_features: int, n_tasks: int, replicates: int, shares: int = 0
) -> int:
    """The training data on the device: features and labels (float32) for every row,
    and per replicate its usable main labels (float32) and row indices (int64); with
    ``shares`` (``main_train_fractions``, trained together) also per replicate and row
    the share its main label trains from (int8)."""
    per_row = 4 + 8 + (1 if shares else 0)
    return 4 * rows * (n_features + n_tasks) + replicates * rows * per_row


def training_rows(rows: int, budget: Budget) -> tuple[int, int]:
    """(rows a replicate trains on, rows it validates on each epoch)."""
    val = int(rows * budget.val_fraction)
    test = int(rows * budget.test_fraction)
    return max(1, rows - val - test), max(1, val)


def estimate_cost(method: str, budget: Budget, shape: JobShape) -> CostEstimate:
    """Estimated FLOPs and peak memory of a job of ``method`` with ``budget``."""
    n_train, n_val = training_rows(shape.rows, budget)
    batch = min(budget.batch_size, n_train)  # a minibatch never holds more rows
    hidden: Sequence[int] = budget.hidden
    trunk = probe_parameters(shape.n_features, hidden, 0, 0, 0)  # no head
    # Soft sharing trains a second trunk per probe (engine.soft).
    trunks = 1 if budget.sharing == "hard" else 2

    def params(n_aux: int) -> int:
        heads = probe_parameters(
            shape.n_features, hidden, shape.main_outputs, shape.aux_outputs, n_aux
        )
        return heads + (trunks - 1) * trunk

    def memory(n_aux: int) -> int:
        one = probe_memory_bytes(
            n_features=shape.n_features,
            hidden=hidden,
            batch_size=batch,
            main_outputs=shape.main_outputs,
            aux_outputs=shape.aux_outputs,
            n_aux=n_aux,
        )
        extra = probe_memory_bytes(
            n_features=shape.n_features,
            hidden=hidden,
            batch_size=batch,
            main_outputs=0,
            aux_outputs=0,
            n_aux=0,
        )
        return one + (trunks - 1) * extra

    def epoch_flops(n_params: int) -> float:
        return 6.0 * n_params * n_train + 2.0 * n_params * n_val

    total_epochs = planned_epochs(method, budget, shape.n_candidates)
    screening = budget.seeds * budget.screening_epochs if method != "probe" else 0
    probing = total_epochs - screening
    flops = probing * epoch_flops(params(1))
    if screening:
        # One joint probe per replicate with every candidate's head, plus, every
        # proxy_every steps, a backward and a look-ahead pass through the trunk per
        # candidate.
        proxies = 6.0 * trunk * n_train * shape.n_candidates / budget.proxy_every
        flops += screening * (epoch_flops(params(shape.n_candidates)) + proxies)

    cap = int(budget.memory_mb * _MIB)
    single = memory(1)
    probes = total_epochs // max(1, budget.epochs)  # probes in all, an upper bound
    chunk = max(single, min(cap, probes * single))
    if screening:
        chunk = max(chunk, budget.seeds * memory(shape.n_candidates))
    data = data_memory_bytes(
        shape.rows,
        shape.n_features,
        1 + shape.n_candidates,
        budget.seeds,
        len(budget.main_train_fractions),
    )
    return CostEstimate(
        flops=flops,
        memory_bytes=data + chunk,
        probe_epochs=total_epochs,
        probe_bytes=single,
        data_bytes=data,
        parameters=params(1),
    )
