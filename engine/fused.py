"""Autograd nodes of the fused training path (``ProbeBatch.head_outputs(fused=True)``):
ReLU and dropout in place on a matmul's output, and a batched matmul whose backward
writes its input's gradient into a buffer kept from step to step. Large activations
are what the step's time goes to on CPU besides the matmuls: each new [K*H, b] buffer
costs a pass over cold memory (and page faults), so these nodes write fewer of them."""

from __future__ import annotations

from typing import Any

import torch


class GradBuffers:
    """One buffer per key (a layer of a group) that a backward pass writes an input's
    gradient into, reused at every step instead of a new tensor each time. A buffer
    is only valid until the next backward pass of the same key: its readers are the
    nodes of the same backward pass."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, ...], torch.Tensor] = {}

    def like(self, key: tuple[int, ...], t: torch.Tensor) -> torch.Tensor:
        """A contiguous tensor shaped like ``t`` in the buffer of ``key``."""
        n = t.numel()
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < n or buffer.dtype != t.dtype:
            buffer = self._buffers[key] = torch.empty(n, dtype=t.dtype, device=t.device)
        return buffer[:n].view(t.shape)


def baddbmm_reusing(
    bias: torch.Tensor,
    weight: torch.Tensor,
    h: torch.Tensor,
    buffers: GradBuffers,
    key: tuple[int, ...],
) -> torch.Tensor:
    """``torch.baddbmm(bias, weight, h)`` (bias [K, O, 1]) whose backward writes the
    gradient of ``h`` into ``buffers`` (the same values as autograd's own)."""
    node = _BaddbmmReusing.apply
    out: torch.Tensor = node(bias, weight, h, buffers, key)  # type: ignore[no-untyped-call]
    return out


class _BaddbmmReusing(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        bias: torch.Tensor,
        weight: torch.Tensor,
        h: torch.Tensor,
        buffers: GradBuffers,
        key: tuple[int, ...],
    ) -> torch.Tensor:
        ctx.save_for_backward(weight, h)
        ctx.buffers, ctx.key = buffers, key
        return torch.baddbmm(bias, weight, h)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, h = ctx.saved_tensors
        need_bias, need_weight, need_h = ctx.needs_input_grad[:3]
        grad_bias = grad.sum(-1, keepdim=True) if need_bias else None
        grad_weight = torch.bmm(grad, h.mT) if need_weight else None
        grad_h = None
        if need_h:
            grad_h = torch.bmm(weight.mT, grad, out=ctx.buffers.like(ctx.key, h))
        return grad_bias, grad_weight, grad_h, None, None


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
        # matmuls, whose backward hands this node a tensor of its own (new, or a
        # GradBuffers buffer), so no other node reads it; writing a fresh large
        # buffer costs more than the pass.
        # The zeroing and the product with the mask commute (the same values).
        grad_z = torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)
        if mask is not None:
            grad_z.view(-1, *mask.shape).mul_(mask)
        return grad_z, None
