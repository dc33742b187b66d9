"""Which probes a job trains, and how they are cut into chunks that fit in memory."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from engine.budget import Budget
from engine.probe_spec import ProbeSpec
from engine.problem import Problem

_BYTES = 4  # float32


def pairwise_plan(
    n_candidates: int, replicates: int, *, only: Sequence[int] | None = None
) -> list[ProbeSpec]:
    """Per replicate: the baseline, then the main task paired with each candidate (or
    with the candidates ``only`` lists, in that order)."""
    chosen = range(n_candidates) if only is None else only
    return [
        spec
        for r in range(replicates)
        for spec in [ProbeSpec(r), *(ProbeSpec(r, (c,)) for c in chosen)]
    ]


def probe_bytes(problem: Problem, budget: Budget, n_aux: int) -> int:
    """Estimated peak training memory of one probe of ``problem`` with ``n_aux``
    auxiliary heads (see :func:`probe_memory_bytes`)."""
    one = probe_memory_bytes(
        n_features=problem.features.n_features,
        hidden=budget.hidden,
        batch_size=budget.batch_size,
        main_outputs=problem.main.n_outputs,
        aux_outputs=max((t.n_outputs for t in problem.candidates), default=1),
        n_aux=n_aux,
    )
    if budget.sharing == "hard":
        return one
    # Soft sharing: a second trunk per probe (engine.soft), its parameters and state
    # and its activations.
    trunk = probe_memory_bytes(
        n_features=problem.features.n_features,
        hidden=budget.hidden,
        batch_size=budget.batch_size,
        main_outputs=0,
        aux_outputs=0,
        n_aux=0,
    )
    return one + trunk


def probe_parameters(
    n_features: int, hidden: Sequence[int], main_outputs: int, aux_outputs: int, n_aux: int
) -> int:
    """Trainable parameters of one probe: the trunk, the main head and ``n_aux``
    auxiliary heads (at least one slot), each ``aux_outputs`` wide."""
    sizes = [n_features, *hidden]
    params = sum(a * b + b for a, b in pairwise(sizes))
    return params + (sizes[-1] + 1) * (main_outputs + max(1, n_aux) * aux_outputs)


def probe_memory_bytes(
    *,
    n_features: int,
    hidden: Sequence[int],
    batch_size: int,
    main_outputs: int,
    aux_outputs: int,
    n_aux: int,
) -> int:
    """Estimated peak training memory of one probe with ``n_aux`` auxiliary heads:
    parameters with their gradient and two Adam moments, plus one minibatch's
    activations and their gradients."""
    slots = max(1, n_aux)
    params = probe_parameters(n_features, hidden, main_outputs, aux_outputs, n_aux)
    activations = batch_size * (
        n_features + 3 * sum(hidden) + 4 * slots * aux_outputs + main_outputs
    )
    return _BYTES * (4 * params + 2 * activations)


def chunk_plan(
    specs: Sequence[ProbeSpec], problem: Problem, budget: Budget
) -> list[list[ProbeSpec]]:
    """Cut ``specs`` (in order) into chunks whose estimated memory stays under
    ``budget.memory_mb``. A chunk is never empty, so one huge probe still runs alone."""
    cap = int(budget.memory_mb * 2**20)
    chunks: list[list[ProbeSpec]] = []
    current: list[ProbeSpec] = []
    used = 0
    for spec in specs:
        cost = probe_bytes(problem, budget, len(spec.aux))
        if current and used + cost > cap:
            chunks.append(current)
            current, used = [], 0
        current.append(spec)
        used += cost
    if current:
        chunks.append(current)
    return chunks
