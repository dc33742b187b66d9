"""engine.chem: Morgan fingerprints match RDKit's own, bad SMILES are named, and a
missing RDKit gives a clear engine error."""

import sys

import numpy as np
import pytest

from engine import FeaturisationError, MissingDependencyError, SpecError, morgan_fingerprints

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]


def test_fingerprints_match_rdkit_generator():
    chem = pytest.importorskip("rdkit.Chem")
    from rdkit.Chem import rdFingerprintGenerator

    x = morgan_fingerprints(SMILES)
    assert x.shape == (3, 2048)
    assert x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    for row, smiles in zip(x, SMILES, strict=True):
        expected = generator.GetFingerprintAsNumPy(chem.MolFromSmiles(smiles))
        np.testing.assert_array_equal(row, expected)
    # Larger radius sees more substructures; fewer bits fold them together.
    assert (morgan_fingerprints(SMILES, radius=3).sum(1) >= x.sum(1)).all()
    assert morgan_fingerprints(SMILES, n_bits=64).shape == (3, 64)


def test_unparseable_smiles_are_named_or_nan():
    pytest.importorskip("rdkit")
    with pytest.raises(FeaturisationError, match=r"row 1 \('not a molecule\(\('\)") as info:
        morgan_fingerprints(["CCO", "not a molecule((", "CCN"])
    assert info.value.field == "smiles"
    x = morgan_fingerprints(["CCO", "not a molecule((", ""], invalid="nan")
    assert np.isfinite(x[0]).all()
    assert np.isnan(x[1:]).all()


def test_bad_arguments_are_spec_errors():
    with pytest.raises(SpecError, match="sequence"):
        morgan_fingerprints("CCO")
    with pytest.raises(SpecError, match="n_bits"):
        morgan_fingerprints(["CCO"], n_bits=0)


def test_missing_rdkit_is_a_clear_engine_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdkit", None)  # makes `import rdkit` fail
    with pytest.raises(MissingDependencyError, match=r"auxsel\[chem\]"):
        morgan_fingerprints(["CCO"])
