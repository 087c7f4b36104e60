"""eigenvalue_error: optimal matching, invariance, and surplus modes reported."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skkalman.datasets import make_lds
from skkalman.metrics import eigenvalue_error, match_eigenvalues


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_invariant_to_similarity_and_permutation(n, seed):
    rng = np.random.default_rng(seed)
    _, _, s = make_lds(n_states=n, n_samples=2, random_state=seed)
    A_est = s.A + 0.05 * rng.standard_normal((n, n))
    base = eigenvalue_error(A_est, s.A)
    T = rng.standard_normal((n, n)) + 3 * np.eye(n)
    similar = T @ A_est @ np.linalg.inv(T)
    assert eigenvalue_error(similar, s.A) == pytest.approx(base, abs=1e-8)
    perm = rng.permutation(n)
    assert eigenvalue_error(A_est[np.ix_(perm, perm)], s.A) == pytest.approx(base, abs=1e-12)
    assert eigenvalue_error(np.linalg.eigvals(A_est)[::-1], s.A) == pytest.approx(base,
                                                                                   abs=1e-10)


def test_optimal_not_greedy_matching():
    # Greedy nearest-first matching would pair 0.5 with 0.45 and leave 0.9 for 0.4 (0.5).
    est, true = np.array([0.45, 0.9]), np.array([0.4, 0.5])
    assert eigenvalue_error(est, true) == pytest.approx(0.4)


def test_exact_match_is_zero():
    A = np.array([[0.9, -0.3], [0.3, 0.9]])
    assert eigenvalue_error(A, A) == pytest.approx(0.0, abs=1e-14)


def test_surplus_modes_are_reported_and_counted():
    match = match_eigenvalues(np.diag([0.9, 0.5, 0.3]), np.diag([0.9, 0.5]))
    np.testing.assert_allclose(match.unmatched_estimated, [0.3])
    assert match.unmatched_true.size == 0
    assert match.error == pytest.approx(0.3)
    # A surplus mode at zero is a mode that vanishes at once: it costs nothing.
    assert eigenvalue_error(np.diag([0.9, 0.5, 0.0]), np.diag([0.9, 0.5])) == 0.0


def test_missing_modes_are_reported_and_counted():
    match = match_eigenvalues(np.diag([0.9]), np.diag([0.9, 0.7]))
    np.testing.assert_allclose(match.unmatched_true, [0.7])
    assert match.error == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("A_est", "match"),
    [
        (np.ones((2, 3)), "square matrix"),
        (np.ones((2, 2, 2)), "square matrix"),
        (np.array([[np.nan, 0], [0, 1]]), "NaN or infinity"),
    ],
)
def test_bad_input(A_est, match):
    with pytest.raises(ValueError, match=match):
        eigenvalue_error(A_est, np.eye(2))
