"""The job's response shapes, written once: the job (JobOut), its ranking (RankingOut),
its probe runs (ProbeRunList) and two jobs compared (JobComparison). app/services/jobs.py,
app/jobs/results.py and app/jobs/compare.py build them; app/api/schemas.py re-exports
them as part of the API's contract. What an owner says about a job (tags, note) is in
app/jobs/meta.py."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

import engine
from app.jobs.spec import JobSpec
from app.jobs.status import JobStatus


class Progress(BaseModel):
    done: int
    total: int
    fraction: float


class JobError(BaseModel):
    reason: str
    detail: str | None


class JobEstimate(BaseModel):
    """The job's estimated cost at submission (engine.estimate_cost; order of magnitude)."""

    flops: float = Field(description="Floating-point operations of every planned probe-epoch.")
    memory_mb: float = Field(description="Peak memory: training data plus the largest chunk.")
    probe_epochs: int
    probe_memory_mb: float = Field(description="One probe's training memory.")
    data_memory_mb: float


class TopCandidate(BaseModel):
    """The rank-1 candidate of a succeeded job's ranking."""

    name: str
    verdict: str
    gain: float | None


class JobOut(BaseModel):
    id: str
    name: str
    dataset_id: str | None
    status: JobStatus
    progress: Progress
    attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error: JobError | None
    spec: JobSpec
    estimate: JobEstimate | None = Field(
        default=None, description="Estimated cost (null for jobs submitted before estimates)."
    )
    inputs: list[str] | None = Field(
        default=None,
        description="The exact input (feature) columns the job trains on, decided at "
        "submission: its `features`, else the data set's feature-role columns that are not "
        "its tasks. Kept as they were when roles change later. Null only for a job from "
        "before roles whose data set was already deleted.",
    )
    tags: list[str] = Field(default_factory=list, description="The owner's tags.")
    note: str = Field(default="", description="The owner's note.")
    top_candidate: TopCandidate | None = Field(
        default=None,
        description="In job lists (GET /api/v1/jobs): a succeeded job's rank-1 candidate "
        "(read from its stored ranking); null for other jobs and elsewhere.",
    )
    links: dict[str, str]


class MetricGainOut(BaseModel):
    metric: str
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str


class EvidenceOut(BaseModel):
    """What a candidate's labels say before any training: rows labelled for it, rows
    labelled for both it and the main task (0 for a candidate from another table), the
    absolute label correlation and the mutual information (nats) over those rows
    (null under 10 of them)."""

    labelled: int
    overlap: int
    label_correlation: float | None
    mutual_info: float | None


class CoverageOut(BaseModel):
    """How much of the data the candidate's label covers (read from the labels and the
    job's splits, no training): ``labelled`` rows carry it, ``share`` of the job's rows;
    ``train_labelled`` of them are in a replicate's training rows and ``train_overlap``
    of the ``main_train`` rows whose main label trains carry it too (both averaged over
    replicates). ``note`` says so when it has too few labels for its gain to mean much."""

    labelled: int
    share: float
    train_labelled: float
    train_overlap: float
    main_train: int
    note: str | None


class FractionGainOut(BaseModel):
    """A candidate's answer at one share of the main task's training labels (a job
    with ``budget.main_train_fractions``), scored as a job at that share alone would
    score it: ``main_train`` main labels per replicate, its gain, interval, p- and
    q-value (over the job's candidates at that share), verdict and replicates."""

    main_train_fraction: float
    main_train: int
    rank: int
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    q_value: float | None
    verdict: str
    seeds: int


class FractionHintOut(BaseModel):
    """Cheap hints at how a candidate helps, from its answers across shares: a hint,
    not a claim (nothing here separates mechanisms experimentally). ``helps_at``: the
    shares where it is helpful; ``persists``: whether it still helps at the largest
    (null when it helps at none); ``aux_only``: per share, its labelled training rows
    whose main label does not train (where it can act as data augmentation);
    ``fade`` [``fade_ci_low``, ``fade_ci_high``]: its gain at the smallest share minus
    at the largest, paired over ``fade_n`` replicates; ``text``: in one sentence."""

    helps_at: list[float]
    persists: bool | None
    aux_only: list[float | None]
    fade: float | None
    fade_ci_low: float | None
    fade_ci_high: float | None
    fade_n: int
    text: str | None
    gap_base: list[float | None] = Field(
        default_factory=list,
        description="Per share: the main head's validation minus training loss at its best "
        "epoch, mean over replicates, trained alone.",
    )
    gap_with: list[float | None] = Field(
        default_factory=list, description="Per share: the same gap trained beside it."
    )
    gap_change: list[float | None] = Field(
        default_factory=list,
        description="Per share: gap_with − gap_base, paired over replicates (negative: a "
        "narrower gap with it, as regularisation would give; a hint, not a claim).",
    )
    gap_change_ci_low: list[float | None] = Field(
        default_factory=list, description="Per share: gap_change's paired 95% interval, low."
    )
    gap_change_ci_high: list[float | None] = Field(
        default_factory=list, description="Per share: gap_change's paired 95% interval, high."
    )
    gap_text: str | None = Field(
        default=None, description="The gap hint at the smallest share, in one sentence."
    )


class CandidateOut(BaseModel):
    """A candidate's measured gain. ``verdict`` is helpful / harmful / inconclusive, or
    not_probed when only its proxy scores were computed (methods with screening)."""

    rank: int
    name: str
    column: str
    kind: str
    dataset_id: str | None
    gain: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    rel_gain: float | None
    p_value: float | None
    q_value: float | None
    verdict: str
    seeds: int
    secondary: MetricGainOut | None
    disagreement: bool
    proxies: dict[str, float | None]
    metrics: dict[str, float | None]
    per_seed: list[float | None]
    errors: list[str]
    evidence: EvidenceOut | None = Field(
        default=None, description="Label evidence (null for jobs from before it)."
    )
    coverage: CoverageOut | None = Field(
        default=None, description="Label coverage (null for jobs from before it)."
    )
    evidence_disagrees: bool = Field(
        default=False,
        description="The probe and the label correlation disagree by a wide margin: "
        "check this candidate.",
    )
    fractions: list[FractionGainOut] = Field(
        default_factory=list,
        description="A job with budget.main_train_fractions: the candidate's answer at "
        "each share of the main labels, ascending (empty otherwise). The row's own gain "
        "is the answer at the largest share (1, all labels).",
    )
    helpful_at: list[float] = Field(
        default_factory=list, description="The shares at which the candidate is helpful."
    )
    fraction_summary: str | None = Field(
        default=None,
        description='Where along the data axis it helps, in words, e.g. "Helpful at 10% and '
        '25% of the main labels; not at 100%: a small-data helper."',
    )
    hint: FractionHintOut | None = Field(
        default=None, description="Mechanism hints across the shares (a hint, not a claim)."
    )


class BaselineOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    seeds: int


class MainTaskOut(BaseModel):
    name: str
    column: str
    kind: engine.TaskKind


class RankingOut(BaseModel):
    job_id: str
    provisional: bool = Field(
        default=False,
        description="True while the job runs, or after it was canceled or failed: the "
        "ranking of the probe runs stored so far (`replicates` of them), which more "
        "replicates may change; false for the final ranking of a succeeded job.",
    )
    replicates: int = Field(
        default=0,
        description="Replicates of the baseline the ranking rests on (each candidate's "
        "own count is its `seeds`).",
    )
    method: str
    metric: str
    recipe: engine.RecipeName = Field(
        description="The training recipe the ranking answers for (the job's `recipe`)."
    )
    recipe_text: str = Field(
        description="That recipe with every knob it trained with, e.g. for a report."
    )
    estimand: str = Field(description="What each candidate's gain estimates, in words.")
    interval: str
    confidence: float = Field(
        description="The lowest confidence of any candidate's interval: the 0.05 error rate "
        "is split over the racing rounds the job could run (race_spending; each candidate's "
        "interval is at its last round's share, the last round's the largest under obf), so "
        "the interval a candidate stopped at covers its gain with at least 95% probability."
    )
    rounds: int = Field(description="Racing rounds the job trained.")
    main_task: MainTaskOut
    baseline: BaselineOut
    candidates: list[CandidateOut]
    next_steps: list[str] = Field(
        default_factory=list,
        description="When every candidate's interval spans zero (no answer yet): what "
        "to change next, from what this job saw (its replicates against its cap, its "
        "recipe, how many main labels it trained on, candidates with too few labels). "
        "Empty otherwise, and while the job still runs.",
    )
    subset: dict[str, object] | None
    agreement: dict[str, object] | None
    dropped_features: dict[str, str]
    main_train_fractions: list[float] = Field(
        default_factory=list,
        description="The shares of the main labels the job ran at (budget."
        "main_train_fractions), ascending; empty for a job at one share.",
    )


class ProbeRunOut(BaseModel):
    key: str
    fit: dict[str, float | None] = Field(
        default_factory=dict,
        description="The main head's loss at the best epoch on the rows whose main label "
        "trained (train_loss) and on the validation rows (val_loss); empty for runs "
        "stored before it.",
    )
    main_train_fraction: float | None = Field(
        default=None,
        description="The share of the main labels this run trained at, for a job with "
        "budget.main_train_fractions (its key starts f<share>/); null otherwise.",
    )
    replicate: int
    candidates: list[str]
    metrics: dict[str, float | None]
    curve: list[float | None] = Field(
        description="The main task's validation metric after each epoch the probe trained."
    )
    train_loss: list[float | None] = Field(
        default_factory=list,
        description="The main task's training loss per epoch (mean over the epoch's "
        "minibatches); empty for runs stored before it was recorded.",
    )
    aux_loss: list[float | None] = Field(
        default_factory=list,
        description="The auxiliary task's training loss per epoch (summed over a subset's "
        "tasks); empty for the baseline.",
    )
    best_epoch: int
    epochs: int
    error: str | None


class ProbeRunList(BaseModel):
    job_id: str
    metric: str
    items: list[ProbeRunOut]


class ComparedJob(BaseModel):
    """One side of a comparison: which job, and what its ranking answers for."""

    job_id: str
    name: str
    metric: str
    recipe: engine.RecipeName
    recipe_text: str
    main_task: MainTaskOut
    baseline: BaselineOut


class CandidateSide(BaseModel):
    """A candidate's place in one job's ranking."""

    rank: int
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str


class CandidateComparison(BaseModel):
    """One candidate (matched by name) in both jobs' rankings, and what changed from
    job a to job b. A side is null when the candidate is only in the other job; then
    the differences are null too."""

    name: str
    a: CandidateSide | None
    b: CandidateSide | None
    rank_change: int | None = Field(
        description="a's rank minus b's: positive when the candidate moved up in b."
    )
    gain_difference: float | None = Field(description="b's gain minus a's.")
    verdict_changed: bool | None


class JobComparison(BaseModel):
    """Two jobs' rankings side by side, aligned by candidate name: every candidate of a
    (in a's order), then those only in b (in b's order)."""

    a: ComparedJob
    b: ComparedJob
    notes: list[str] = Field(
        description="What makes the two rankings answer different questions (another "
        "metric, main task or recipe); empty when they answer the same one."
    )
    candidates: list[CandidateComparison]
    only_in_a: list[str]
    only_in_b: list[str]
