import math
from typing import Any

import numpy as np
import pytest
import torch

from engine import Budget, CandidateAdvice, TaskSpec, make_task_family, prepare, splits_for
from engine.probe import ProbeBatch
from engine.probe_spec import ProbeSpec
from engine.training_data import TrainingData


@pytest.fixture
def small_data():
    """A small mixed-kind problem: binary main, multiclass / regression / sparse
    candidates, two replicates, two hidden layers."""
    family = make_task_family(
        n_rows=600,
        n_features=10,
        relatedness=(0.9, 0.3),
        n_noise=1,
        main_kind="binary",
        candidate_kind="multiclass",
        seed=4,
    )
    frame = family.frame.copy()
    frame["reg"] = frame["x0"] * 2 + np.random.default_rng(0).normal(size=len(frame))
    sparse = np.random.default_rng(1).random(len(frame)) < 0.7
    frame.loc[sparse, "rel_1_0.30"] = np.nan
    # Class codes 0..2 would be inferred as regression; declare them.
    candidates = [TaskSpec(c, kind="multiclass") for c in family.candidates] + ["reg"]
    problem = prepare(frame, family.main, candidates)
    budget = Budget(
        seeds=2, max_replicates=2, epochs=6, batch_size=64, lr=3e-3, hidden=(24, 12), patience=3
    )
    splits = splits_for(problem, budget, seed=0)
    return problem, budget, TrainingData(problem, splits, torch.device("cpu"))


def probe_batch(problem, budget, data, specs: list[ProbeSpec], seed: int = 0) -> ProbeBatch:
    """The engine's batch of ``specs`` for ``small_data``'s problem, on CPU."""
    return ProbeBatch(
        specs,
        n_features=problem.features.n_features,
        hidden=budget.hidden,
        main_outputs=problem.main.n_outputs,
        aux_outputs=data.aux_outputs,
        seed=seed,
        device=torch.device("cpu"),
    )


def candidate_advice(name: str, gain: float, **fields: Any) -> CandidateAdvice:
    """A probed regression candidate for tests of the rules that read rankings: an
    interval of ``gain`` ± 0.01, p = q = 0.5, inconclusive; ``fields`` set any other."""
    values: dict[str, Any] = {
        "rank": 1,
        "name": name,
        "column": name,
        "kind": "regression",
        "source": None,
        "gain": gain,
        "se": 0.01,
        "ci_low": gain - 0.01,
        "ci_high": gain + 0.01,
        "rel_gain": math.nan,
        "p_value": 0.5,
        "q_value": 0.5,
        "verdict": "inconclusive",
        "seeds": 3,
        "metrics": {},
        "per_seed": (),
        "secondary": None,
        "disagreement": False,
    }
    return CandidateAdvice(**(values | fields))
