"""The share of the matmul peak a training step's own matmuls reach, alone.

python -m benchmarks.matmul_ceiling [--threads 2] [--probes 21] [--groups 3]

For each recipe of ``benchmarks.speed --parts recipes`` (5,000 × 50 rows, batch 128, 20
candidates × 3 replicates: 3 replicate groups of 21 probes), times only the matrix
products of one batched training step — the forward, weight-gradient and input-gradient
products of every layer and the heads, in the engine's feature-major shapes, on
contiguous operands with preallocated outputs — and divides their FLOPs by that time
and by the same process's 2,048² float32 peak. Nothing else of a step (activations,
dropout, losses, the optimiser, Python) is timed, so no training step at these shapes
can reach a larger share of the peak: the figure bounds what fusing or removing the
rest can gain. Beside it, one fused Adam step over the same parameters (elementwise work
over every weight, which every step of training must do) and the share the matmuls and
that step together leave.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from itertools import pairwise

import torch

from benchmarks.speed import _matmul_peak

# (name, trunk widths): the recipes part's trunks.
RECIPES = (("32", (32,)), ("128", (128,)), ("256/64", (256, 64)))
FEATURES, BATCH, HEADS = 50, 128, 2  # heads: the main output and one candidate's


def step_products(
    hidden: tuple[int, ...], k: int, groups: int
) -> tuple[list[Callable[[], object]], float]:
    """The matmuls of one training step of ``groups`` replicate groups of ``k`` probes,
    as calls on preallocated operands, and their FLOPs."""
    calls: list[Callable[[], object]] = []
    flops = 0.0

    def product(batch: int | None, m: int, inner: int, n: int) -> None:
        nonlocal flops
        shape = () if batch is None else (batch,)
        a = torch.randn(*shape, m, inner)
        b = torch.randn(*shape, inner, n)
        out = torch.empty(*shape, m, n)
        op = torch.mm if batch is None else torch.bmm
        calls.append(lambda: op(a, b, out=out))
        flops += 2 * (batch or 1) * m * inner * n

    h1 = hidden[0]
    for _ in range(groups):
        # First layer: [K*H1, F+1] @ [F+1, b] (bias as a column of ones); its weight
        # gradient [K*H1, b] @ [b, F+1]; the inputs need no gradient.
        product(None, k * h1, FEATURES + 1, BATCH)
        product(None, k * h1, BATCH, FEATURES + 1)
        widths = [*hidden, HEADS]
        for fan_in, fan_out in pairwise(widths):
            product(k, fan_out, fan_in, BATCH)  # forward
            product(k, fan_out, BATCH, fan_in)  # weight gradient
            product(k, fan_in, fan_out, BATCH)  # input gradient
    return calls, flops


def optimiser_step(hidden: tuple[int, ...], k: int, groups: int) -> Callable[[], object]:
    """One fused Adam step over the step's parameters, shaped as the engine stores them
    (per group: first layer [F+1, K*H1], deeper layers and heads [K, in+1, out] with
    their biases), each with a gradient: elementwise work over every weight."""
    shapes: list[tuple[int, ...]] = []
    for _ in range(groups):
        shapes.append((FEATURES + 1, k * hidden[0]))
        for fan_in, fan_out in pairwise([*hidden, HEADS]):
            shapes.append((k, fan_in + 1, fan_out))
    params = [torch.randn(shape, requires_grad=True) for shape in shapes]
    for param in params:
        param.grad = torch.randn(param.shape)
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=True)
    return optimizer.step


def best_time(calls: list[Callable[[], object]], repeats: int) -> float:
    """Best seconds of one pass over ``calls`` (after two warm-up passes)."""
    for _ in range(2):
        for call in calls:
            call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for call in calls:
            call()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probes", type=int, default=21, help="probes per replicate group")
    parser.add_argument("--groups", type=int, default=3, help="replicate groups per step")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = _matmul_peak(torch.device("cpu"), 2048)
    print(
        f"{args.threads} thread(s), torch {torch.__version__}; 2,048² float32 peak "
        f"{peak:.0f} GFLOP/s; {args.groups} groups × {args.probes} probes, batch {BATCH}, "
        f"{FEATURES} features\n"
    )
    print(
        "| trunk | matmuls per step | MFLOP per step | matmul time per step (ms) | GFLOP/s"
        " | share of peak | Adam step (ms) | share of peak, matmuls + Adam |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, hidden in RECIPES:
        calls, flops = step_products(hidden, args.probes, args.groups)
        seconds = best_time(calls, args.repeats)
        adam = best_time([optimiser_step(hidden, args.probes, args.groups)], args.repeats)
        rate = flops / seconds / 1e9
        bound = flops / (seconds + adam) / 1e9
        print(
            f"| {name} | {len(calls)} | {flops / 1e6:.0f} | {seconds * 1e3:.2f} | {rate:.1f} |"
            f" {rate / peak:.0%} | {adam * 1e3:.2f} | {bound / peak:.0%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
