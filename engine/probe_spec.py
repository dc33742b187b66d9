"""What one probe is: a replicate and the candidates trained beside the main task."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, order=True)
class ProbeSpec:
    """One probe: a replicate and the candidates trained beside the main task.

    ``aux`` holds candidate indices (0-based, in the job's candidate order); an empty
    tuple is the main task alone, the baseline of the replicate. ``share``: in a job
    with ``main_train_fractions``, the share of the main training labels the probe
    trains on (:mod:`engine.fractions`); None otherwise.
    """

    replicate: int
    aux: tuple[int, ...] = ()
    share: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "aux", tuple(sorted(set(self.aux))))

    @property
    def alone(self) -> ProbeSpec:
        """This probe as a job at its share alone names it (without the share)."""
        return self if self.share is None else replace(self, share=None)

    @property
    def is_baseline(self) -> bool:
        return not self.aux

    @property
    def key(self) -> str:
        """Stable text key, e.g. ``r0:base``, ``r2:c1+c4`` or, at a share,
        ``f0.25/r2:c1``."""
        body = "+".join(f"c{c}" for c in self.aux) or "base"
        share = "" if self.share is None else f"f{self.share!r}/"
        return f"{share}r{self.replicate}:{body}"
