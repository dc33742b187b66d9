"""Batched hard-sharing probes: P independent models (shared MLP trunk, a main head and
up to A auxiliary heads each) stored as stacked weights and run with batched matmuls.

Probe p's weights are slice p of every tensor, so one optimiser step over the stacked
tensors is the same as P separate steps: Adam is element-wise and the summed loss
gives each slice its own probe's gradient.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch

from engine.fused import activate
from engine.probe_spec import ProbeSpec
from engine.seeding import derive_seed


def _uniform(shape: tuple[int, ...], fan_in: int, seed: int) -> torch.Tensor:
    """PyTorch's nn.Linear default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


def linear_init(
    fan_in: int, fan_out: int, seed: int, purpose: str, *parts: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight [fan_in, fan_out] and bias [fan_out] of one layer, from a derived seed."""
    weight = _uniform((fan_in, fan_out), fan_in, derive_seed(seed, purpose + ".w", *parts))
    bias = _uniform((fan_out,), fan_in, derive_seed(seed, purpose + ".b", *parts))
    return weight.float(), bias.float()


class ProbeBatch:
    """Stacked parameters of P probes, ordered by replicate.

    Per probe: trunk layers W_l [in, out] + b_l, a main head with O_main outputs and A
    auxiliary slots of O_aux outputs; slot a of probe p trains candidate
    ``slot_task[p, a]`` when ``slot_active[p, a]``. Initialisation depends only on
    (seed, replicate) for the trunk and main head and on (seed, replicate, candidate) for
    an auxiliary head, so the baseline and every pairing of a replicate start from the
    same shared weights, and a probe's result does not depend on which other probes
    share its batch.

    All probes of one replicate see the same minibatch, so the first layer of a
    replicate's K probes is one [K*H, F] @ [F, b] matmul instead of K small ones.

    Activations run feature-major, [K, H, b] per replicate group (each probe's hidden
    units by rows), so that every batched matmul has the minibatch as its long side:
    the heads of a probe are one [O, H] @ [H, b] product. With the rows as the long
    side, CPU BLAS runs these thin products many times faster than [b, H] @ [H, O], and
    the groups need no transpose or concatenation of activations.

    Every tensor is a leaf per replicate group (``*_groups``): a group's matmuls read
    whole tensors, so no backward pass scatters a slice's gradient into a zeroed
    full-size buffer. ``deep_w``, ``heads_w``, ``main_w``... are the per-probe views
    across groups that callers read (concatenated copies when there are several groups).
    The heads of a probe are stored together, [K, O_main + A*O_aux, H], main head first.
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
        replicates = [s.replicate for s in specs]
        if replicates != sorted(replicates):
            raise ValueError("probe specs must be ordered by replicate")
        self.specs = tuple(specs)
        n_probes = len(self.specs)
        n_slots = max(1, max(len(s.aux) for s in self.specs))
        aux_width = max(aux_outputs) if aux_outputs else 1
        sizes = [n_features, *hidden]
        cache: dict[tuple[str, tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}

        def init(
            fan_in: int, fan_out: int, purpose: str, *parts: int
        ) -> tuple[torch.Tensor, torch.Tensor]:
            # Probes of one replicate share these draws; make each once.
            key = (purpose, parts)
            if key not in cache:
                cache[key] = linear_init(fan_in, fan_out, seed, purpose, *parts)
            return cache[key]

        self.groups = replicate_groups(replicates)

        def param(t: torch.Tensor) -> torch.Tensor:
            return t.to(device).requires_grad_(True)

        self.first_w: list[torch.Tensor] = []  # per group [F, K*H1]
        self.first_b: list[torch.Tensor] = []  # per group [1, K*H1]
        for r, start, stop in self.groups:
            w, b = init(sizes[0], sizes[1], "trunk", r, 0)
            self.first_w.append(param(w.repeat(1, stop - start)))
            self.first_b.append(param(b.repeat(stop - start)[None]))

        deep_w: list[list[torch.Tensor]] = [[] for _ in hidden[1:]]
        deep_b: list[list[torch.Tensor]] = [[] for _ in hidden[1:]]
        n_heads = main_outputs + n_slots * aux_width
        heads_w = torch.zeros(n_probes, n_heads, sizes[-1])
        heads_b = torch.zeros(n_probes, n_heads, 1)
        slot_task = torch.zeros(n_probes, n_slots, dtype=torch.long)
        slot_active = torch.zeros(n_probes, n_slots, dtype=torch.bool)
        for p, spec in enumerate(self.specs):
            r = spec.replicate
            for layer in range(1, len(hidden)):
                w, b = init(sizes[layer], sizes[layer + 1], "trunk", r, layer)
                deep_w[layer - 1].append(w)
                deep_b[layer - 1].append(b[None])
            w, b = init(sizes[-1], main_outputs, "main", r)
            heads_w[p, :main_outputs] = w.T
            heads_b[p, :main_outputs, 0] = b
            for a, candidate in enumerate(spec.aux):
                width = aux_outputs[candidate]
                w, b = init(sizes[-1], width, "aux", r, candidate)
                first = main_outputs + a * aux_width
                heads_w[p, first : first + width] = w.T
                heads_b[p, first : first + width, 0] = b
                slot_task[p, a] = candidate
                slot_active[p, a] = True

        spans = [(start, stop) for _, start, stop in self.groups]
        # Per layer, per group: [K, in, out] and [K, 1, out].
        self.deep_w_groups = [[param(torch.stack(ws[a:b])) for a, b in spans] for ws in deep_w]
        self.deep_b_groups = [[param(torch.stack(bs[a:b])) for a, b in spans] for bs in deep_b]
        self.heads_w_groups = [param(heads_w[a:b]) for a, b in spans]  # [K, O_all, H]
        self.heads_b_groups = [param(heads_b[a:b]) for a, b in spans]  # [K, O_all, 1]
        self.slot_task = slot_task.to(device)  # [P, A]
        self.slot_active = slot_active.to(device)  # [P, A]
        self.hidden = tuple(hidden)
        self.main_outputs = main_outputs
        self.aux_width = aux_width

    @property
    def n_probes(self) -> int:
        return len(self.specs)

    @property
    def deep_w(self) -> list[torch.Tensor]:
        """Per deeper layer, the weights of every probe [P, in, out]."""
        return [_cat(ws) for ws in self.deep_w_groups]

    @property
    def deep_b(self) -> list[torch.Tensor]:
        """Per deeper layer, the biases of every probe [P, 1, out]."""
        return [_cat(bs) for bs in self.deep_b_groups]

    @property
    def heads_w(self) -> torch.Tensor:
        """Every probe's head weights [P, O_main + A*O_aux, H]."""
        return _cat(self.heads_w_groups)

    @property
    def heads_b(self) -> torch.Tensor:
        """Every probe's head biases [P, O_main + A*O_aux, 1]."""
        return _cat(self.heads_b_groups)

    @property
    def main_w(self) -> torch.Tensor:
        """Main head weights [P, H, O_main]."""
        return self.heads_w[:, : self.main_outputs].transpose(1, 2)

    @property
    def main_b(self) -> torch.Tensor:
        """Main head bias [P, 1, O_main]."""
        return self.heads_b[:, : self.main_outputs].transpose(1, 2)

    @property
    def aux_w(self) -> torch.Tensor:
        """Auxiliary slot weights [P, A, H, O_aux]."""
        slots = self.heads_w[:, self.main_outputs :]  # [P, A*O_aux, H]
        per_slot: torch.Tensor = slots.unflatten(1, (-1, self.aux_width))
        return per_slot.transpose(2, 3)

    @property
    def aux_b(self) -> torch.Tensor:
        """Auxiliary slot bias [P, A, 1, O_aux]."""
        slots = self.heads_b[:, self.main_outputs :]  # [P, A*O_aux, 1]
        per_slot: torch.Tensor = slots.unflatten(1, (-1, self.aux_width))
        return per_slot.transpose(2, 3)

    def parameters(self) -> list[torch.Tensor]:
        return [*self.shared_parameters(), *self.heads_w_groups, *self.heads_b_groups]

    def probe_masks(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """A mask over probes [P] -> one mask per tensor of :meth:`parameters`,
        broadcastable to it, that selects the masked probes' slices."""
        width = self.hidden[0]
        first = [mask[start:stop].repeat_interleave(width)[None] for _, start, stop in self.groups]
        per_group = [mask[start:stop, None, None] for _, start, stop in self.groups]
        deep = per_group * (2 * len(self.deep_w_groups))
        return [*first, *first, *deep, *per_group, *per_group]

    def select_slices(
        self, tensors: Sequence[torch.Tensor], keep: torch.Tensor
    ) -> list[torch.Tensor]:
        """Tensors shaped like :meth:`parameters` -> copies of the slices of the probes
        where ``keep`` [P] holds, shaped like the parameters of :meth:`select`'s batch
        (a group none of whose probes is kept is left out)."""
        n_groups, width = len(self.groups), self.hidden[0]
        kept = [(g, keep[start:stop]) for g, (_, start, stop) in enumerate(self.groups)]
        kept = [(g, k) for g, k in kept if bool(k.any())]
        out = []
        for block in range(len(tensors) // n_groups):
            for g, k in kept:
                t = tensors[block * n_groups + g]
                # The first layer's two blocks hold a group's probes side by side in
                # columns of H1; every other tensor holds them along its first axis.
                out.append(t[:, k.repeat_interleave(width)] if block < 2 else t[k])
        return out

    def select(
        self, keep: torch.Tensor, tensors: Sequence[torch.Tensor] | None = None
    ) -> ProbeBatch:
        """The probes where ``keep`` [P] holds, as a batch of their own whose leaves
        are copies of their slices of ``tensors`` (shaped like :meth:`parameters`;
        default: the current weights). Trains on as they would have in this batch."""
        if type(self) is not ProbeBatch:
            raise TypeError(f"{type(self).__name__} does not support select")
        part = copy.copy(self)
        keep_list = keep.tolist()
        part.specs = tuple(s for s, k in zip(self.specs, keep_list, strict=True) if k)
        part.groups = replicate_groups([s.replicate for s in part.specs])
        values = self.select_slices(self.parameters() if tensors is None else tensors, keep)
        leaves = [v.detach().requires_grad_(True) for v in values]
        n_groups, n_deep = len(part.groups), len(self.deep_w_groups)
        per_block = [leaves[i : i + n_groups] for i in range(0, len(leaves), n_groups)]
        part.first_w, part.first_b = per_block[0], per_block[1]
        part.deep_w_groups = per_block[2 : 2 + n_deep]
        part.deep_b_groups = per_block[2 + n_deep : 2 + 2 * n_deep]
        part.heads_w_groups, part.heads_b_groups = per_block[-2], per_block[-1]
        part.slot_task = self.slot_task[keep]
        part.slot_active = self.slot_active[keep]
        return part

    def shared_parameters(self) -> list[torch.Tensor]:
        """The trunk: the parameters every task of a probe shares, in the order first
        layer weights and biases per group, then per deeper layer the weights per group,
        then per deeper layer the biases per group."""
        deep_w = [w for ws in self.deep_w_groups for w in ws]
        deep_b = [b for bs in self.deep_b_groups for b in bs]
        return [*self.first_w, *self.first_b, *deep_w, *deep_b]

    def hidden_groups(
        self,
        x: torch.Tensor,
        shared: Sequence[torch.Tensor] | None = None,
        dropout: Sequence[Sequence[torch.Tensor]] | None = None,
        *,
        fused: bool = False,
    ) -> list[torch.Tensor]:
        """Inputs per group x [G, b, F] (group g = replicate of ``groups[g]``) -> the
        trunk's output per group, feature-major [K_g, H, b].

        ``shared`` replaces the trunk's parameters (same order and shapes as
        :meth:`shared_parameters`), e.g. to evaluate a lookahead step functionally.
        ``dropout`` gives, per group and per layer, the scaled keep-mask [H_l, b]
        (0 or 1/(1-p)) that multiplies the layer's activations, shared by the group.
        ``fused`` runs bias-free ReLU and dropout in place on the matmul's output (one
        autograd node, no new buffers, its backward in place on the incoming gradient:
        each layer's output may only feed matmuls; not for ``torch.func`` transforms).
        """
        n_groups, n_deep = len(self.groups), len(self.deep_w_groups)
        params = self.shared_parameters() if shared is None else list(shared)
        first_w, first_b = params[:n_groups], params[n_groups : 2 * n_groups]
        deep = 2 * n_groups
        outputs = []
        for g in range(n_groups):
            masks = None if dropout is None else dropout[g]
            # [K*H1, F] @ [F, b] (both transposed views: BLAS reads them as they are).
            if fused:
                # The bias as one more input column of ones: the product is written
                # once (addmm first fills its large output with the broadcast bias).
                w = torch.cat([first_w[g], first_b[g]])  # [F+1, K*H1]
                ones = x.new_ones(x.shape[1], 1)
                h = torch.mm(w.mT, torch.cat([x[g], ones], dim=1).mT)  # [K*H1, b]
            else:
                h = torch.addmm(first_b[g].mT, first_w[g].mT, x[g].mT)  # [K*H1, b]
            # Activate before splitting the probes apart: an in-place op on a view
            # would make autograd scatter its gradient into a zeroed copy of the base.
            h = activate(h, None if masks is None else masks[0], fused, self.hidden[0])
            h = h.unflatten(0, (-1, self.hidden[0]))  # [K, H1, b] (K trunks)
            for layer in range(n_deep):
                w = params[deep + layer * n_groups + g]
                b = params[deep + (n_deep + layer) * n_groups + g]
                h = torch.baddbmm(b.mT, w.mT, h)
                h = activate(h, None if masks is None else masks[layer + 1], fused)
            outputs.append(h)
        return outputs

    def trunk(self, x: torch.Tensor, shared: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Inputs per group x [G, b, F] (group g = replicate of ``groups[g]``) ->
        shared representation per probe [P, b, H] (a transposed view).

        ``shared`` replaces the trunk's parameters (same order and shapes as
        :meth:`shared_parameters`), e.g. to evaluate a lookahead step functionally.
        """
        return _cat(self.hidden_groups(x, shared)).mT

    def head_outputs(
        self,
        x: torch.Tensor,
        *,
        main_only: bool = False,
        dropout: Sequence[Sequence[torch.Tensor]] | None = None,
        fused: bool = False,
    ) -> torch.Tensor:
        """Inputs per group x [G, b, F] -> every head's outputs, feature-major
        [P, O_main + A*O_aux, b] (with ``main_only``, the main head's [P, O_main, b]).
        Split them with :meth:`split_outputs`. ``dropout``: see :meth:`hidden_groups`."""
        n_out = self.main_outputs if main_only else self.heads_w_groups[0].shape[1]
        parts = []
        hidden = self.hidden_groups(x, dropout=dropout, fused=fused)
        for g, h in enumerate(hidden):
            w, b = self.heads_w_groups[g], self.heads_b_groups[g]
            if main_only:
                w, b = w[:, :n_out], b[:, :n_out]
            parts.append(torch.baddbmm(b, w, h))  # [K, O, H] @ [K, H, b]
        return _cat(parts)

    def split_outputs(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`head_outputs` [P, O_main + A*O_aux, b] -> main outputs [P, b, O_main]
        and auxiliary outputs [P, A, b, O_aux] (views)."""
        main = out[:, : self.main_outputs].mT
        aux = out[:, self.main_outputs :].unflatten(1, (-1, self.aux_width)).mT
        return main, aux

    def per_probe(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Tensors shaped like :meth:`shared_parameters` (with any leading dims ``*L``)
        -> one flat row per probe [*L, P, S], S = trunk parameters of one probe."""
        n_groups = len(self.groups)
        width = self.hidden[0]
        first_w, first_b = tensors[:n_groups], tensors[n_groups : 2 * n_groups]
        rows = []
        for g, (_, start, stop) in enumerate(self.groups):
            k = stop - start
            # Probe j of a group owns columns [j*H1, (j+1)*H1) of the group's first layer.
            w = first_w[g].unflatten(-1, (k, width)).movedim(-2, -3).flatten(-2)  # [*L, K, F*H1]
            b = first_b[g].unflatten(-1, (k, width)).movedim(-2, -3).flatten(-2)  # [*L, K, H1]
            rows.append(torch.cat([w, b], dim=-1))
        first = torch.cat(rows, dim=-2)  # [*L, P, F*H1 + H1]
        rest = tensors[2 * n_groups :]
        # Per deeper layer (weights, then biases), the groups' slices side by side.
        deep = [
            torch.cat(list(rest[i : i + n_groups]), dim=-3).flatten(-2)
            for i in range(0, len(rest), n_groups)
        ]  # [*L, P, in*out] or [*L, P, out]
        return torch.cat([first, *deep], dim=-1)

    def main_head(self, h: torch.Tensor) -> torch.Tensor:
        """[P, B, H] -> main-task outputs [P, B, O_main]."""
        return torch.baddbmm(self.main_b, h, self.main_w)

    def aux_heads(self, h: torch.Tensor) -> torch.Tensor:
        """[P, B, H] -> auxiliary outputs [P, A, B, O_aux] (inactive slots included).

        ``h`` may also be [P, A, B, H], one representation per slot, so that a caller
        can take each slot's gradient with respect to its own copy.
        """
        if h.dim() == 4:
            return torch.matmul(h, self.aux_w) + self.aux_b
        # One [A*O, H] @ [H, B] product per probe, not A products over a copied h.
        out = torch.baddbmm(
            self.heads_b[:, self.main_outputs :], self.heads_w[:, self.main_outputs :], h.mT
        )
        per_slot: torch.Tensor = out.unflatten(1, (-1, self.aux_width))
        return per_slot.mT


def replicate_groups(replicates: Sequence[int]) -> list[tuple[int, int, int]]:
    """Replicates of probes in batch order -> the groups of consecutive probes with the
    same replicate, as (replicate, start, stop)."""
    groups: list[tuple[int, int, int]] = []
    for p, r in enumerate(replicates):
        if groups and groups[-1][0] == r:
            groups[-1] = (r, groups[-1][1], p + 1)
        else:
            groups.append((r, p, p + 1))
    return groups


def _cat(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the first axis; a single part is returned as it is."""
    return torch.cat(list(parts)) if len(parts) > 1 else parts[0]
