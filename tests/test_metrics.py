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


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 30), n_targets=st.integers(1, 3), seed=st.integers(0, 10_000),
       weighted=st.booleans())
def test_observed_r2_is_sklearns_when_complete_and_per_target_when_not(n, n_targets, seed,
                                                                     weighted):
    from sklearn.metrics import r2_score

    from skkalman.metrics import _observed_r2_score

    rng = np.random.default_rng(seed)
    y = rng.standard_normal((n, n_targets))
    pred = y + 0.5 * rng.standard_normal((n, n_targets))
    w = rng.uniform(0.1, 2.0, n) if weighted else None
    assert _observed_r2_score(y, pred, sample_weight=w) == pytest.approx(
        r2_score(y, pred, sample_weight=w))
    # Missing entries: each target over its own observed rows, targets weighted equally.
    missing = rng.random((n, n_targets)) < 0.3
    missing[:2] = False  # every target keeps observed rows
    y_nan = np.where(missing, np.nan, y)
    expected = np.mean([
        r2_score(y[~missing[:, k], k], pred[~missing[:, k], k],
                 sample_weight=None if w is None else w[~missing[:, k]])
        for k in range(n_targets)])
    assert _observed_r2_score(y_nan, pred, sample_weight=w) == pytest.approx(expected)
    # Unchanged by a common scale, up to float64's limits.
    for factor in (1e-300, 1e300):
        assert _observed_r2_score(y_nan * factor, pred * factor, sample_weight=w) == (
            pytest.approx(expected))


def test_observed_r2_bad_input():
    from skkalman.metrics import _observed_r2_score

    y = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match="sample_weight has shape"):
        _observed_r2_score(y, y, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="finite and non-negative"):
        _observed_r2_score(y, y, sample_weight=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="y_pred has shape"):
        _observed_r2_score(y, y[:, :1])
    y_missing = y.copy()
    y_missing[:, 1] = np.nan
    with pytest.raises(ValueError, match="target 1 of y has no observed"):
        _observed_r2_score(y_missing, y)
