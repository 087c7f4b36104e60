"""Filter and smoother kernels against brute force, pykalman and their own invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from skkalman._kalman import (
    FilterResult,
    SmootherResult,
    StateSpaceParams,
    kalman_filter,
    rts_smoother,
)

# --------------------------------------------------------------------------- helpers


def _spd(rng, k, scale=1.0):
    M = rng.standard_normal((k, k))
    return scale * (M @ M.T / k + 0.2 * np.eye(k))


def random_system(rng, n_states, n_features, n_targets, radius=0.9):
    """A random stable system with well-conditioned noise covariances."""
    A = rng.standard_normal((n_states, n_states))
    A *= radius / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-3)
    return StateSpaceParams(
        A=A,
        B=rng.standard_normal((n_states, n_features)),
        C=rng.standard_normal((n_targets, n_states)),
        D=rng.standard_normal((n_targets, n_features)),
        Q=_spd(rng, n_states, 0.5),
        R=_spd(rng, n_targets, 0.5),
        initial_state_mean=rng.standard_normal(n_states),
        initial_state_covariance=_spd(rng, n_states),
    )


def random_data(rng, params, T, missing=0.0):
    """Inputs and measurements of length T; a fraction `missing` of y entries is NaN."""
    X = rng.standard_normal((T, params.n_features))
    y = rng.standard_normal((T, params.n_targets))
    y[rng.random(y.shape) < missing] = np.nan
    return X, y


def joint_gaussian(params, X):
    """Mean and covariance of the stacked (s_1..s_T, y_1..y_T), built densely."""
    A, C = params.A, params.C
    T, n = X.shape[0], params.n_states
    # s = mu_s + Phi eps with eps = (s_1 - m0, w_2, ..., w_T), Phi[t, u] = A^(t-u).
    mu_s = np.empty((T, n))
    Phi = np.zeros((T * n, T * n))
    powers = [np.eye(n)]
    for _ in range(T):
        powers.append(A @ powers[-1])
    for t in range(T):
        mu_s[t] = params.initial_state_mean if t == 0 else A @ mu_s[t - 1] + params.B @ X[t]
        for u in range(t + 1):
            Phi[t * n:(t + 1) * n, u * n:(u + 1) * n] = powers[t - u]
    eps_cov = np.kron(np.eye(T), params.Q)
    eps_cov[:n, :n] = params.initial_state_covariance
    S_ss = Phi @ eps_cov @ Phi.T
    H = np.kron(np.eye(T), C)
    mu_y = mu_s @ C.T + X @ params.D.T
    S_yy = H @ S_ss @ H.T + np.kron(np.eye(T), params.R)
    S_sy = S_ss @ H.T
    return mu_s.ravel(), S_ss, mu_y.ravel(), S_yy, S_sy


def brute_posterior(params, X, y, rows=None):
    """Exact mean (T, n) and covariance (T n, T n) of the states given the observed
    entries of y in `rows` (all rows by default)."""
    mu_s, S_ss, mu_y, S_yy, S_sy = joint_gaussian(params, X)
    T, n = X.shape[0], params.n_states
    use = ~np.isnan(y)
    if rows is not None:
        use[rows:] = False
    use = use.ravel()
    if not use.any():
        return mu_s.reshape(T, n), S_ss
    yv = np.nan_to_num(y).ravel()[use]
    gain = np.linalg.solve(S_yy[np.ix_(use, use)], S_sy[:, use].T).T
    mean = mu_s + gain @ (yv - mu_y[use])
    cov = S_ss - gain @ S_sy[:, use].T
    return mean.reshape(T, n), cov


def brute_log_likelihood(params, X, y):
    _, _, mu_y, S_yy, _ = joint_gaussian(params, X)
    use = ~np.isnan(y).ravel()
    if not use.any():
        return 0.0
    return stats.multivariate_normal(mu_y[use], S_yy[np.ix_(use, use)]).logpdf(
        y.ravel()[use]
    )


def block(cov, n, t, u):
    return cov[t * n:(t + 1) * n, u * n:(u + 1) * n]


def assert_close(actual, desired, rtol=1e-8, atol=1e-9, err_msg=""):
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)


# --------------------------------------------------------------------------- brute force


def check_against_brute_force(params, X, y):
    T, n = X.shape[0], params.n_states
    fr = kalman_filter(params, X, y)
    sr = rts_smoother(params, fr)
    assert isinstance(fr, FilterResult) and isinstance(sr, SmootherResult)

    mean, cov = brute_posterior(params, X, y)
    assert_close(sr.smoothed_means, mean, err_msg="smoothed means")
    for t in range(T):
        assert_close(sr.smoothed_covariances[t], block(cov, n, t, t), err_msg="smoothed cov")
        if t > 0:
            assert_close(sr.lag_one_covariances[t], block(cov, n, t, t - 1), err_msg="lag-one")
    assert np.all(sr.lag_one_covariances[0] == 0)

    for t in range(T):
        mean_f, cov_f = brute_posterior(params, X, y, rows=t + 1)
        assert_close(fr.filtered_means[t], mean_f[t], err_msg="filtered means")
        assert_close(fr.filtered_covariances[t], block(cov_f, n, t, t), err_msg="filtered cov")
        mean_p, cov_p = brute_posterior(params, X, y, rows=t)
        assert_close(fr.predicted_means[t], mean_p[t], err_msg="predicted means")
        assert_close(fr.predicted_covariances[t], block(cov_p, n, t, t), err_msg="predicted cov")

    assert_close(fr.log_likelihood, brute_log_likelihood(params, X, y), err_msg="loglik")


def test_against_joint_gaussian_fixed_case():
    rng = np.random.default_rng(0)
    params = random_system(rng, n_states=3, n_features=2, n_targets=2)
    X, y = random_data(rng, params, T=7)
    check_against_brute_force(params, X, y)


def test_missing_rows_and_entries_against_joint_gaussian():
    rng = np.random.default_rng(1)
    params = random_system(rng, n_states=3, n_features=1, n_targets=3)
    X, y = random_data(rng, params, T=8)
    y[2] = np.nan  # all-NaN row: no update
    y[4, 1] = np.nan  # partly NaN rows: update on the observed entries
    y[5, [0, 2]] = np.nan
    y[7] = np.nan  # a missing last row
    check_against_brute_force(params, X, y)


def test_first_row_missing_and_all_missing():
    rng = np.random.default_rng(2)
    params = random_system(rng, n_states=2, n_features=0, n_targets=2)
    X, y = random_data(rng, params, T=5)
    y[0] = np.nan
    check_against_brute_force(params, X, y)
    y[:] = np.nan
    check_against_brute_force(params, X, y)
    assert kalman_filter(params, X, y).log_likelihood == 0.0


def test_single_row():
    rng = np.random.default_rng(3)
    params = random_system(rng, n_states=2, n_features=1, n_targets=1)
    X, y = random_data(rng, params, T=1)
    check_against_brute_force(params, X, y)


@pytest.mark.parametrize("rank", [0, 1])
def test_singular_process_noise_against_joint_gaussian(rank):
    # Q of rank 0 (deterministic dynamics) or 1: the smoother's P_p may be singular.
    rng = np.random.default_rng(10 + rank)
    params = random_system(rng, n_states=3, n_features=1, n_targets=2)
    q = rng.standard_normal((3, rank))
    params = params.replace(Q=q @ q.T)
    X, y = random_data(rng, params, T=7, missing=0.2)
    check_against_brute_force(params, X, y)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_states=st.integers(1, 3),
    n_features=st.integers(0, 2),
    n_targets=st.integers(1, 3),
    T=st.integers(1, 6),
    missing=st.sampled_from([0.0, 0.3, 0.7]),
)
def test_property_against_joint_gaussian(seed, n_states, n_features, n_targets, T, missing):
    rng = np.random.default_rng(seed)
    params = random_system(rng, n_states, n_features, n_targets)
    X, y = random_data(rng, params, T, missing)
    check_against_brute_force(params, X, y)


# --------------------------------------------------------------------------- invariants


def test_nan_row_is_a_skipped_update():
    rng = np.random.default_rng(4)
    params = random_system(rng, n_states=3, n_features=2, n_targets=2)
    X, y = random_data(rng, params, T=30)
    y[[3, 10, 11, 29]] = np.nan
    fr = kalman_filter(params, X, y)
    for t in (3, 10, 11, 29):
        np.testing.assert_array_equal(fr.filtered_means[t], fr.predicted_means[t])
        np.testing.assert_array_equal(fr.filtered_covariances[t], fr.predicted_covariances[t])
    # The values a NaN row would have carried cannot matter; neither can inputs' effect on y
    # there, and the likelihood of the remaining rows is the same.
    fr_again = kalman_filter(params, X, y)
    assert fr_again.log_likelihood == fr.log_likelihood
    y_obs = y.copy()
    y_obs[3] = 0.0
    assert kalman_filter(params, X, y_obs).log_likelihood != fr.log_likelihood


def test_covariances_symmetric_psd_over_long_sequence():
    rng = np.random.default_rng(5)
    params = random_system(rng, n_states=4, n_features=1, n_targets=2, radius=0.99)
    X, y = random_data(rng, params, T=400, missing=0.2)
    fr = kalman_filter(params, X, y)
    sr = rts_smoother(params, fr)
    for covs in (fr.predicted_covariances, fr.filtered_covariances, sr.smoothed_covariances):
        np.testing.assert_array_equal(covs, np.swapaxes(covs, 1, 2))
        assert np.linalg.eigvalsh(covs).min() > 0


def test_causality():
    rng = np.random.default_rng(6)
    params = random_system(rng, n_states=2, n_features=1, n_targets=2)
    X, y = random_data(rng, params, T=20)
    fr = kalman_filter(params, X, y)
    X2, y2 = X.copy(), y.copy()
    X2[12:] += 1.0
    y2[12:] = -y2[12:]
    fr2 = kalman_filter(params, X2, y2)
    for name in ("predicted_means", "filtered_means", "filtered_covariances"):
        np.testing.assert_array_equal(getattr(fr, name)[:12], getattr(fr2, name)[:12])
    assert not np.allclose(fr.filtered_means[12:], fr2.filtered_means[12:])


# --------------------------------------------------------------------------- pykalman


def pykalman_model(params, X):
    from pykalman import KalmanFilter

    # pykalman: s_{t+1} = A s_t + b_t and y_t = C s_t + d_t, so its transition offset
    # b_{t-1} is our B x_t, and its observation offset d_t is our D x_t.
    return KalmanFilter(
        transition_matrices=params.A,
        observation_matrices=params.C,
        transition_covariance=params.Q,
        observation_covariance=params.R,
        transition_offsets=X[1:] @ params.B.T,
        observation_offsets=X @ params.D.T,
        initial_state_mean=params.initial_state_mean,
        initial_state_covariance=params.initial_state_covariance,
    )


@pytest.mark.parametrize("n_features", [0, 2])
def test_against_pykalman(n_features):
    pytest.importorskip("pykalman")
    rng = np.random.default_rng(7)
    params = random_system(rng, n_states=3, n_features=n_features, n_targets=2)
    X, y = random_data(rng, params, T=200)
    y[[0, 50, 51, 52, 199]] = np.nan  # pykalman handles whole missing rows only
    masked = np.ma.masked_invalid(y)
    kf = pykalman_model(params, X)

    fr = kalman_filter(params, X, y)
    sr = rts_smoother(params, fr)
    means_f, covs_f = kf.filter(masked)
    means_s, covs_s = kf.smooth(masked)
    assert_close(fr.filtered_means, means_f, atol=1e-10)
    assert_close(fr.filtered_covariances, covs_f, atol=1e-10)
    assert_close(sr.smoothed_means, means_s, atol=1e-10)
    assert_close(sr.smoothed_covariances, covs_s, atol=1e-10)
    assert_close(fr.log_likelihood, kf.loglikelihood(masked), rtol=1e-10)


# --------------------------------------------------------------------------- steady state


def assert_fast_equals_plain(params, X, y, tol=1e-10):
    fast = kalman_filter(params, X, y)
    plain = kalman_filter(params, X, y, steady_state=False)
    fast_s = rts_smoother(params, fast)
    plain_s = rts_smoother(params, plain, steady_state=False)
    for name in FilterResult._fields[:-1]:
        got, want = getattr(fast, name), getattr(plain, name)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max(),
                                   err_msg=name)
    for name in SmootherResult._fields:
        got, want = getattr(fast_s, name), getattr(plain_s, name)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max(),
                                   err_msg=name)
    assert fast.log_likelihood == pytest.approx(plain.log_likelihood, rel=tol, abs=tol)
    return fast, fast_s


def test_steady_state_path_equals_plain_recursion():
    rng = np.random.default_rng(8)
    params = random_system(rng, n_states=4, n_features=2, n_targets=2, radius=0.95)
    X, y = random_data(rng, params, T=3000)
    y[500] = np.nan  # a lone missing row breaks the steady state, which must re-form
    y[1200:1210, 0] = np.nan  # a run with its own (partly observed) steady state
    y[2500:] = np.nan  # no measurements at the end: the prediction steady state
    fr, sr = assert_fast_equals_plain(params, X, y)
    # The fast path did engage: covariances are exactly constant over steady stretches,
    # which the plain recursion (round-off wobble) essentially never produces.
    for covs in (fr.predicted_covariances, fr.filtered_covariances, sr.smoothed_covariances):
        assert np.all(covs[150:380] == covs[300])
        assert np.all(covs[2850:2990] == covs[2950])


def test_steady_state_without_measurements():
    # predict(): all rows missing; the covariance converges to the Lyapunov solution.
    rng = np.random.default_rng(9)
    params = random_system(rng, n_states=3, n_features=2, n_targets=1, radius=0.9)
    X, y = random_data(rng, params, T=1500, missing=1.0)
    fr, _ = assert_fast_equals_plain(params, X, y)
    P = fr.predicted_covariances[-1]
    np.testing.assert_allclose(P, params.A @ P @ params.A.T + params.Q, rtol=1e-12)
    assert fr.log_likelihood == 0.0


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_states=st.integers(1, 4),
    n_features=st.integers(0, 2),
    n_targets=st.integers(1, 3),
    T=st.integers(150, 700),
    n_gaps=st.integers(0, 4),
)
def test_property_steady_state_equals_plain(seed, n_states, n_features, n_targets, T, n_gaps):
    rng = np.random.default_rng(seed)
    params = random_system(rng, n_states, n_features, n_targets, radius=0.9)
    X, y = random_data(rng, params, T)
    for _ in range(n_gaps):  # runs of missing rows or entries, of random length and place
        start = rng.integers(T)
        columns = rng.random(n_targets) < 0.5
        y[start:start + rng.integers(1, 150), columns] = np.nan
    assert_fast_equals_plain(params, X, y)


@pytest.mark.parametrize("n", [1, 3, 40])
@pytest.mark.parametrize("n_rows", [0, 1, 5, 300, 1025, 5000])
def test_linear_recursion_matches_loop(n, n_rows):
    from skkalman._kalman.filter import _linear_recursion

    rng = np.random.default_rng(n * 10_000 + n_rows)
    F = rng.standard_normal((n, n))
    F *= 0.97 / np.max(np.abs(np.linalg.eigvals(F)))
    z0, U = rng.standard_normal(n), rng.standard_normal((n_rows, n))
    expected = np.empty((n_rows, n))
    z = z0
    for i in range(n_rows):
        z = F @ z + U[i]
        expected[i] = z
    got = _linear_recursion(F, z0, U)
    assert got.shape == (n_rows, n)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-11)


def test_steady_state_on_large_scale_data():
    # Data and covariances scaled by 1e6 (variances by 1e12): same relative accuracy.
    rng = np.random.default_rng(11)
    params = random_system(rng, n_states=3, n_features=1, n_targets=2)
    scale = 1e6
    params = params.replace(
        B=scale * params.B, D=scale * params.D, Q=scale**2 * params.Q,
        R=scale**2 * params.R, initial_state_mean=scale * params.initial_state_mean,
        initial_state_covariance=scale**2 * params.initial_state_covariance,
    )
    X, y = random_data(rng, params, T=1500)
    y *= scale
    y[600:640] = np.nan
    fr, sr = assert_fast_equals_plain(params, X, y)
    assert np.linalg.eigvalsh(sr.smoothed_covariances).min() > 0


def test_remembered_covariance_steps_do_not_change_results():
    # Covariance steps are remembered across calls; a warm memo must give the same bits.
    from skkalman._kalman import filter as filter_module

    rng = np.random.default_rng(12)
    params = random_system(rng, n_states=3, n_features=1, n_targets=2)
    X, y = random_data(rng, params, T=2500)
    y[rng.random(2500) < 0.02] = np.nan  # scattered gaps: transients that repeat
    y[1000:1100, 1] = np.nan
    filter_module._memos.clear()
    cold = kalman_filter(params, X, y)
    cold_s = rts_smoother(params, cold)
    assert len(filter_module._memos) == 2  # one for the filter, one for the smoother
    warm = kalman_filter(params, X, y)
    warm_s = rts_smoother(params, warm)
    for a, b in zip(cold + cold_s, warm + warm_s, strict=True):
        np.testing.assert_array_equal(a, b)
    # Another sequence with the same parameters reuses the same memos.
    X2, y2 = random_data(rng, params, T=300)
    rts_smoother(params, kalman_filter(params, X2, y2))
    assert len(filter_module._memos) == 2
    assert_fast_equals_plain(params, X, y)


@pytest.mark.parametrize("n_rows", [0, 1, 5, 6, 64, 1000])
def test_varying_recursion_matches_loop(n_rows):
    from skkalman._kalman.filter import _varying_recursion

    rng = np.random.default_rng(n_rows)
    n = 3
    F = rng.standard_normal((n_rows, n, n))
    F *= 0.9 / np.maximum(np.max(np.abs(np.linalg.eigvals(F)), axis=1), 1e-3)[:, None, None]
    z0, U = rng.standard_normal(n), rng.standard_normal((n_rows, n))
    expected = np.empty((n_rows, n))
    z = z0
    for i in range(n_rows):
        z = F[i] @ z + U[i]
        expected[i] = z
    np.testing.assert_allclose(_varying_recursion(F, z0, U), expected, rtol=1e-10, atol=1e-11)
    np.testing.assert_array_equal(_varying_recursion(F, z0, U, sequential=True), expected)
