"""Molecule featurisation for tables whose rows are molecules given as SMILES.

Needs RDKit, an optional dependency (``pip install 'auxsel[chem]'``); it is imported
only when a function here is called, so the rest of the engine works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from engine.errors import FeaturisationError, MissingDependencyError, SpecError

InvalidSmiles = Literal["raise", "nan"]


def morgan_fingerprints(
    smiles: Sequence[str],
    radius: int = 2,
    n_bits: int = 2048,
    *,
    invalid: InvalidSmiles = "raise",
) -> np.ndarray:
    """Morgan (ECFP-like) bit fingerprints, one row per molecule: [n, n_bits] float32 of 0/1.

    ``radius=2`` with 2,048 bits is the usual ECFP4 setting. A SMILES that RDKit cannot
    parse raises :class:`FeaturisationError` naming it (``invalid="raise"``), or gives a
    row of NaN (``invalid="nan"``) so that the caller can drop or mask it.

    >>> morgan_fingerprints(["CCO", "c1ccccc1"]).shape  # doctest: +SKIP
    (2, 2048)
    """
    if isinstance(smiles, str):
        raise SpecError(
            "morgan_fingerprints takes a sequence of SMILES strings, not one string.",
            field="smiles",
            hint="Wrap a single molecule in a list.",
        )
    if radius < 0:
        raise SpecError("radius must be zero or more.", field="radius")
    if n_bits < 1:
        raise SpecError("n_bits must be at least 1.", field="n_bits")
    if invalid not in ("raise", "nan"):
        raise SpecError(f"Unknown invalid={invalid!r}.", field="invalid", hint="Use raise or nan.")
    chem, generators = _rdkit()
    generator = generators.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), dtype=np.float32)
    bad: list[int] = []
    for i, text in enumerate(smiles):
        molecule = chem.MolFromSmiles(text) if isinstance(text, str) and text else None
        if molecule is None:
            bad.append(i)
            out[i] = np.nan
            continue
        out[i] = generator.GetFingerprintAsNumPy(molecule)
    if bad and invalid == "raise":
        shown = ", ".join(f"row {i} ({smiles[i]!r})" for i in bad[:3])
        raise FeaturisationError(
            f"{len(bad)} SMILES could not be parsed: {shown}{', ...' if len(bad) > 3 else ''}.",
            field="smiles",
            hint="Fix or remove those rows, or pass invalid='nan' to get NaN rows instead.",
        )
    return out


def _rdkit() -> tuple[Any, Any]:
    """RDKit's Chem and rdFingerprintGenerator modules, with its parse warnings muted."""
    try:
        from rdkit import Chem, rdBase
        from rdkit.Chem import rdFingerprintGenerator
    except ImportError as exc:  # pragma: no cover - exercised only without rdkit
        raise MissingDependencyError(
            "Featurising SMILES needs RDKit, which is not installed.",
            field="smiles",
            hint="Install it with `pip install 'auxsel[chem]'` (or `pip install rdkit`).",
        ) from exc
    rdBase.DisableLog("rdApp.*")
    return Chem, rdFingerprintGenerator
