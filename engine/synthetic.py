"""A synthetic family of tasks with known relatedness to the main task, after the
recipe of Ma et al. (2018, MMoE): each task's label is a linear plus sinusoidal
function of the features along a weight vector whose cosine similarity to the main
task's vector is set by hand; pure-noise tasks depend on nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import SpecError
from engine.tasks import TaskKind


@dataclass(frozen=True)
class TaskFamily:
    """The generated table and the truth behind it.

    ``relatedness`` maps each candidate column to the cosine similarity of its weight
    vector with the main task's (0 for the noise candidates).
    """

    frame: pd.DataFrame
    main: str
    candidates: tuple[str, ...]
    relatedness: dict[str, float]
    noise: tuple[str, ...]


def make_task_family(
    *,
    n_rows: int = 2000,
    n_features: int = 16,
    relatedness: Sequence[float] = (0.95, 0.8, 0.6, 0.4, 0.2, 0.0),
    n_noise: int = 2,
    main_kind: TaskKind = "regression",
    candidate_kind: TaskKind = "regression",
    n_classes: int = 3,
    label_noise: float = 0.1,
    n_sines: int = 2,
    nonlinearity: float = 0.5,
    seed: int = 0,
) -> TaskFamily:
    """Generate the main task ``y`` and candidates ``rel_<cos>`` plus ``noise_<i>``.

    Features are standard normal. With main vector w0 = u0 and candidate vector
    w_i = ρ_i u0 + sqrt(1-ρ_i²) u_i (u orthonormal while there are enough features; with
    more candidates than ``n_features - 1``, each u_i is only orthogonal to u0), a task's
    score is s = wᵀx + a Σ_j sin(α_j wᵀx + β_j) + ε (a = ``nonlinearity``);
    classification labels threshold it at quantiles (binary: median; multiclass:
    ``n_classes`` equal bins).
    """
    n_related = len(relatedness)
    if n_features < 2:
        raise SpecError("n_features must be at least 2.", field="n_features")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, n_features))
    if n_related + 1 <= n_features:
        basis, _ = np.linalg.qr(rng.standard_normal((n_features, n_related + 1)))
        u0, residual = basis[:, 0], basis[:, 1:]
    else:
        # More candidates than directions: each residual is a random unit vector
        # orthogonal to u0 (candidates are then somewhat related to each other too).
        u0 = np.linalg.qr(rng.standard_normal((n_features, 1)))[0][:, 0]
        residual = rng.standard_normal((n_features, n_related))
        residual -= np.outer(u0, u0 @ residual)
        residual /= np.linalg.norm(residual, axis=0)
    alphas = rng.uniform(0.5, 1.5, n_sines)
    betas = rng.uniform(0, 2 * np.pi, n_sines)

    def score(w: np.ndarray) -> np.ndarray:
        z: np.ndarray = x @ w
        wave: np.ndarray = nonlinearity * np.sin(np.outer(z, alphas) + betas).sum(axis=1)
        noisy: np.ndarray = z + wave + label_noise * rng.standard_normal(n_rows)
        return noisy

    def label(s: np.ndarray, kind: TaskKind) -> np.ndarray:
        if kind == "regression":
            return s
        bins = 2 if kind == "binary" else n_classes
        edges = np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1])
        codes: np.ndarray = np.digitize(s, edges)
        return codes

    columns: dict[str, np.ndarray] = {f"x{i}": x[:, i] for i in range(n_features)}
    columns["y"] = label(score(u0), main_kind)
    names: list[str] = []
    truth: dict[str, float] = {}
    for i, rho in enumerate(relatedness):
        w = rho * u0 + np.sqrt(max(0.0, 1 - rho**2)) * residual[:, i]
        name = f"rel_{i}_{rho:.2f}"
        columns[name] = label(score(w), candidate_kind)
        names.append(name)
        truth[name] = float(rho)
    noise = []
    for i in range(n_noise):
        name = f"noise_{i}"
        raw = rng.standard_normal(n_rows)
        columns[name] = label(raw, candidate_kind)
        names.append(name)
        noise.append(name)
        truth[name] = 0.0
    return TaskFamily(pd.DataFrame(columns), "y", tuple(names), truth, tuple(noise))
