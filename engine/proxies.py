"""Cheap screening: proxies of each candidate's transfer to the main task, read off one
joint training run of the main task with every candidate (one probe per replicate,
every candidate in its own auxiliary slot, loss main + λ·Σ candidates).

Two proxies, both on the shared (trunk) parameters θ. A candidate's loss L_c is read
on the training minibatch; the main task's loss L_main on a minibatch of its labelled
training rows (``proxy_rows="main"``) or on the training minibatch (``"batch"``, TAG).

- ``lookahead`` — lookahead inter-task affinity (TAG, Fifty et al. 2021): take a plain
  SGD step on candidate c's loss alone, θ_c = θ − lr·∇θ L_c, and measure the relative
  change of the main loss, Z(c→main) = 1 − L_main(θ_c) / L_main(θ). It is divided by
  lr so that it reads the same whatever the learning rate (to first order it is
  ∇L_main·∇L_c / L_main); positive means a step for c also lowers the main loss.
  Steps are weighted by L_main(θ) (see :class:`_Meter`).
- ``grad_cosine`` — cosine between ∇θ L_main and ∇θ L_c (Du et al. 2018).

Both are measured every ``budget.proxy_every`` steps and averaged over the run, then
over replicates. All candidates are measured at once: one backward pass gives every
candidate's gradient with respect to its own copy of the trunk output, a batched
backward (``is_grads_batched``) carries them through the trunk, and ``torch.func.vmap``
evaluates the main loss under every candidate's lookahead step. Candidates are cut into
chunks only to respect the memory cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.budget import PROXY_NAMES, Budget, ProxyName
from engine.objective import ProbeObjective
from engine.probe import ProbeBatch
from engine.probe_spec import ProbeSpec
from engine.sampling import BatchOrder
from engine.seeding import derive_seed
from engine.training import ProgressFn
from engine.training_data import TrainingData

_BYTES = 4  # float32


@dataclass(frozen=True, eq=False)
class ScreenResult:
    """Proxy scores of every candidate from one joint run per replicate.

    ``values[name]`` is [replicates, candidates]: the (for ``lookahead`` loss-weighted)
    mean over the measured steps of that replicate, NaN where a candidate was never
    measured (e.g. a sparse label that no measured minibatch carried). ``measured``
    counts those steps. ``epochs`` and ``probes`` say what the run cost: ``probes ×
    epochs`` probe-epochs.
    """

    values: dict[ProxyName, np.ndarray]
    measured: np.ndarray  # [R, A] int
    epochs: int
    probes: int

    @property
    def n_candidates(self) -> int:
        return int(self.measured.shape[1])

    def scores(self, name: ProxyName) -> np.ndarray:
        """Per candidate [A]: the mean over replicates that measured it (NaN if none)."""
        values = self.values[name]
        finite = np.isfinite(values)
        total = np.where(finite, values, 0.0).sum(axis=0)
        count = finite.sum(axis=0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def proxies(self, candidate: int) -> dict[str, float]:
        """One candidate's scores, e.g. ``{"lookahead": 0.8, "grad_cosine": 0.2}``."""
        return {name: float(self.scores(name)[candidate]) for name in PROXY_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (NaN kept as float NaN), for storage by a caller."""
        return {
            "values": {name: v.tolist() for name, v in self.values.items()},
            "measured": self.measured.tolist(),
            "epochs": self.epochs,
            "probes": self.probes,
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> ScreenResult:
        """The inverse of :meth:`to_dict` (None read as NaN)."""
        values: dict[ProxyName, np.ndarray] = {
            name: np.array(body["values"][name], dtype=np.float64) for name in PROXY_NAMES
        }
        measured = np.array(body["measured"], dtype=np.int64)
        return cls(values, measured, int(body["epochs"]), int(body["probes"]))


def screen(
    data: TrainingData,
    budget: Budget,
    *,
    seed: int,
    progress: ProgressFn | None = None,
) -> ScreenResult:
    """Train the main task jointly with every candidate (one probe per replicate, loss
    main + λ·Σ candidates, Adam, ``budget.screening_epochs`` epochs, no early stopping)
    and measure the proxies every ``budget.proxy_every`` steps.

    The probes start from the same trunk and main head as the paired probes of their
    replicate and see the same minibatches. ``progress`` gets (probe-epochs done,
    total), the run counting ``replicates × screening_epochs``.
    """
    n_candidates = len(data.problem.candidates)
    specs = [ProbeSpec(r, tuple(range(n_candidates))) for r in range(budget.seeds)]
    batch = ProbeBatch(
        specs,
        n_features=data.problem.features.n_features,
        hidden=budget.hidden,
        main_outputs=data.problem.main.n_outputs,
        aux_outputs=data.aux_outputs,
        seed=seed,
        device=data.device,
    )
    objective = ProbeObjective(data, batch)
    optimizer = torch.optim.Adam(batch.parameters(), lr=budget.lr)
    batches = BatchOrder(data, objective.replicates, seed)
    main_rows = _MainRows(data, objective.replicates, seed, budget.batch_size)
    meter = _Meter(objective, lr=budget.lr, chunk=_candidate_chunk(batch, budget))
    epochs = budget.screening_epochs
    n_probes = batch.n_probes
    diverged = torch.zeros(n_probes, dtype=torch.bool, device=data.device)
    step = 0
    for epoch in range(epochs):
        for rows in batches.epoch(budget.batch_size):
            if step % budget.proxy_every == 0:
                measured_on = rows if budget.proxy_rows == "batch" else main_rows.draw()
                meter.measure(rows, measured_on, usable=~diverged)
            main_loss, aux_loss = objective.losses(rows)
            loss = main_loss + budget.lam * aux_loss.sum(dim=1)  # [P]
            # As in the probes: a replicate whose loss diverges stops counting, alone.
            diverged = diverged | ~torch.isfinite(loss)
            optimizer.zero_grad(set_to_none=True)
            torch.where(diverged, 0.0, loss).sum().backward()
            optimizer.step()
            step += 1
        if progress is not None:
            progress(n_probes * (epoch + 1), n_probes * epochs)
    return meter.result(epochs)


class _MainRows:
    """Minibatches of the main task's labelled training rows, one per replicate.

    With few main labels (``main_train_fraction`` < 1) or candidates from other tables,
    the training minibatch carries a handful of main labels or none, and a main loss
    measured on it is mostly noise; this draws ``batch_size`` main-labelled rows instead
    (all of them when fewer), from a generator of its own so training is unchanged.
    """

    def __init__(
        self, data: TrainingData, replicates: Sequence[int], seed: int, batch_size: int
    ) -> None:
        labelled = [torch.isfinite(data.main_train[r]).nonzero().squeeze(1) for r in replicates]
        self.rows = labelled
        self.size = min(batch_size, *(len(rows) for rows in labelled))
        self.generators = [
            torch.Generator().manual_seed(derive_seed(seed, "proxy-rows", r)) for r in replicates
        ]

    def draw(self) -> torch.Tensor:
        """Rows [R', m] with a main label, m = min(batch_size, fewest labelled rows)."""
        picks = [
            rows[torch.randperm(len(rows), generator=g)[: self.size].to(rows.device)]
            for rows, g in zip(self.rows, self.generators, strict=True)
        ]
        return torch.stack(picks)


class _Meter:
    """Accumulates both proxies per (replicate probe, candidate slot).

    The lookahead is kept as two sums over steps, of L_main(θ) − L_main(θ_c) and of
    L_main(θ); their ratio is the loss-weighted mean of the per-step Z. A plain mean of
    per-step ratios lets the steps where the main training loss is nearly zero (late in
    a low-data run) dominate with huge relative changes.
    """

    def __init__(self, objective: ProbeObjective, *, lr: float, chunk: int) -> None:
        self.objective = objective
        self.batch = objective.batch
        self.lr = lr
        self.chunk = chunk
        shape = objective.slot_active.shape  # [P, A]
        device = objective.data.device

        def zeros() -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=device)

        self.drop, self.base, self.cosine = zeros(), zeros(), zeros()
        self.counts = torch.zeros(shape, dtype=torch.long, device=device)

    def measure(self, rows: torch.Tensor, main_rows: torch.Tensor, usable: torch.Tensor) -> None:
        """Candidate gradients on minibatch ``rows`` [R', b], the main task's loss and
        gradient on ``main_rows`` [R', m]; ``usable`` [P] masks diverged probes."""
        objective, batch = self.objective, self.batch
        shared = batch.shared_parameters()
        params = [p.detach() for p in shared]
        x_main = objective.inputs(main_rows)  # [R', m, F]

        def main_loss_with(trunk: list[torch.Tensor]) -> torch.Tensor:
            return objective.main_loss(batch.trunk(x_main, trunk), main_rows)  # [P]

        main_loss = main_loss_with(shared)
        main_flat = batch.per_probe(torch.autograd.grad(main_loss.sum(), shared))  # [P, S]
        main_norm = main_flat.norm(dim=-1)  # [P]

        h = batch.trunk(objective.inputs(rows))  # [P, b, H]
        # Each candidate's gradient with respect to the trunk output, separately: slot
        # a's loss reaches h only through its own head, so it is dL_a/d(out_a) @ W_aᵀ.
        outputs = batch.aux_heads(h.detach()).requires_grad_(True)  # [P, A, b, O]
        (g_out,) = torch.autograd.grad(objective.aux_loss_of(outputs, rows).sum(), outputs)
        g_slots = torch.einsum("pabo,paho->pabh", g_out, batch.aux_w.detach())  # [P, A, b, H]

        stepped = torch.func.vmap(main_loss_with)
        with torch.no_grad():
            # The loss before goes through the same vmapped path as the losses after,
            # so rounding differs in neither.
            before = stepped([p[None] for p in params])[0]  # [P]
        ok_probe = usable & torch.isfinite(before) & (before > 0) & (main_norm > 0)

        n_slots = g_slots.shape[1]
        for start in range(0, n_slots, self.chunk):
            stop = min(n_slots, start + self.chunk)
            # [C, P, b, H] through the trunk -> each candidate's gradient, [C, *param].
            grads = torch.autograd.grad(
                h,
                shared,
                grad_outputs=g_slots[:, start:stop].movedim(1, 0),
                retain_graph=stop < n_slots,
                is_grads_batched=True,
            )
            with torch.no_grad():
                flat = batch.per_probe(grads)  # [C, P, S]
                norm = flat.norm(dim=-1)  # [C, P]
                cosine = (flat * main_flat).sum(-1) / (norm * main_norm).clamp_min(1e-30)
                after = stepped([p - self.lr * g for p, g in zip(params, grads, strict=True)])
                ok = ok_probe & (norm > 0) & torch.isfinite(after) & torch.isfinite(cosine)
                ok = (ok & objective.slot_active[:, start:stop].T).T  # [P, C]
                self.drop[:, start:stop] += torch.where(ok, (before - after).T, 0.0).double()
                self.base[:, start:stop] += torch.where(ok, before[:, None], 0.0).double()
                self.cosine[:, start:stop] += torch.where(ok, cosine.T, 0.0).double()
                self.counts[:, start:stop] += ok.long()

    def result(self, epochs: int) -> ScreenResult:
        counts = self.counts.cpu().numpy()
        measured = counts > 0
        base = self.base.cpu().numpy()
        lookahead = self.drop.cpu().numpy() / np.where(measured, base, 1.0) / self.lr
        cosine = self.cosine.cpu().numpy() / np.maximum(counts, 1)
        values: dict[ProxyName, np.ndarray] = {
            "lookahead": np.where(measured, lookahead, np.nan),
            "grad_cosine": np.where(measured, cosine, np.nan),
        }
        # Probes are one per replicate, in replicate order, and slot a is candidate a.
        return ScreenResult(values, counts, epochs, self.batch.n_probes)


def _candidate_chunk(batch: ProbeBatch, budget: Budget) -> int:
    """How many candidates one measurement handles at once under ``budget.memory_mb``:
    per candidate, its trunk gradient, stepped copy and flat row (3 × P × S floats) and
    the activations of its batched backward and lookahead forward."""
    per_probe = sum(p.numel() for p in batch.shared_parameters()) // batch.n_probes
    activations = budget.batch_size * sum(budget.hidden)
    per_candidate = batch.n_probes * (3 * per_probe + 6 * activations) * _BYTES
    return max(1, int(budget.memory_mb * 2**20) // max(1, per_candidate))
