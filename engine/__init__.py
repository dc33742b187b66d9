"""auxsel's engine: measure which auxiliary tasks help a main task under hard (default)
or soft parameter sharing. Pure PyTorch / NumPy / pandas; no I/O, database or environment reads.

>>> from engine import advise
>>> advice = advise(frame, main="y", candidates=["a", "b"], seeds=3)  # doctest: +SKIP
"""

from engine.budget import PROXY_NAMES, SHARINGS, Bounds, Budget, ProxyName, Sharing
from engine.chem import morgan_fingerprints
from engine.chunks import resolve_device, run_probes, train_chunks
from engine.cost import CostEstimate, JobShape, estimate_cost
from engine.curves import FractionAdvice, MechanismHint
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
from engine.evidence import (
    FEW_LABELS,
    LabelCoverage,
    LabelEvidence,
    label_coverage,
    label_evidence,
    with_evidence,
)
from engine.features import FeatureConfig
from engine.fractions import combine_fractions, share_budget, splits_at
from engine.methods import (
    DEFAULT_METHOD,
    METHODS,
    Confirmation,
    Method,
    check_method,
    choose_confirmations,
    proxy_order,
    rank_agreement,
)
from engine.metrics import DEFAULT_METRIC, METRIC_NAMES, METRICS_BY_KIND, MetricName
from engine.pipeline import (
    LocalRunner,
    Runner,
    advise,
    build_advice,
    execute,
    planned_epochs,
    splits_for,
)
from engine.plan import chunk_plan, pairwise_plan
from engine.probe import ProbeSpec
from engine.problem import Problem, prepare
from engine.proxies import ScreenResult, screen
from engine.racing import schedule as race_schedule
from engine.ranking import (
    Advice,
    Agreement,
    BaselineAdvice,
    CandidateAdvice,
    CandidateVerdict,
    MetricGain,
    SubsetAdvice,
    SubsetStep,
    TaskInfo,
    json_safe,
    summarise,
)
from engine.recipes import (
    DEFAULT_RECIPE,
    ESTIMAND,
    RECIPE_KNOBS,
    RECIPE_NAMES,
    RECIPES,
    RecipeName,
    check_recipe,
    describe_recipe,
    describe_sharing,
    recipe_budget,
    recipe_of,
)
from engine.scoring import (
    Q_LEVEL,
    IntervalMethod,
    Verdict,
    benjamini_hochberg,
    gated_verdict,
    paired_gain,
)
from engine.splits import MIN_LABELLED_ROWS, Splits, make_splits
from engine.subsets import search_subsets
from engine.synthetic import TaskFamily, make_task_family
from engine.tasks import (
    MAX_CLASSES,
    MAX_LABEL_MAGNITUDE,
    TASK_KINDS,
    LabelProblem,
    LabelStats,
    TaskKind,
    TaskSpec,
    infer_kind,
    label_problems,
)
from engine.training import ProbeRun, ProgressFn, train_probes
from engine.training_data import TrainingData

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_METRIC",
    "DEFAULT_RECIPE",
    "ESTIMAND",
    "FEW_LABELS",
    "MAX_CLASSES",
    "MAX_LABEL_MAGNITUDE",
    "METHODS",
    "METRICS_BY_KIND",
    "METRIC_NAMES",
    "MIN_LABELLED_ROWS",
    "PROXY_NAMES",
    "Q_LEVEL",
    "RECIPES",
    "RECIPE_KNOBS",
    "RECIPE_NAMES",
    "SHARINGS",
    "TASK_KINDS",
    "Advice",
    "Agreement",
    "BaselineAdvice",
    "Bounds",
    "Budget",
    "Cancelled",
    "CandidateAdvice",
    "CandidateVerdict",
    "Confirmation",
    "CostEstimate",
    "EngineError",
    "FeatureConfig",
    "FeaturisationError",
    "FractionAdvice",
    "IntervalMethod",
    "JobShape",
    "LabelCoverage",
    "LabelError",
    "LabelEvidence",
    "LabelProblem",
    "LabelStats",
    "LocalRunner",
    "MechanismHint",
    "Method",
    "MetricGain",
    "MetricName",
    "MissingDependencyError",
    "NoFeaturesError",
    "ProbeRun",
    "ProbeSpec",
    "Problem",
    "ProgressFn",
    "ProxyName",
    "RecipeName",
    "Runner",
    "ScreenResult",
    "Sharing",
    "SpecError",
    "Splits",
    "SubsetAdvice",
    "SubsetStep",
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
    "check_method",
    "check_recipe",
    "choose_confirmations",
    "chunk_plan",
    "combine_fractions",
    "describe_recipe",
    "describe_sharing",
    "estimate_cost",
    "execute",
    "gated_verdict",
    "infer_kind",
    "json_safe",
    "label_coverage",
    "label_evidence",
    "label_problems",
    "make_splits",
    "make_task_family",
    "morgan_fingerprints",
    "paired_gain",
    "pairwise_plan",
    "planned_epochs",
    "prepare",
    "proxy_order",
    "race_schedule",
    "rank_agreement",
    "recipe_budget",
    "recipe_of",
    "resolve_device",
    "run_probes",
    "screen",
    "search_subsets",
    "share_budget",
    "splits_at",
    "splits_for",
    "summarise",
    "train_chunks",
    "train_probes",
    "with_evidence",
]
