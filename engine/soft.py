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
starts from the same draws as its main trunk, so an infinite soft_l2 coupling is one trunk. A
baseline's candidate slice has no task and no penalty: it never moves, and the baseline
is the main trunk alone, the same model as under hard sharing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from engine.budget import Budget
from engine.probe import ProbeBatch, _cat
from engine.probe_spec import ProbeSpec

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
        stats = self.layer_stats(squares_only=sharing == "soft_l2")
        return torch.where(self.coupled, penalty_of(stats, sharing), 0.0)

    def layer_stats(self, *, squares_only: bool = False) -> list[tuple[torch.Tensor, ...]]:
        """Per trunk layer, per probe [P]: (|m|², m·δ, |δ|²) over the layer's weights
        and bias, m the main trunk's, δ = a − m the candidate's difference from it
        (``squares_only``: (|δ|²,) alone). Read from views of the stacked tensors, in
        one pass per statistic."""
        width = self.hidden[0]

        def first_layer(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # [rows, 2K*H1]: column block j is trunk slice j; main half, then candidate.
            m, a = t.unflatten(1, (2, -1)).unbind(1)  # [rows, K*H1] each
            return _sums(m, a - m, squares_only, lambda x: x.sum(0).unflatten(0, (-1, width)))

        def deep_layer(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            m, a = t.unflatten(0, (2, -1)).unbind(0)  # [K, in, out] each
            return _sums(m, a - m, squares_only, lambda x: x.flatten(1))

        layers = [[(first_layer, w, b) for w, b in zip(self.first_w, self.first_b, strict=True)]]
        for ws, bs in zip(self.deep_w_groups, self.deep_b_groups, strict=True):
            layers.append([(deep_layer, w, b) for w, b in zip(ws, bs, strict=True)])
        stats = []
        for per_group in layers:
            groups = []
            for read, w, b in per_group:
                groups.append([x + y for x, y in zip(read(w), read(b), strict=True)])  # [K]
            stats.append(tuple(_cat([g[i] for g in groups]) for i in range(len(groups[0]))))
        return stats


def _sums(
    m: torch.Tensor,
    delta: torch.Tensor,
    squares_only: bool,
    per_probe: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, ...]:
    """(|m|², m·δ, |δ|²) per probe [K] (or (|δ|²,)); ``per_probe`` maps an elementwise
    product to [K, n], the probe's entries by rows."""

    def total(x: torch.Tensor) -> torch.Tensor:
        return per_probe(x).sum(1)

    if squares_only:
        return (total(delta.square()),)
    return total(m.square()), total(m * delta), total(delta.square())


def coupling_penalty(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], sharing: str
) -> torch.Tensor:
    """Σ over layers of the penalty between main parameters m [P, d_l] and candidate
    parameters a [P, d_l] -> [P] (see :func:`penalty_of`)."""
    stats = [_sums(m, a - m, False, lambda x: x) for m, a in pairs]
    return penalty_of(stats, sharing)


def penalty_of(stats: Sequence[tuple[torch.Tensor, ...]], sharing: str) -> torch.Tensor:
    """Σ over layers of the penalty per probe [P] from each layer's (|m|², m·δ, |δ|²),
    m the main trunk's parameters and δ = a − m the candidate's difference from them
    (for ``soft_l2``, (|δ|²,) is enough).

    ``soft_l2``: ||m − a||² = |δ|². ``soft_trace``: the smoothed trace norm of [m; a],
    from the 2×2 Gram matrix G = [m; a][m; a]ᵀ, whose eigenvalues are the squared
    singular values: (Σ_i sqrt(λ_i + ε))² = tr G + 2ε + 2 sqrt(det G + ε tr G + ε²),
    with tr G = 2|m|² + 2m·δ + |δ|² and det G = |m|²|δ|² − (m·δ)², written with δ so
    that near-equal trunks (rank nearly 1) give a small determinant without float
    cancellation.
    """
    if sharing not in ("soft_l2", "soft_trace"):
        raise ValueError(f"no coupling penalty for sharing {sharing!r}")
    total: torch.Tensor | None = None
    for layer in stats:
        if sharing == "soft_l2":
            term = layer[-1]
        else:
            mm, md, dd = layer
            trace = 2 * mm + 2 * md + dd
            det = (mm * dd - md.square()).clamp(min=0)
            eps = SMOOTHING
            term = torch.sqrt(trace + 2 * eps + 2 * torch.sqrt(det + eps * trace + eps**2))
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
