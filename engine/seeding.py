"""Derived seeds: every random draw of a job comes from the job seed plus a purpose, so
runs are reproducible and the draws of one replicate do not depend on the others."""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, purpose: str, *parts: int) -> int:
    """A 63-bit seed for ``purpose`` (e.g. "split", "trunk") and integer ``parts``."""
    words = [seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32(purpose.encode()), *parts]
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])
