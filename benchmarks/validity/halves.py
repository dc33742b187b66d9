"""Which families tune the advice and which report on it.

The assignment lives in ``halves.json`` (committed before any probe was compared with a
reference) and is never recomputed for a family already listed there. A family added
later is placed by :func:`assign`: within its kind, families are taken in the order of
``sha256(salt + name)``, each going to the half that holds fewer families of that kind
(ties: the hash's parity). So the halves stay balanced per kind, the placement of a new
family depends only on its name and the families already placed, and adding a family
never moves an existing one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

HALVES = ("tune", "report")
SALT = "auxsel-validity-v2"
ASSIGNMENT = Path(__file__).parent / "halves.json"


def _digest(name: str, salt: str = SALT) -> int:
    return int(hashlib.sha256(f"{salt}:{name}".encode()).hexdigest(), 16)


def assign(
    kinds: Mapping[str, str],
    existing: Mapping[str, str] | None = None,
    *,
    salt: str = SALT,
) -> dict[str, str]:
    """Halves of every family in ``kinds`` (family -> kind), keeping ``existing``
    (family -> half) unchanged and placing the others as the module docstring says."""
    placed = dict(existing or {})
    unknown = {h for h in placed.values() if h not in HALVES}
    if unknown:
        raise ValueError(f"unknown half {sorted(unknown)[0]!r}; expected one of {HALVES}")
    for kind in sorted(set(kinds.values())):
        new = sorted(
            (f for f, k in kinds.items() if k == kind and f not in placed),
            key=lambda f: _digest(f, salt),
        )
        for family in new:
            count = dict.fromkeys(HALVES, 0)
            for other, half in placed.items():
                if kinds.get(other) == kind:
                    count[half] += 1
            if count["tune"] == count["report"]:
                placed[family] = HALVES[_digest(family, salt) % 2]
            else:
                placed[family] = min(HALVES, key=lambda h: count[h])
    return {f: placed[f] for f in sorted(placed)}


def load(path: Path = ASSIGNMENT) -> dict[str, str]:
    """family -> half, as committed."""
    body = json.loads(path.read_text())
    return {f: entry["half"] for f, entry in body["families"].items()}


def write(kinds: Mapping[str, str], halves: Mapping[str, str], path: Path = ASSIGNMENT) -> None:
    body = {
        "about": (
            "Validity benchmark v2: families that may tune defaults (tune) and families "
            "that report (report). Fixed before any probe was compared with a reference; "
            "see benchmarks/validity/halves.py for how a new family is placed."
        ),
        "salt": SALT,
        "families": {f: {"kind": kinds[f], "half": halves[f]} for f in sorted(halves)},
    }
    path.write_text(json.dumps(body, indent=2) + "\n")


def families_of(half: str, path: Path = ASSIGNMENT) -> list[str]:
    if half not in HALVES:
        raise ValueError(f"unknown half {half!r}; expected one of {HALVES}")
    return [f for f, h in load(path).items() if h == half]
