"""The study's scenarios: a table, a main task, candidate auxiliary tasks and the share of
main-task training labels kept. Three are real data sets copied into ``data/`` (never
read from anywhere else at run time); one is engine's synthetic family with known
relatedness.

Each scenario was fixed before any probe was compared with the reference; the
main-train fractions put every main task in the low-data regime (a few hundred to a
thousand main training labels), where auxiliary tasks matter and where a user would
ask auxsel at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine import TaskSpec, make_task_family, morgan_fingerprints

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Scenario:
    """One question a user could ask auxsel, with everything needed to answer it.

    ``features`` are the input columns (shared by the probe and the reference);
    ``tables`` holds other tables that candidates with a ``source`` come from.
    ``match_on`` names columns that identify the same entity across tables, used only
    by the zero-cost correlation baseline for such candidates.
    """

    name: str
    description: str
    frame: pd.DataFrame
    main: TaskSpec
    candidates: tuple[TaskSpec, ...]
    features: tuple[str, ...]
    main_train_fraction: float
    real: bool
    truth_seeds: int
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    match_on: tuple[str, ...] = ()
    known_relatedness: dict[str, float] | None = None

    @property
    def candidate_names(self) -> list[str]:
        return [c.label for c in self.candidates]

    def table_of(self, task: TaskSpec) -> pd.DataFrame:
        return self.frame if task.source is None else self.tables[task.source]


# Tox21 is cut to this many molecules (a fixed random subset) to fit the study's CPU
# budget; the fingerprint bits kept are those set in at least this share of them.
TOX21_MOLECULES = 4000
TOX21_MIN_BIT_FREQUENCY = 0.03


def tox21(*, seed: int = 0, quick: bool = False) -> Scenario:
    """Tox21, main task SR-MMP (16% active) with the other 11 assays as candidates.

    Molecules are Morgan fingerprints (radius 2, 2,048 bits, ``engine.chem``) of a fixed
    random subset of 4,000 molecules (2,000 with ``quick``); bits set in fewer than 3% of
    them are dropped (unsupervised, before any split), leaving about 150 inputs.
    """
    raw = pd.read_csv(DATA / "tox21" / "tox21.csv.gz")
    fingerprints = morgan_fingerprints(raw["smiles"].tolist(), radius=2, n_bits=2048, invalid="nan")
    parsed = ~np.isnan(fingerprints).any(axis=1)
    raw, fingerprints = raw[parsed].reset_index(drop=True), fingerprints[parsed]
    size = TOX21_MOLECULES // 2 if quick else TOX21_MOLECULES
    # The subset is part of the scenario, not of the study seed: always the same molecules.
    keep = np.sort(np.random.default_rng(0).choice(len(raw), size, replace=False))
    raw, fingerprints = raw.iloc[keep].reset_index(drop=True), fingerprints[keep]
    frequent = np.flatnonzero(fingerprints.mean(axis=0) >= TOX21_MIN_BIT_FREQUENCY)
    bits = pd.DataFrame(fingerprints[:, frequent], columns=[f"bit{b:04d}" for b in frequent])
    assays = [c for c in raw.columns if c != "smiles"]
    frame = pd.concat([bits, raw[assays]], axis=1)
    main = "SR-MMP"
    return Scenario(
        name="tox21",
        description=(
            f"Tox21: SR-MMP from {len(frequent)} Morgan bits, 11 other assays as candidates "
            f"(sparse labels), {len(frame)} molecules"
        ),
        frame=frame,
        main=TaskSpec(main, kind="binary"),
        candidates=tuple(TaskSpec(a, kind="binary") for a in assays if a != main),
        features=tuple(bits.columns),
        main_train_fraction=0.5,
        real=True,
        truth_seeds=4 if quick else 10,
    )


_STUDENT_LABELS = {
    "G1": "regression",
    "G2": "regression",
    "Dalc": "regression",
    "Walc": "regression",
    "failures": "regression",
    "absences": "regression",
    "higher": "binary",
    "studytime": "regression",
    "goout": "regression",
    "health": "regression",
    "freetime": "regression",
    "famrel": "regression",
}
# UCI's student-merge.R identifies a student present in both courses by these columns.
_STUDENT_KEY = (
    "school",
    "sex",
    "age",
    "address",
    "famsize",
    "Pstatus",
    "Medu",
    "Fedu",
    "Mjob",
    "Fjob",
    "reason",
    "nursery",
    "internet",
)


def student(*, seed: int = 0, quick: bool = False) -> Scenario:
    """UCI student performance: final Portuguese grade G3 from 30 school/family
    attributes; candidates are the period grades G1/G2, behaviour and family columns
    promoted from inputs to auxiliary tasks (Caruana & de Sa 1997), and the final Math
    grade from the other course's table (a candidate with a ``source``)."""
    folder = DATA / "student-performance"
    por = pd.read_csv(folder / "student-por.csv", sep=";")
    mat = pd.read_csv(folder / "student-mat.csv", sep=";")
    labels = {"G3", *_STUDENT_LABELS}
    features = tuple(c for c in por.columns if c not in labels)
    candidates = [TaskSpec(c, kind=k) for c, k in _STUDENT_LABELS.items()]  # type: ignore[arg-type]
    candidates.append(TaskSpec("G3", kind="regression", name="math_G3", source="math"))
    return Scenario(
        name="student",
        description=(
            f"UCI student performance: Portuguese G3 ({len(por)} students) from "
            f"{len(features)} attributes; 12 in-table candidates + Math G3 from another table"
        ),
        frame=por,
        main=TaskSpec("G3", kind="regression"),
        candidates=tuple(candidates),
        features=features,
        main_train_fraction=0.2,
        real=True,
        truth_seeds=8 if quick else 30,
        tables={"math": mat},
        match_on=_STUDENT_KEY,
    )


# Inputs: the voice measures that stay features, plus the patient's age, sex and the
# recording time (the UCI feature set); the other voice measures become candidates.
_PARKINSONS_FEATURES = (
    "age",
    "sex",
    "test_time",
    "Jitter:RAP",
    "Jitter:PPQ5",
    "Jitter:DDP",
    "Jitter(Abs)",
    "Shimmer(dB)",
    "Shimmer:APQ3",
    "Shimmer:APQ5",
    "Shimmer:APQ11",
    "Shimmer:DDA",
)
_PARKINSONS_PROMOTED = ("Jitter(%)", "Shimmer", "NHR", "HNR", "RPDE", "DFA", "PPE")
# The 5,875 recordings (about 140 per subject) are cut to this many for the CPU budget.
PARKINSONS_RECORDINGS = 3000


def parkinsons(*, seed: int = 0, quick: bool = False) -> Scenario:
    """UCI Parkinson's telemonitoring: motor UPDRS from age, sex, recording time and 9
    voice measures; candidates are total UPDRS, the patient's identity and seven voice
    measures promoted from inputs to auxiliary tasks. Rows are recordings, split at
    random like every auxsel job (not by subject; see docs/validity.md)."""
    frame = pd.read_csv(DATA / "parkinsons-telemonitoring" / "parkinsons_updrs.csv.gz")
    frame = frame.rename(columns={"subject#": "subject"})
    # A fixed random subset of the recordings (part of the scenario, not of the seed).
    size = PARKINSONS_RECORDINGS // 2 if quick else PARKINSONS_RECORDINGS
    keep = np.sort(np.random.default_rng(0).choice(len(frame), size, replace=False))
    frame = frame.iloc[keep].reset_index(drop=True)
    candidates = (
        TaskSpec("total_UPDRS", kind="regression"),
        TaskSpec("subject", kind="multiclass"),
        *(TaskSpec(c, kind="regression") for c in _PARKINSONS_PROMOTED),
    )
    return Scenario(
        name="parkinsons",
        description=(
            f"UCI Parkinson's telemonitoring: motor_UPDRS from {len(_PARKINSONS_FEATURES)} "
            f"inputs, {len(frame)} recordings; {len(candidates)} candidates"
        ),
        frame=frame,
        main=TaskSpec("motor_UPDRS", kind="regression"),
        candidates=candidates,
        features=_PARKINSONS_FEATURES,
        main_train_fraction=0.2,
        real=True,
        truth_seeds=4 if quick else 10,
    )


def synthetic(*, seed: int = 0, quick: bool = False) -> Scenario:
    """engine.make_task_family: 3,000 rows, 32 features, six candidates of known
    relatedness (cosine 0.95 ... 0) and two pure-noise ones; 5% of main labels kept."""
    family = make_task_family(n_rows=3000, n_features=32, seed=seed)
    features = tuple(c for c in family.frame.columns if c.startswith("x"))
    return Scenario(
        name="synthetic",
        description="synthetic family (make_task_family): 3,000 rows, 32 features, 8 candidates",
        frame=family.frame,
        main=TaskSpec(family.main, kind="regression"),
        candidates=tuple(TaskSpec(c, kind="regression") for c in family.candidates),
        features=features,
        main_train_fraction=0.05,
        real=False,
        truth_seeds=4 if quick else 10,
        known_relatedness=dict(family.relatedness),
    )


SCENARIOS: dict[str, Callable[..., Scenario]] = {
    "tox21": tox21,
    "student": student,
    "parkinsons": parkinsons,
    "synthetic": synthetic,
}
