"""The task families of validity benchmark v2: real tables, one main task each and
5-15 candidate auxiliary tasks, read from ``data/`` only (``data/v2/`` was built once by
``prepare_v2.py``; origins and licences in the READMEs there).

Each family's main task, candidates and ``main_train_fraction`` follow a fixed rule
written here, chosen before any probe was compared with a reference:

- multi-label (Mulan): main = the label whose prevalence is closest to 25%; candidates =
  the (at most 12) most frequent other labels with at least 20 positives.
- multi-target (Mulan): main = the first target; candidates = the other targets plus
  input columns promoted to auxiliary tasks (listed per family) until there are 5+.
- molecules: Morgan fingerprints (radius 2, 2,048 bits, the bits set in >= 3% of all the
  stored molecules) precomputed by ``prepare_v2.py``; sparse assay labels.
- cross-table: a main table with candidates that are other tables' labels over the same
  fingerprint features (``TaskSpec.source``), at most 1,500 molecules per candidate table.
- mixed: the v1 student and Parkinson's scenarios.

``main_train_fraction`` puts a few hundred to a few thousand labels in the main task's
training set (of the 60% of its labelled rows that are not validation / test).
With ``quick`` every family is cut to tiny sizes (for CI's smoke run, not for numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from benchmarks.validity.scenarios import DATA, Scenario, parkinsons, student, synthetic
from engine import TaskSpec

V2 = DATA / "v2"
QUICK_ROWS = 300
QUICK_CANDIDATES = 5
MAX_CANDIDATES = 12
CROSS_TABLE_ROWS = 1500


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # the stratum of the tune / report split
    load: Callable[..., Scenario]


def _subset(frame: pd.DataFrame, size: int, salt: int = 0) -> pd.DataFrame:
    if len(frame) <= size:
        return frame.reset_index(drop=True)
    keep = np.sort(np.random.default_rng([0, salt]).choice(len(frame), size, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def shrink(scenario: Scenario, rows: int = QUICK_ROWS, candidates: int = QUICK_CANDIDATES):
    """A tiny version of a scenario (quick runs): few rows per table, few candidates."""
    kept = scenario.candidates[:candidates]
    sources = {t.source for t in kept if t.source}
    return replace(
        scenario,
        frame=_subset(scenario.frame, rows),
        candidates=kept,
        tables={s: _subset(scenario.tables[s], rows, 1) for s in sources},
        main_train_fraction=1.0,
        truth_seeds=4,
    )


def _finish(scenario: Scenario, quick: bool) -> Scenario:
    return shrink(scenario) if quick else scenario


# ------------------------------------------------------------------ multi-label (Mulan)

_MLC_FRACTION = {
    "scene": 0.3,
    "enron": 0.5,
    "medical": 0.6,
    "genbase": 1.0,
    "foodtruck": 1.0,
    "birds": 1.0,
    "tmc2007-500": 0.4,
}


def multilabel(name: str, *, seed: int = 0, quick: bool = False) -> Scenario:
    frame = pd.read_csv(V2 / "mulan-mlc" / f"{name}.csv.gz")
    labels = [s for s in (V2 / "mulan-mlc" / f"{name}.labels.txt").read_text().splitlines() if s]
    features = tuple(c for c in frame.columns if c not in labels)
    positives = frame[labels].astype(float).sum()
    prevalence = positives / len(frame)
    main = (prevalence - 0.25).abs().sort_values(kind="stable").index[0]
    others = positives.drop(main)
    others = others[others >= 20].sort_values(ascending=False, kind="stable")
    candidates = tuple(TaskSpec(c, kind="binary") for c in others.index[:MAX_CANDIDATES])
    scenario = Scenario(
        name=name,
        description=(
            f"Mulan {name}: {main} ({prevalence[main]:.0%} positive) from {len(features)} "
            f"inputs, {len(candidates)} other labels as candidates, {len(frame)} rows"
        ),
        frame=frame,
        main=TaskSpec(main, kind="binary"),
        candidates=candidates,
        features=features,
        main_train_fraction=_MLC_FRACTION[name],
        real=True,
        truth_seeds=8,
    )
    return _finish(scenario, quick)


# ---------------------------------------------------------------- multi-target (Mulan)

# name: (number of targets at the end, inputs promoted to candidates, main_train_fraction)
_MTR = {
    "enb": (2, ("X3", "X4", "X5", "X7"), 1.0),
    "jura": (3, ("Cr", "Ni", "Pb", "Zn"), 1.0),
    "sf2": (3, ("activity", "evolution", "previous_day_activity", "area"), 0.6),
    "scpf": (3, ("daysUntilLastIssue", "distanceFromCenter", "latitude"), 0.5),
    "osales": (12, (), 1.0),
    "edm": (2, ("ASM_A_MeanT", "BSM_B_MeanT", "CSM_C_MeanT", "ISM_I_MeanT"), 1.0),
}


def multitarget(name: str, *, seed: int = 0, quick: bool = False) -> Scenario:
    frame = pd.read_csv(V2 / "mulan-mtr" / f"{name}.csv.gz")
    n_targets, promoted, fraction = _MTR[name]
    targets = list(frame.columns[-n_targets:])
    # Inputs with gaps (osales) are filled with the column median: the reference needs
    # complete inputs. Unsupervised, before any split.
    inputs = [c for c in frame.columns if c not in targets]
    frame[inputs] = frame[inputs].fillna(frame[inputs].median(numeric_only=True))
    constant = [c for c in inputs if frame[c].nunique() <= 1]
    features = tuple(c for c in inputs if c not in promoted and c not in constant)
    candidates = tuple(TaskSpec(c, kind="regression") for c in [*targets[1:], *promoted])
    scenario = Scenario(
        name=name,
        description=(
            f"Mulan {name}: {targets[0]} from {len(features)} inputs; candidates "
            f"{len(targets) - 1} other targets + {len(promoted)} promoted inputs; "
            f"{len(frame)} rows"
        ),
        frame=frame,
        main=TaskSpec(targets[0], kind="regression"),
        candidates=candidates[:MAX_CANDIDATES],
        features=features,
        main_train_fraction=fraction,
        real=True,
        truth_seeds=8,
    )
    return _finish(scenario, quick)


# -------------------------------------------------------------------------- molecules


def _molecules(name: str) -> pd.DataFrame:
    return pd.read_csv(V2 / "molecules" / f"{name}.csv.gz")


def _bits(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(c for c in frame.columns if c.startswith("bit"))


_MOLECULE_MAIN = {"tox21": "SR-MMP", "toxcast": None, "muv": None}
_MOLECULE_FRACTION = {"tox21": 0.5, "toxcast": 0.5, "muv": 1.0}


def molecule(name: str, *, seed: int = 0, quick: bool = False) -> Scenario:
    frame = _molecules(name)
    features = _bits(frame)
    labels = [c for c in frame.columns if c != "smiles" and c not in features]
    positives = (frame[labels] == 1).sum()
    main = _MOLECULE_MAIN[name] or positives.sort_values(ascending=False, kind="stable").index[0]
    candidates = tuple(TaskSpec(c, kind="binary") for c in labels if c != main)
    candidates = candidates[:MAX_CANDIDATES]
    scenario = Scenario(
        name=name,
        description=(
            f"{name}: {main} from {len(features)} Morgan bits, {len(candidates)} other "
            f"assays as candidates (sparse labels), {len(frame)} molecules"
        ),
        frame=frame,
        main=TaskSpec(main, kind="binary"),
        candidates=candidates,
        features=features,
        main_train_fraction=_MOLECULE_FRACTION[name],
        real=True,
        truth_seeds=8,
        match_on=("smiles",),
    )
    return _finish(scenario, quick)


# name: (main table, main column, kind, main_train_fraction,
#        [(table, column, kind)] candidates from other tables)
_CROSS = {
    "lipo": (
        "lipo",
        "lipo",
        "regression",
        0.25,
        [
            ("delaney", "logp", "regression"),
            ("freesolv", "freesolv", "regression"),
            ("bace", "Class", "binary"),
            ("bbbp", "p_np", "binary"),
            ("clintox", "FDA_APPROVED", "binary"),
            ("clintox", "CT_TOX", "binary"),
        ],
    ),
    "bbbp": (
        "bbbp",
        "p_np",
        "binary",
        0.4,
        [
            ("bace", "Class", "binary"),
            ("clintox", "FDA_APPROVED", "binary"),
            ("clintox", "CT_TOX", "binary"),
            ("tox21", "NR-AR", "binary"),
            ("tox21", "NR-AhR", "binary"),
            ("tox21", "SR-ARE", "binary"),
            ("tox21", "SR-MMP", "binary"),
            ("tox21", "SR-p53", "binary"),
        ],
    ),
}


def cross_table(name: str, *, seed: int = 0, quick: bool = False) -> Scenario:
    table, column, kind, fraction, others = _CROSS[name]
    frame = _molecules(table)
    features = _bits(frame)
    sources = dict.fromkeys(t for t, _, _ in others)
    tables = {
        s: _subset(
            # dict, not set: a set's order varies with PYTHONHASHSEED (and so would the cache key)
            _molecules(s)[["smiles", *features, *dict.fromkeys(c for t, c, _ in others if t == s)]],
            CROSS_TABLE_ROWS,
            i + 1,
        )
        for i, s in enumerate(sources)
    }
    candidates = tuple(
        TaskSpec(c, kind=k, name=f"{t}:{c}", source=t)  # type: ignore[arg-type]
        for t, c, k in others
    )
    scenario = Scenario(
        name=name,
        description=(
            f"{name}: {column} ({len(frame)} molecules, {len(features)} Morgan bits); "
            f"{len(candidates)} candidates from {len(tables)} other tables"
        ),
        frame=frame[["smiles", *features, column]],
        main=TaskSpec(column, kind=kind),  # type: ignore[arg-type]
        candidates=candidates,
        features=features,
        main_train_fraction=fraction,
        real=True,
        truth_seeds=8,
        tables=tables,
        match_on=("smiles",),
    )
    return _finish(scenario, quick)


def _mixed(
    load: Callable[..., Scenario],
    fraction: float | None = None,
    *,
    seed: int = 0,
    quick: bool = False,
) -> Scenario:
    """A v1 scenario; ``fraction`` replaces its main_train_fraction (v1's 0.2 left the
    student main task with about 80 training labels)."""
    scenario = load(seed=seed)
    if fraction is not None:
        scenario = replace(scenario, main_train_fraction=fraction)
    return _finish(scenario, quick)


FAMILIES: dict[str, Family] = {
    **{n: Family(n, "multilabel", partial(multilabel, n)) for n in _MLC_FRACTION},
    **{n: Family(n, "multitarget", partial(multitarget, n)) for n in _MTR},
    **{n: Family(n, "molecule", partial(molecule, n)) for n in _MOLECULE_MAIN},
    **{n: Family(n, "cross-table", partial(cross_table, n)) for n in _CROSS},
    "student": Family("student", "mixed", partial(_mixed, student, 0.8)),
    "parkinsons": Family("parkinsons", "mixed", partial(_mixed, parkinsons)),
}
# A sanity check with known relatedness, in neither half.
SANITY = Family("synthetic", "synthetic", partial(_mixed, synthetic))


def kinds() -> dict[str, str]:
    return {name: family.kind for name, family in FAMILIES.items()}
