"""make_lds samples exactly from the model; lagged_targets builds the forecasting set-up."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skkalman.datasets import SYSTEMS, lagged_targets, make_lds, make_pendulum


@settings(max_examples=25, deadline=None)
@given(
    n_states=st.integers(1, 4), n_inputs=st.integers(0, 2), n_outputs=st.integers(1, 3),
    n_samples=st.integers(5, 60), seed=st.integers(0, 1000),
)
def test_shapes_and_determinism(n_states, n_inputs, n_outputs, n_samples, seed):
    X, y, system = make_lds(n_states, n_inputs, n_outputs, n_samples, random_state=seed)
    X2, y2, system2 = make_lds(n_states, n_inputs, n_outputs, n_samples, random_state=seed)
    assert X.shape == (n_samples, n_inputs)
    assert y.shape == ((n_samples,) if n_outputs == 1 else (n_samples, n_outputs))
    assert system.states.shape == (n_samples, n_states)
    assert system.B.shape == (n_states, n_inputs) and system.D.shape == (n_outputs, n_inputs)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(system.A, system2.A)
    assert np.max(np.abs(system.eigenvalues)) < 1


def test_different_seeds_differ():
    _, y1, _ = make_lds(system="oscillator", n_samples=50, random_state=0)
    _, y2, _ = make_lds(system="oscillator", n_samples=50, random_state=1)
    assert not np.allclose(y1, y2)


@pytest.mark.parametrize("system", SYSTEMS)
def test_named_systems_follow_the_model(system):
    # The sampled states and measurements must satisfy the model's equations, with
    # residuals of the declared covariances: Q for the states, R for the measurements.
    X, y, s = make_lds(system=system, n_inputs=2, n_samples=40_000, process_noise=0.05,
                       measurement_noise=0.2, random_state=3)
    S, Y = s.states, y.reshape(len(y), -1)
    W = S[1:] - S[:-1] @ s.A.T - X[1:] @ s.B.T
    V = Y - S @ s.C.T - X @ s.D.T
    np.testing.assert_allclose(np.cov(W.T), s.Q, atol=0.004)
    np.testing.assert_allclose(np.atleast_2d(np.cov(V.T)), s.R, atol=0.01)
    # The first row is drawn from the stationary prior, whose covariance the states keep.
    np.testing.assert_allclose(np.cov(S.T), s.initial_state_covariance, rtol=0.15, atol=0.05)


def test_two_rotations_spectrum():
    _, y, s = make_lds(system="two_rotations", n_samples=10, random_state=0)
    expected = np.array([0.95 * np.exp(0.3j), 0.95 * np.exp(-0.3j),
                         0.8 * np.exp(1.1j), 0.8 * np.exp(-1.1j)])
    got = np.sort_complex(s.eigenvalues)
    np.testing.assert_allclose(got, np.sort_complex(expected), atol=1e-12)
    assert y.shape == (10, 2)
    np.testing.assert_array_equal(s.Q, 0.1 * np.eye(4))
    np.testing.assert_array_equal(s.R, 0.1 * np.eye(2))


def test_given_eigenvalues_are_the_spectrum():
    lam = [0.9, 0.5 + 0.5j, 0.5 - 0.5j]
    _, _, s = make_lds(n_states=3, eigenvalues=lam, random_state=0)
    np.testing.assert_allclose(np.sort_complex(s.eigenvalues), np.sort_complex(lam), atol=1e-12)


def test_sequences_restart_from_the_prior():
    # With no process noise, each row is A s_{t-1} + B x_t within a sequence; a restart
    # shows as a row that is not.
    X, _, s = make_lds(system="oscillator", n_inputs=1, n_samples=20, lengths=[12, 8],
                       process_noise=0.0, random_state=0)
    S = s.states
    np.testing.assert_allclose(S[1:12], S[:11] @ s.A.T + X[1:12] @ s.B.T, atol=1e-12)
    np.testing.assert_allclose(S[13:], S[12:-1] @ s.A.T + X[13:] @ s.B.T, atol=1e-12)
    assert not np.allclose(S[12], s.A @ S[11] + s.B @ X[12])


def test_params_are_ready_for_from_params():
    _, _, s = make_lds(system="two_rotations", n_samples=10, random_state=0)
    assert set(s.params) == {"A", "B", "C", "D", "Q", "R", "initial_state_mean",
                             "initial_state_covariance"}
    P0 = s.initial_state_covariance
    np.testing.assert_allclose(P0, s.A @ P0 @ s.A.T + s.Q, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(system="nope"), "unknown system 'nope'"),
        (dict(system="oscillator", n_states=3), "has n_states=2"),
        (dict(system="oscillator", eigenvalues=[0.5, 0.5]), "either system or eigenvalues"),
        (dict(n_states=2, eigenvalues=[1.2, 0.5]), "inside the unit circle"),
        (dict(n_states=2, eigenvalues=[0.5 + 0.1j, 0.5]), "no complex conjugate"),
        (dict(n_states=3, eigenvalues=[0.5]), "eigenvalues has 1 entries but n_states is 3"),
        (dict(n_samples=0), "n_samples must be a positive integer"),
        (dict(n_inputs=-1), "n_inputs must be a non-negative integer"),
        (dict(process_noise=-1.0), "process_noise must be a non-negative number"),
        (dict(measurement_noise=np.ones((2, 2))), r"shape \(1, 1\)"),
        (dict(n_samples=10, lengths=[5, 4]), "lengths sum to 9 but X has 10 rows"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_lds(**kwargs)


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(3, 8), min_size=1, max_size=3),
       n_targets=st.integers(1, 2), n_lags=st.integers(1, 2))
def test_lagged_targets(lengths, n_targets, n_lags):
    y = np.arange(sum(lengths) * n_targets, dtype=float).reshape(-1, n_targets)
    X, yt, new_lengths = lagged_targets(y, lengths, n_lags=n_lags)
    np.testing.assert_array_equal(new_lengths, np.asarray(lengths) - n_lags)
    start, new_start = 0, 0
    for n in lengths:
        for t in range(n_lags, n):
            row = new_start + t - n_lags
            np.testing.assert_array_equal(yt[row], y[start + t])
            for k in range(1, n_lags + 1):
                np.testing.assert_array_equal(
                    X[row, (k - 1) * n_targets:k * n_targets], y[start + t - k])
        start += n
        new_start += n - n_lags


def test_lagged_targets_rejects_nan_and_short_sequences():
    with pytest.raises(ValueError, match="y contains NaN"):
        lagged_targets(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="sequence 1 has n_samples = 1 rows but at least 2"):
        lagged_targets(np.arange(4.0), lengths=[3, 1])


def test_random_systems_follow_the_documented_distribution():
    from skkalman.datasets import RANDOM_SYSTEM_RANGES as ranges

    sizes, ratios, complex_modes, moduli = set(), [], 0, []
    for seed in range(60):
        X, y, s = make_lds(system="random", n_samples=30, random_state=seed)
        n, m, p = s.A.shape[0], s.C.shape[0], s.B.shape[1]
        assert ranges["n_states"][0] <= n <= ranges["n_states"][1]
        assert ranges["n_outputs"][0] <= m <= ranges["n_outputs"][1]
        assert ranges["n_inputs"][0] <= p <= ranges["n_inputs"][1]
        assert X.shape == (30, p) and y.reshape(30, -1).shape == (30, m)
        modulus = np.abs(s.eigenvalues)
        assert np.all(modulus <= 0.99 + 1e-9) and np.all(modulus >= 0.3 - 1e-9)
        moduli += modulus.tolist()
        complex_modes += int(np.sum(np.abs(s.eigenvalues.imag) > 1e-9))
        np.testing.assert_array_equal(s.R, 0.1 * np.eye(m))
        ratios.append(s.Q[0, 0] / s.R[0, 0])
        sizes.add((n, m, p))
    assert min(ratios) >= 1e-3 and max(ratios) <= 1e2
    assert min(ratios) < 1e-2 and max(ratios) > 10  # the whole range is visited
    assert complex_modes > 0 and max(moduli) > 0.95
    assert len(sizes) > 15


def test_random_system_keeps_given_sizes_and_is_deterministic():
    X, y, s = make_lds(system="random", n_states=3, n_outputs=2, n_inputs=1,
                       n_samples=50, random_state=7)
    assert s.A.shape == (3, 3) and y.shape == (50, 2) and X.shape == (50, 1)
    X2, y2, s2 = make_lds(system="random", n_states=3, n_outputs=2, n_inputs=1,
                          n_samples=50, random_state=7)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(s.A, s2.A)
    _, _, other = make_lds(system="random", n_states=3, n_samples=50, random_state=8)
    assert not np.allclose(other.A, s.A)


def _pendulum_step(state, dt, damping):
    theta, omega = state
    omega = omega - dt * (np.sin(theta) + damping * omega)
    return np.array([theta + dt * omega, omega])


def test_pendulum_follows_its_equations():
    X, y, s = make_pendulum(n_samples=30_000, lengths=[20_000, 10_000], dt=0.25,
                            damping=0.4, process_noise=0.01, measurement_noise=0.04,
                            random_state=1)
    assert X.shape == (30_000, 0) and y.shape == (30_000,)
    S = s.states
    # Within a sequence the state minus the noiseless step is the kick (dt e, e): its
    # covariance is Q; across the boundary the sequence restarts.
    noiseless = np.array([_pendulum_step(row, 0.25, 0.4) for row in S[:-1]])
    W = np.delete(S[1:] - noiseless, 19_999, axis=0)
    np.testing.assert_allclose(W[:, 0], 0.25 * W[:, 1], atol=1e-12)
    np.testing.assert_allclose(np.cov(W.T), s.Q, rtol=0.05)
    jump = S[20_000] - noiseless[19_999]
    assert abs(jump[0] - 0.25 * jump[1]) > 1e-3
    np.testing.assert_allclose(np.var(y - S[:, 0]), 0.04, rtol=0.05)
    # Swings reach where sin(theta) is far from theta: the data are not linear.
    assert np.abs(S[:, 0]).max() > 0.8


def test_pendulum_jacobian_is_the_steps_derivative_at_rest():
    _, _, s = make_pendulum(n_samples=5, dt=0.2, damping=0.5, random_state=0)
    eps = 1e-6
    numeric = np.column_stack([
        (_pendulum_step(eps * e, 0.2, 0.5) - _pendulum_step(-eps * e, 0.2, 0.5)) / (2 * eps)
        for e in np.eye(2)])
    np.testing.assert_allclose(s.jacobian, numeric, atol=1e-8)
    np.testing.assert_array_equal(_pendulum_step(s.fixed_point, 0.2, 0.5), s.fixed_point)
    np.testing.assert_allclose(np.sort_complex(s.eigenvalues),
                               np.sort_complex(np.linalg.eigvals(numeric)), atol=1e-8)
    np.testing.assert_allclose(np.abs(s.eigenvalues), np.sqrt(1 - 0.5 * 0.2))
    assert s.eigenvalues[0].imag > 0


def test_pendulum_is_deterministic():
    _, y1, s1 = make_pendulum(n_samples=200, random_state=5)
    _, y2, s2 = make_pendulum(n_samples=200, random_state=5)
    _, y3, _ = make_pendulum(n_samples=200, random_state=6)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(s1.states, s2.states)
    assert not np.allclose(y1, y3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_samples=0), "n_samples must be a positive integer"),
        (dict(dt=0.0), "dt must be a positive finite number"),
        (dict(dt=float("nan")), "dt must be a positive finite number"),
        (dict(damping=-0.1), "damping must be a non-negative finite number"),
        (dict(damping=5.0, dt=0.3), "damping \\* dt must be below 1"),
        (dict(process_noise=-1.0), "process_noise must be a non-negative finite number"),
        (dict(measurement_noise="a"), "measurement_noise must be a non-negative"),
        (dict(n_samples=10, lengths=[5, 4]), "lengths sum to 9 but X has 10 rows"),
    ],
)
def test_pendulum_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_pendulum(**kwargs)
