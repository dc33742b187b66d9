"""Soft parameter sharing probes (Ruder 2017, §3.2): every task keeps its own trunk, and
the distance between the main task's trunk and the candidate's is regularised.

A soft probe pairs the main task with (at most) one candidate: the main trunk carries
the main head, the candidate trunk the candidate's head, and the loss is

    main loss + λ · auxiliary loss + coupling · Σ_l penalty(θ_l^main, θ_l^aux)

with θ_l a trunk layer's parameters, flattened: its weights and its bias together (the
affine map [W_l; b_l]). Biases are coupled too, so that a large coupling ties the whole
trunk and its limit is hard sharing; leaving them free would let every hidden unit of
the two tasks shift apart however strong the coupling.

* ``soft_l2`` (Duong et al. 2015): ||θ^main − θ^aux||², the squared L2 distance.
* ``soft_trace`` (Yang & Hospedales 2017): ||[θ^main; θ^aux]||_*, the trace (nuclear)
  norm of the two tasks' flattened parameters stacked as a [2, d] matrix.

Layout: :class:`SoftProbeBatch` is a :class:`engine.probe.ProbeBatch` whose replicate
groups hold 2K trunk slices instead of K, task-major: the K probes' main trunks, then
their K candidate trunks. The trunk still runs as one [2K*H1, F] @ [F, b] product and
one batched matmul per deeper layer for the whole group; the heads of a probe read its
two slices. The main trunks start from, and (with the replicate's minibatch order and
dropout masks) train exactly like, the hard-sharing probes' trunks; each candidate trunk
starts from the same draws as its main trunk, so an infinite coupling is one trunk. A
baseline's candidate slice has no task and no penalty: it never moves, and the baseline
is the main trunk alone, the same model as under hard sharing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.budget import Budget
from engine.probe import ProbeBatch, ProbeSpec, _cat

SMOOTHING = 1e-8
"""ε of the smoothed trace norm Σ_i sqrt(σ_i² + ε): the nuclear norm is not
differentiable where the stacked matrix loses rank (at the start, where the two trunks
are equal), and the smoothed one is, with a gradient that is unique there."""


class SoftProbeBatch(ProbeBatch):
    """Probes with one trunk per task (at most one candidate per probe).

    Every trunk tensor of a replicate group holds 2K slices: slice j < K is probe j's
    main trunk (the hard-sharing trunk of :class:`ProbeBatch`), slice K + j its
    candidate trunk, initialised to the same values. Heads are as in ProbeBatch.
    """

    def __init__(
        self,
        specs: Sequence[ProbeSpec],
        *,
        n_features: int,
        hidden: Sequence[int],
        main_outputs: int,
        aux_outputs: Sequence[int],
        seed: int,
        device: torch.device,
    ) -> None:
        if any(len(s.aux) > 1 for s in specs):
            raise ValueError("a soft sharing probe pairs the main task with one candidate")
        super().__init__(
            specs,
            n_features=n_features,
            hidden=hidden,
            main_outputs=main_outputs,
            aux_outputs=aux_outputs,
            seed=seed,
            device=device,
        )

        def twice(t: torch.Tensor, dim: int) -> torch.Tensor:
            return torch.cat([t.detach(), t.detach()], dim=dim).requires_grad_(True)

        self.first_w = [twice(w, 1) for w in self.first_w]  # [F, 2K*H1]
        self.first_b = [twice(b, 1) for b in self.first_b]  # [1, 2K*H1]
        self.deep_w_groups = [[twice(w, 0) for w in ws] for ws in self.deep_w_groups]
        self.deep_b_groups = [[twice(b, 0) for b in bs] for bs in self.deep_b_groups]
        self.coupled = self.slot_active[:, 0]  # [P] probes with a candidate trunk

    @property
    def deep_w(self) -> list[torch.Tensor]:
        """Per deeper layer, the main trunks' weights [P, in, out]."""
        return [_cat([w[: w.shape[0] // 2] for w in ws]) for ws in self.deep_w_groups]

    @property
    def deep_b(self) -> list[torch.Tensor]:
        """Per deeper layer, the main trunks' biases [P, 1, out]."""
        return [_cat([b[: b.shape[0] // 2] for b in bs]) for bs in self.deep_b_groups]

    def probe_masks(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """As :meth:`ProbeBatch.probe_masks`: a probe's two trunk slices follow its mask."""
        width = self.hidden[0]
        trunks = [mask[start:stop].repeat(2) for _, start, stop in self.groups]
        first = [m.repeat_interleave(width)[None] for m in trunks]
        deep = [m[:, None, None] for m in trunks] * (2 * len(self.deep_w_groups))
        heads = [mask[start:stop, None, None] for _, start, stop in self.groups]
        return [*first, *first, *deep, *heads, *heads]

    def head_outputs(
        self,
        x: torch.Tensor,
        *,
        main_only: bool = False,
        dropout: Sequence[Sequence[torch.Tensor]] | None = None,
        fused: bool = False,
    ) -> torch.Tensor:
        """As :meth:`ProbeBatch.head_outputs`: the main head reads the main trunk, the
        candidate's head its own trunk. Outputs [P, O_main + O_aux, b]."""
        n_main = self.main_outputs
        parts = []
        hidden = self.hidden_groups(x, dropout=dropout, fused=fused)  # [2K, H, b] each
        for g, h in enumerate(hidden):
            k = h.shape[0] // 2
            w, b = self.heads_w_groups[g], self.heads_b_groups[g]
            main = torch.baddbmm(b[:, :n_main], w[:, :n_main], h[:k])  # [K, O_main, b]
            if main_only:
                parts.append(main)
                continue
            aux = torch.baddbmm(b[:, n_main:], w[:, n_main:], h[k:])  # [K, O_aux, b]
            parts.append(torch.cat([main, aux], dim=1))
        return _cat(parts)

    def penalty(self, sharing: str) -> torch.Tensor:
        """The coupling penalty of every probe [P] (0 for a baseline): Σ over trunk
        layers of ``sharing``'s distance between its main and candidate trunk."""
        return torch.where(self.coupled, coupling_penalty(self.layer_pairs(), sharing), 0.0)

    def layer_pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per trunk layer, the main and the candidate trunks' parameters of every
        probe, each [P, in*out + out] (weights, then bias)."""
        width = self.hidden[0]
        firsts = []
        for w, b in zip(self.first_w, self.first_b, strict=True):
            # Column block j of [F, 2K*H1] is trunk slice j: -> [2K, F*H1 + H1].
            per_slice = torch.cat([w.unflatten(1, (-1, width)), b.unflatten(1, (-1, width))])
            firsts.append(per_slice.movedim(1, 0).flatten(1))
        layers = [firsts]
        for ws, bs in zip(self.deep_w_groups, self.deep_b_groups, strict=True):
            pairs_wb = zip(ws, bs, strict=True)
            layers.append([torch.cat([w, b], dim=1).flatten(1) for w, b in pairs_wb])
        pairs = []
        for per_group in layers:
            halves = [t.unflatten(0, (2, -1)) for t in per_group]  # [2, K, d]
            pairs.append((_cat([t[0] for t in halves]), _cat([t[1] for t in halves])))
        return pairs


def coupling_penalty(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], sharing: str
) -> torch.Tensor:
    """Σ over layers of the penalty between main parameters m [P, d_l] and candidate
    parameters a [P, d_l] -> [P].

    ``soft_l2``: ||m − a||². ``soft_trace``: the smoothed trace norm of [m; a], from the
    2×2 Gram matrix G = [m; a][m; a]ᵀ, whose eigenvalues are the squared singular
    values: (Σ_i sqrt(λ_i + ε))² = tr G + 2ε + 2 sqrt(det G + ε tr G + ε²). The Gram
    entries are written with δ = a − m, det G = |m|²|δ|² − (m·δ)², so that near-equal
    trunks (rank nearly 1) give a small determinant without float cancellation.
    """
    total: torch.Tensor | None = None
    for m, a in pairs:
        delta = a - m
        if sharing == "soft_l2":
            term = delta.square().sum(dim=1)
        elif sharing == "soft_trace":
            mm = m.square().sum(dim=1)
            md = (m * delta).sum(dim=1)
            dd = delta.square().sum(dim=1)
            trace = 2 * mm + 2 * md + dd
            det = (mm * dd - md.square()).clamp(min=0)
            eps = SMOOTHING
            term = torch.sqrt(trace + 2 * eps + 2 * torch.sqrt(det + eps * trace + eps**2))
        else:
            raise ValueError(f"no coupling penalty for sharing {sharing!r}")
        total = term if total is None else total + term
    assert total is not None
    return total


def make_batch(
    specs: Sequence[ProbeSpec],
    budget: Budget,
    *,
    n_features: int,
    main_outputs: int,
    aux_outputs: Sequence[int],
    seed: int,
    device: torch.device,
) -> ProbeBatch:
    """The batch that trains ``specs`` under the budget's sharing."""
    kind = ProbeBatch if budget.sharing == "hard" else SoftProbeBatch
    return kind(
        specs,
        n_features=n_features,
        hidden=budget.hidden,
        main_outputs=main_outputs,
        aux_outputs=aux_outputs,
        seed=seed,
        device=device,
    )
