"""The synthetic family beyond the orthogonal case: more candidates than features."""

import numpy as np

from engine import make_task_family


def test_more_related_candidates_than_features():
    rho = np.linspace(0.95, 0.0, 12)
    family = make_task_family(n_rows=4000, n_features=8, relatedness=rho, n_noise=1, seed=0)
    assert len(family.candidates) == 13
    assert list(family.relatedness.values())[:12] == list(rho)
    # With the nonlinearity and label noise off, corr(label, y) is the cosine itself.
    clean = make_task_family(
        n_rows=20000, n_features=8, relatedness=rho, nonlinearity=0.0, label_noise=0.0, seed=0
    )
    corr = [np.corrcoef(clean.frame["y"], clean.frame[c])[0, 1] for c in clean.candidates[:12]]
    np.testing.assert_allclose(corr, rho, atol=0.03)
