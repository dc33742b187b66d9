"""Column roles: what each column of a data set is for.

A column is a ``feature`` (a model input), a ``label`` (a task: never an input unless a
job names it and the user changes its role), an ``id`` (identifies a row: never an
input) or ``ignore`` (nothing a model can use). Roles are inferred at upload from the
column profile (app/data/profiling.py; the data are not read again), stored with the
data set, and editable (PATCH /api/v1/datasets/{id}/columns). Each role carries the
reason it was given, in words shown to the user.

Inference, first rule that matches wins (docs/datasets.md repeats it for users):

1. ``ignore``: no value, or one value in every row (constant).
2. ``id``: an identifier's name (``id``, ``*_id``, ``*Id``, ``uuid``, ``index``,
   ``smiles``, ``inchi``, ``Unnamed: 0``, ...).
3. ``label``: a target's name: ``y``, ``y1``, ``class``, or a name holding the word
   label(s), target(s), task, outcome, response or endpoint.
4. ``id``: integers, or text without spaces, one distinct value per row (at least 20
   rows).
5. ``ignore``: dates (the engine does not use dates as features).
6. ``ignore``: free text: text with more distinct values than the engine one-hot encodes
   (``FeatureConfig.max_categories``) and as many as half the labelled rows.
7. ``feature``: a member of the table's feature series (see below).
8. ``label``: values missing (1% of rows or more) while at least half of the other usable
   columns are complete: a sparse, partially labelled task (Tox21-like tables).
9. ``label``: outside the feature series, when the table has one.
10. ``feature``: everything else.

The *feature series* is the largest block of numbered columns named as inputs are
(``x0`` ... ``x31``, ``fp_0`` ... ``fp_1023``, ``feature_1``...: a prefix among x, f, feat,
feature, fp, fingerprint, bit, v, var, d, desc, descriptor, pc, emb, embedding, pixel,
px, input, then a number), when it has at least 8 columns and holds at least half of the
usable columns: wide tables keep their inputs in such a block, and the columns beside
it are the targets. (A numbered block with another prefix, ``task_0`` ... or ``c0`` ...,
may as well be the labels, so it decides nothing.)

When in doubt the rules prefer ``label``: a feature wrongly held back costs a little
accuracy and is shown to the user with its reason; a label wrongly fed in as an input
leaks the answer and makes every gain meaningless.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import engine

Role = Literal["feature", "label", "id", "ignore"]
ROLES: tuple[Role, ...] = get_args(Role)
SetBy = Literal["inferred", "user"]

MIN_ID_ROWS = 20
SERIES_MIN_COLUMNS = 8
SERIES_MIN_SHARE = 0.5
SPARSE_MIN_MISSING = 0.01
SPARSE_COMPLETE_SHARE = 0.5

ID_NAMES = frozenset(
    {
        "id",
        "ids",
        "idx",
        "index",
        "uuid",
        "guid",
        "key",
        "rowid",
        "row_id",
        "smiles",
        "canonical_smiles",
        "inchi",
        "inchikey",
    }
)
ID_PATTERN = re.compile(r"(^|[\W_])(id|uuid|smiles|inchi|inchikey)$|[a-z]Id$|[a-z]ID$|^unnamed:")
LABEL_WORDS = frozenset(
    {
        "label",
        "labels",
        "target",
        "targets",
        "task",
        "outcome",
        "outcomes",
        "response",
        "endpoint",
    }
)
LABEL_NAME = re.compile(r"^(y|y_?\d+|class)$")


def _words(name: str) -> set[str]:
    """A column name's words: split at non-letters and at camelCase boundaries."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {w.lower() for w in re.split(r"[^A-Za-z]+", spaced) if w}


def _label_name(name: str) -> bool:
    return bool(LABEL_NAME.match(name.strip().lower()) or _words(name) & LABEL_WORDS)


def _stem(name: str) -> str:
    return re.sub(r"\d+", "#", name)


FEATURE_SERIES = re.compile(
    r"(x|f|feat|feature|features|fp|fingerprint|bit|v|var|d|desc|descriptor|pc|emb|"
    r"embedding|pixel|px|input)[ _.\-]?#",
    re.IGNORECASE,
)


def _role(role: Role, reason: str, set_by: SetBy = "inferred") -> dict[str, str]:
    return {"role": role, "reason": reason, "set_by": set_by}


def _early(column: Mapping[str, object], rows: int) -> dict[str, str] | None:
    """Rules 1-2 and 4-6: the columns no model can use as an input (rule 3, a target's
    name, goes on to the labels)."""
    name = str(column["name"])
    unique = int(str(column["unique"]))
    missing = int(str(column["missing"]))
    dtype = str(column["dtype"])
    if unique == 0:
        return _role("ignore", "Every value is missing.")
    if unique == 1:
        return _role("ignore", "Constant: every row holds the same value.")
    lowered = name.strip().lower()
    if lowered in ID_NAMES or ID_PATTERN.search(name.strip()) or ID_PATTERN.search(lowered):
        return _role("id", f"The name {name!r} names an identifier.")
    if _label_name(name):
        return None
    raw = column.get("examples")
    examples = [str(v) for v in raw] if isinstance(raw, list) else []
    # Free text has words (spaces) or long values; identifiers (codes, SMILES) do not.
    prose = bool(examples) and (
        any(" " in v.strip() for v in examples) or sum(map(len, examples)) / len(examples) >= 40
    )
    unique_per_row = unique == rows and missing == 0 and rows >= MIN_ID_ROWS
    if unique_per_row and (dtype == "integer" or (dtype == "text" and not prose)):
        return _role("id", f"{'Integers' if dtype == 'integer' else 'Text'}, unique in every row.")
    if dtype == "datetime":
        return _role("ignore", "Dates are not used as features.")
    labelled = rows - missing
    limit = engine.FeatureConfig().max_categories
    if dtype == "text" and unique > limit and unique * 2 >= labelled:
        what = "Free text" if prose else "High-cardinality text"
        return _role(
            "ignore",
            f"{what}: {unique:,} distinct values in {labelled:,} rows; a feature keeps at "
            f"most {limit} categories.",
        )
    return None


def infer_roles(profile: Sequence[Mapping[str, object]], rows: int) -> dict[str, dict[str, str]]:
    """Each column's inferred role and reason, by name, in the profile's order:
    ``{"role": ..., "reason": ..., "set_by": "inferred"}`` (the rules: this module's doc)."""
    roles: dict[str, dict[str, str] | None] = {str(c["name"]): _early(c, rows) for c in profile}
    usable = [c for c in profile if roles[str(c["name"])] is None]
    stems = Counter(_stem(str(c["name"])) for c in usable)
    series, size = next(
        ((s, n) for s, n in stems.most_common() if FEATURE_SERIES.fullmatch(s)), (None, 0)
    )
    if size < SERIES_MIN_COLUMNS or size < SERIES_MIN_SHARE * len(usable):
        series = None
    complete = sum(1 for c in usable if int(str(c["missing"])) == 0)
    shown = series.replace("#", "<n>") if series else ""
    for column in usable:
        name = str(column["name"])
        missing = int(str(column["missing"]))
        others = len(usable) - 1
        if _label_name(name):
            roles[name] = _role("label", f"The name {name!r} names a target.")
        elif series is not None and _stem(name) == series:
            roles[name] = _role("feature", f"One of the {size} numbered feature columns {shown}.")
        elif (
            missing >= max(1, SPARSE_MIN_MISSING * rows)
            and others > 0
            and complete >= SPARSE_COMPLETE_SHARE * others
        ):
            roles[name] = _role(
                "label",
                f"Partially labelled: {missing:,} of {rows:,} rows missing while "
                f"{complete} of the other {others} columns are complete, as a sparse task.",
            )
        elif series is not None:
            roles[name] = _role(
                "label",
                f"Beside the {size} numbered feature columns {shown}, as targets are.",
            )
        else:
            roles[name] = _role("feature", "A usable column with no sign of a label or an id.")
    return {name: role for name, role in roles.items() if role is not None}


def roles_of(
    stored: Mapping[str, Mapping[str, str]] | None,
    profile: Sequence[Mapping[str, object]],
    rows: int,
) -> dict[str, dict[str, str]]:
    """A data set's roles: as stored, or inferred from its profile for a data set
    uploaded before roles (and for any column the stored roles lack)."""
    names = [str(c["name"]) for c in profile]
    if stored and all(name in stored for name in names):
        return {name: dict(stored[name]) for name in names}
    inferred = infer_roles(profile, rows)
    return {name: dict((stored or {}).get(name) or role) for name, role in inferred.items()}


def user_role(role: Role) -> dict[str, str]:
    return _role(role, "Set by the data set's owner.", "user")


def default_inputs(
    columns: Sequence[str], roles: Mapping[str, Mapping[str, str]], tasks: set[str]
) -> list[str]:
    """A job's inputs when it names no ``features``: the feature-role columns, in the
    table's order, without the job's own task columns."""
    return [c for c in columns if c not in tasks and roles[c]["role"] == "feature"]
