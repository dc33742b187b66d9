"""Autograd nodes of the fused training path (``ProbeBatch.head_outputs(fused=True)``):
ReLU and dropout in place on a matmul's output. Large activations are what the step's
time goes to on CPU besides the matmuls: each new [K*H, b] buffer costs a pass over
cold memory, so this node writes none."""

from __future__ import annotations

from typing import Any

import torch


def activate(
    z: torch.Tensor, mask: torch.Tensor | None, fused: bool, width: int | None = None
) -> torch.Tensor:
    """ReLU, then the dropout mask [H, b] if any, of z [K, H, b] (or [K*H, b] with
    ``width`` = H); ``fused``: in place on z, one autograd node."""
    if fused:
        out: torch.Tensor = _ReluDropout.apply(z, mask)  # type: ignore[no-untyped-call]
        return out
    h = torch.relu(z)
    if mask is None:
        return h
    if width is not None:
        masked: torch.Tensor = h.unflatten(0, (-1, width)) * mask
        return masked.flatten(0, 1)
    return h * mask


class _ReluDropout(torch.autograd.Function):
    """relu(z) * mask in place on z (a matmul output nothing else keeps); the backward
    is one pass (two with a mask): the gradient where the output is positive."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = z.clamp_min_(0)
        if mask is not None:
            out.view(-1, *mask.shape).mul_(mask)
        ctx.mark_dirty(z)
        ctx.save_for_backward(out, mask)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        out, mask = ctx.saved_tensors
        # In place on the incoming gradient: on this path the output only feeds
        # matmuls, whose backward hands this node a new tensor of its own, so no
        # other node reads it; writing a fresh large buffer costs more than the pass.
        # The zeroing and the product with the mask commute (the same values).
        grad_z = torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)
        if mask is not None:
            grad_z.view(-1, *mask.shape).mul_(mask)
        return grad_z, None
