"""auxsel's engine: measure which auxiliary tasks help a main task under hard parameter
sharing. Pure PyTorch / NumPy / pandas; no I/O, database or environment reads.

>>> from engine import advise
>>> advice = advise(frame, main="y", candidates=["a", "b"], seeds=3)  # doctest: +SKIP
"""

from engine.advice import Advice, BaselineAdvice, CandidateAdvice, MetricGain, TaskInfo, summarise
from engine.advise import advise, build_advice, run_probes, splits_for
from engine.budget import Budget
from engine.chem import morgan_fingerprints
from engine.errors import (
    Cancelled,
    EngineError,
    FeaturisationError,
    LabelError,
    MissingDependencyError,
    NoFeaturesError,
    SpecError,
    TooFewRowsError,
    UnknownColumnError,
)
from engine.features import FeatureConfig
from engine.metrics import METRIC_NAMES, METRICS_BY_KIND, MetricName
from engine.plan import chunk_plan, pairwise_plan
from engine.probe import ProbeSpec
from engine.problem import Problem, prepare
from engine.scoring import IntervalMethod, Verdict, benjamini_hochberg, paired_gain
from engine.splits import Splits, make_splits
from engine.synthetic import TaskFamily, make_task_family
from engine.tasks import TaskKind, TaskSpec, infer_kind
from engine.training import ProbeRun, TrainingData, train_probes

__all__ = [
    "METRICS_BY_KIND",
    "METRIC_NAMES",
    "Advice",
    "BaselineAdvice",
    "Budget",
    "Cancelled",
    "CandidateAdvice",
    "EngineError",
    "FeatureConfig",
    "FeaturisationError",
    "IntervalMethod",
    "LabelError",
    "MetricGain",
    "MetricName",
    "MissingDependencyError",
    "NoFeaturesError",
    "ProbeRun",
    "ProbeSpec",
    "Problem",
    "SpecError",
    "Splits",
    "TaskFamily",
    "TaskInfo",
    "TaskKind",
    "TaskSpec",
    "TooFewRowsError",
    "TrainingData",
    "UnknownColumnError",
    "Verdict",
    "advise",
    "benjamini_hochberg",
    "build_advice",
    "chunk_plan",
    "infer_kind",
    "make_splits",
    "make_task_family",
    "morgan_fingerprints",
    "paired_gain",
    "pairwise_plan",
    "prepare",
    "run_probes",
    "splits_for",
    "summarise",
    "train_probes",
]
