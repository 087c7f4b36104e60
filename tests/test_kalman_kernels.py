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


@pytest.mark.xfail(strict=True, reason=(
    "known limitation: with Q = 0 and a stable A the Rauch-Tung-Striebel recursion runs "
    "backward through A^-1 and amplifies round-off geometrically; a smoother that never "
    "inverts P_p (e.g. Bryson-Frazier) is needed"))
def test_deterministic_dynamics_long_sequence_against_joint_gaussian():
    # Q = 0: s_t = A^t s_0. Over 120 rows the backward recursion multiplies round-off by
    # |A^-1|^120; the smoothed moments of the first state are then far from the truth.
    rng = np.random.default_rng(3)
    params = random_system(rng, n_states=3, n_features=0, n_targets=2, radius=0.7)
    params = params.replace(Q=np.zeros((3, 3)))
    X, y = random_data(rng, params, T=120, missing=0.1)
    smoothed = rts_smoother(params, kalman_filter(params, X, y))
    mean, cov = brute_posterior(params, X, y)
    assert_close(smoothed.smoothed_covariances[0], block(cov, 3, 0, 0))
    assert_close(smoothed.smoothed_means[0], mean[0])


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


def assert_fast_equals_plain(params, X, y, tol=1e-12):
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
    scattered=st.sampled_from([0.0, 0.01, 0.1]),
)
def test_property_steady_state_equals_plain(seed, n_states, n_features, n_targets, T, n_gaps,
                                            scattered):
    rng = np.random.default_rng(seed)
    params = random_system(rng, n_states, n_features, n_targets, radius=0.9)
    X, y = random_data(rng, params, T, missing=scattered)  # entries missing at random
    for _ in range(n_gaps):  # runs of missing rows or entries, of random length and place
        start = rng.integers(T)
        columns = rng.random(n_targets) < 0.5
        y[start:start + rng.integers(1, 150), columns] = np.nan
    assert_fast_equals_plain(params, X, y)


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


# --------------------------------------------------------------------------- textbook


def textbook_filter_smoother(params, X, y):
    """The textbook recursions in NumPy, one row at a time, written independently of the
    kernels (standard covariance forms, general solves, symmetrized: without that the
    asymmetry of round-off grows without bound): the reference for sequences too long for
    the joint Gaussian, with any missing pattern."""

    def sym(M):
        return (M + M.T) / 2

    A, B, C, D, Q, R = params.A, params.B, params.C, params.D, params.Q, params.R
    T, n = y.shape[0], params.n_states
    m_p, m_f, m_s = np.empty((T, n)), np.empty((T, n)), np.empty((T, n))
    P_p, P_f, P_s = np.empty((T, n, n)), np.empty((T, n, n)), np.empty((T, n, n))
    P_lag = np.zeros((T, n, n))
    log_likelihood = 0.0
    for t in range(T):
        if t == 0:
            m_p[t], P_p[t] = params.initial_state_mean, params.initial_state_covariance
        else:
            m_p[t] = A @ m_f[t - 1] + B @ X[t]
            P_p[t] = sym(A @ P_f[t - 1] @ A.T + Q)
        o = ~np.isnan(y[t])
        m_f[t], P_f[t] = m_p[t], P_p[t]
        if o.any():
            S = sym(C[o] @ P_p[t] @ C[o].T + R[np.ix_(o, o)])
            K = np.linalg.solve(S, C[o] @ P_p[t]).T
            v = y[t, o] - D[o] @ X[t] - C[o] @ m_p[t]
            m_f[t] = m_p[t] + K @ v
            P_f[t] = sym(P_p[t] - K @ S @ K.T)
            log_likelihood += stats.multivariate_normal(cov=S).logpdf(v)
    m_s[-1], P_s[-1] = m_f[-1], P_f[-1]
    for t in range(T - 2, -1, -1):
        G = np.linalg.solve(P_p[t + 1], A @ P_f[t]).T
        m_s[t] = m_f[t] + G @ (m_s[t + 1] - m_p[t + 1])
        P_s[t] = sym(P_f[t] + G @ (P_s[t + 1] - P_p[t + 1]) @ G.T)
        P_lag[t + 1] = P_s[t + 1] @ G.T
    return (FilterResult(m_p, P_p, m_f, P_f, log_likelihood),
            SmootherResult(m_s, P_s, P_lag))


def make_missing(rng, y, rows, entries):
    """NaN in a fraction `rows` of whole rows and a fraction `entries` of single entries,
    at random places."""
    y = y.copy()
    y[rng.random(y.shape[0]) < rows] = np.nan
    y[rng.random(y.shape) < entries] = np.nan
    return y


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_states=st.integers(1, 4),
    n_features=st.integers(0, 2),
    n_targets=st.integers(1, 3),
    rows=st.sampled_from([0.0, 0.01, 0.1, 0.5]),
    entries=st.sampled_from([0.0, 0.01, 0.1, 0.3]),
)
def test_property_scattered_missing_against_textbook(seed, n_states, n_features, n_targets,
                                                      rows, entries):
    # Scattered gaps leave no steady state to reuse: the row-by-row path over long data.
    rng = np.random.default_rng(seed)
    params = random_system(rng, n_states, n_features, n_targets, radius=0.95)
    X, y = random_data(rng, params, T=400)
    y = make_missing(rng, y, rows, entries)
    fast, fast_s = assert_fast_equals_plain(params, X, y)
    reference, reference_s = textbook_filter_smoother(params, X, y)
    for name in FilterResult._fields[:-1]:
        want = getattr(reference, name)
        assert_close(getattr(fast, name), want, rtol=1e-9, atol=1e-9 * np.abs(want).max(),
                     err_msg=name)
    for name in SmootherResult._fields:
        want = getattr(reference_s, name)
        assert_close(getattr(fast_s, name), want, rtol=1e-9, atol=1e-9 * np.abs(want).max(),
                     err_msg=name)
    assert fast.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-10)


def test_long_sequences_with_missing_entries_run_a_copy_compiled_for_their_size(
        monkeypatch):
    # The copy with the number of states as a compile-time constant does the same
    # arithmetic: its moments and likelihood are the general copy's, bit for bit.
    from skkalman._kalman import _compiled

    calls = []
    fixed = _compiled._filter_fixed_size

    def spy(n, *args):
        calls.append(n)
        return fixed(n, *args)

    monkeypatch.setattr(_compiled, "_filter_fixed_size", spy)
    monkeypatch.setattr(_compiled, "FIXED_SIZE_ROWS", 300)
    rng = np.random.default_rng(7)
    params = random_system(rng, 2, 1, 2, radius=0.95)
    X, y = random_data(rng, params, T=400)
    y_missing = make_missing(rng, y, 0.05, 0.1)
    got = kalman_filter(params, X, y_missing)
    assert calls == [2]
    arrays = [np.ascontiguousarray(a, dtype=float) for a in (
        params.A, params.B, params.C, params.D, params.Q, params.R,
        params.initial_state_mean, params.initial_state_covariance, X, y_missing)]
    out = [np.empty((400, 2)), np.empty((400, 2, 2)), np.empty((400, 2)),
           np.empty((400, 2, 2))]
    log_likelihood, failed = _compiled._filter_any_size(*arrays, True, *out)
    assert failed == -1 and got.log_likelihood == log_likelihood
    for name, want in zip(FilterResult._fields[:-1], out, strict=True):
        np.testing.assert_array_equal(getattr(got, name), want, err_msg=name)
    # Complete data (the steady state does the work), short sequences and larger models
    # take the general copy.
    kalman_filter(params, X, y)
    kalman_filter(params, X[:299], y_missing[:299])
    monkeypatch.setattr(_compiled, "FIXED_SIZE_STATES", 1)
    kalman_filter(params, X, y_missing)
    assert calls == [2]


def test_kernels_are_thread_safe():
    # joblib runs the kernels in threads: concurrent calls (which release the GIL) must
    # give exactly the serial results.
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(13)
    problems = []
    for n_targets in (1, 2, 3):
        params = random_system(rng, n_states=3, n_features=1, n_targets=n_targets)
        X, y = random_data(rng, params, T=3000)
        problems.append((params, X, make_missing(rng, y, 0.05, 0.05)))

    def run(problem):
        params, X, y = problem
        filtered = kalman_filter(params, X, y)
        return filtered + rts_smoother(params, filtered)

    serial = [run(problem) for problem in problems]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, problems * 4))
    for k, result in enumerate(concurrent):
        for got, want in zip(result, serial[k % len(problems)], strict=True):
            np.testing.assert_array_equal(got, want)


def test_inputs_of_any_layout_and_dtype():
    # Fortran-ordered, strided, read-only, float32 and int inputs give the results of
    # contiguous float64 ones (the kernels see one type signature).
    rng = np.random.default_rng(14)
    params = random_system(rng, n_states=2, n_features=2, n_targets=2)
    X, y = random_data(rng, params, T=60)
    y = make_missing(rng, y, 0.1, 0.1)
    want = kalman_filter(params, X, y)
    X_odd = np.asfortranarray(X)
    y_odd = np.repeat(y, 2, axis=0)[::2]
    y_odd.flags.writeable = False
    got = kalman_filter(params.replace(A=params.A.T.copy().T), X_odd, y_odd)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    X_int = np.round(X).astype(np.int64)
    np.testing.assert_array_equal(
        kalman_filter(params, X_int, y).filtered_means,
        kalman_filter(params, X_int.astype(float), y).filtered_means,
    )


def test_indefinite_covariances_raise():
    rng = np.random.default_rng(15)
    params = random_system(rng, n_states=2, n_features=0, n_targets=2)
    X, y = random_data(rng, params, T=10)
    y[0] = np.nan
    # An innovation covariance that no jitter makes positive definite: a clear error that
    # names the row (the first measured one here), never NaN results.
    bad = params.replace(R=-10.0 * np.eye(2), initial_state_covariance=np.eye(2) * 1e-3,
                         Q=np.eye(2) * 1e-3)
    with pytest.raises(np.linalg.LinAlgError, match="innovation covariance at row 1"):
        kalman_filter(bad, X, y)
    with pytest.raises(np.linalg.LinAlgError, match="innovation covariance"):
        kalman_filter(params.replace(R=np.full((2, 2), np.nan)), X, y)
    filtered = kalman_filter(params, X, y)
    P_p = filtered.predicted_covariances.copy()
    P_p[4] = -np.eye(2)
    with pytest.raises(np.linalg.LinAlgError, match="predicted covariance at row 4"):
        rts_smoother(params, filtered._replace(predicted_covariances=P_p))


def test_rounding_indefinite_covariance_is_jittered():
    # A predicted covariance that is singular (Q = 0, a state the measurements pin down)
    # factors with the smallest jitter instead of failing; the results stay finite.
    params = StateSpaceParams(
        A=np.eye(2), B=np.zeros((2, 0)), C=np.eye(2), D=np.zeros((2, 0)),
        Q=np.zeros((2, 2)), R=np.eye(2), initial_state_mean=np.zeros(2),
        initial_state_covariance=np.diag([1.0, 0.0]),
    )
    y = np.ones((5, 2))
    filtered = kalman_filter(params, np.zeros((5, 0)), y)
    smoothed = rts_smoother(params, filtered)
    assert np.all(np.isfinite(smoothed.smoothed_means))
    np.testing.assert_allclose(smoothed.smoothed_means[:, 1], 0.0, atol=1e-6)


def test_completed_measurements_row_by_row():
    # The E-step's moments of the missing entries, grouped by missing pattern and in
    # blocks of rows, against the conditional Gaussian written out row by row.
    from skkalman._kalman.em import _completed_measurements

    rng = np.random.default_rng(16)
    params = random_system(rng, n_states=3, n_features=1, n_targets=3)
    T = 5000  # more rows than one block
    X, y = random_data(rng, params, T)
    y = make_missing(rng, y, 0.05, 0.3)
    means = rng.standard_normal((T, 3))
    root = rng.standard_normal((T, 3, 3))
    covariances = root @ np.swapaxes(root, 1, 2)
    C, D, R = params.C, params.D, params.R
    want_y, want_ys, want_yy = y.copy(), np.zeros((3, 3)), np.zeros((3, 3))
    for t in np.flatnonzero(np.isnan(y).any(axis=1)):
        u = np.isnan(y[t])
        o = ~u
        G = np.linalg.solve(R[np.ix_(o, o)], R[np.ix_(o, u)]).T
        H = C[u] - G @ C[o]
        want_y[t, u] = C[u] @ means[t] + D[u] @ X[t] + G @ (
            y[t, o] - C[o] @ means[t] - D[o] @ X[t])
        want_ys[u] += H @ covariances[t]
        want_yy[np.ix_(u, u)] += (H @ covariances[t] @ H.T + R[np.ix_(u, u)]
                                  - G @ R[np.ix_(o, u)])
    got_y, got_ys, got_yy = _completed_measurements(params, X, y, means, covariances)
    assert_close(got_y, want_y, rtol=1e-12, atol=1e-12)
    assert_close(got_ys, want_ys, rtol=1e-11, atol=1e-11)
    assert_close(got_yy, want_yy, rtol=1e-11, atol=1e-11)
    with pytest.raises(np.linalg.LinAlgError, match="measurements observed at row"):
        _completed_measurements(params.replace(R=-R), X, y, means, covariances)
