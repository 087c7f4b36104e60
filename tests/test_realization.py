"""Realization kernels: closed loop, Markov parameters, Hankel singular values, balanced
truncation and the real modal form, against simulation, brute force and invariances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg

from skkalman._kalman.realization import (
    LinearSystem,
    balanced_truncation,
    closed_loop,
    hankel_singular_values,
    markov_parameters,
    real_modal_form,
)


def _random_system(rng, n_states, n_inputs, n_targets, *, radius=0.9, direct=True):
    A = rng.standard_normal((n_states, n_states))
    A *= radius / np.abs(np.linalg.eigvals(A)).max()
    B = rng.standard_normal((n_states, n_inputs))
    C = rng.standard_normal((n_targets, n_states))
    D = 0.3 * rng.standard_normal((n_targets, n_inputs)) if direct else np.zeros(
        (n_targets, n_inputs))
    return LinearSystem(A, B, C, D)


def _similar(system, T):
    T_inv = np.linalg.inv(T)
    return LinearSystem(T @ system.A @ T_inv, T @ system.B, system.C @ T_inv, system.D)


def _well_conditioned(rng, n):
    return rng.standard_normal((n, n)) + 3 * np.eye(n)


def _simulate(system, X):
    """States and outputs of s_t = A s_{t-1} + B x_t, y_t = C s_t + D x_t from s_0 = 0."""
    s, S = np.zeros(system.n_states), []
    for x in X:
        s = system.A @ s + system.B @ x
        S.append(s)
    S = np.array(S)
    return S, S @ system.C.T + X @ system.D.T


@pytest.mark.parametrize("direct", [False, True])
def test_closed_loop_reproduces_the_fed_back_simulation(direct):
    # Open loop with inputs (exogenous e, fed-back outputs): x_t[f_k] = y_{t-1}[k] + nu_t[k].
    rng = np.random.default_rng(0)
    n_states, n_targets, T = 3, 2, 60
    feedback = np.array([3, 0])
    open_loop = _random_system(rng, n_states, 4, n_targets, radius=0.5, direct=direct)
    open_loop = LinearSystem(open_loop.A, 0.3 * open_loop.B, 0.5 * open_loop.C,
                             0.5 * open_loop.D)
    exogenous = np.array([1, 2])
    nu = rng.standard_normal((T, n_targets))
    e = rng.standard_normal((T, exogenous.size))
    X = np.zeros((T, 4))
    s, y_prev, S_open = np.zeros(n_states), np.zeros(n_targets), []
    for t in range(T):
        X[t, feedback] = y_prev + nu[t]
        X[t, exogenous] = e[t]
        s = open_loop.A @ s + open_loop.B @ X[t]
        y_prev = open_loop.C @ s + open_loop.D @ X[t]
        S_open.append(s)
    S_open = np.array(S_open)
    Y_open = S_open @ open_loop.C.T + X @ open_loop.D.T

    loop, state_map, input_map = closed_loop(open_loop, feedback)
    assert loop.n_states == n_states + (n_targets if direct else 0)
    Z, Y_loop = _simulate(loop, np.hstack([nu, e]))
    np.testing.assert_allclose(Y_loop, Y_open, atol=1e-10)
    np.testing.assert_allclose(Z, S_open @ state_map.T + X @ input_map.T, atol=1e-10)
    np.testing.assert_array_equal(loop.D, 0.0)


def test_closed_loop_without_direct_path_is_A_plus_BfC():
    rng = np.random.default_rng(1)
    system = _random_system(rng, 4, 3, 2, direct=False)
    loop, state_map, input_map = closed_loop(system, np.array([2, 0]))
    np.testing.assert_allclose(loop.A, system.A + system.B[:, [2, 0]] @ system.C)
    np.testing.assert_allclose(loop.B, system.B[:, [2, 0, 1]])
    np.testing.assert_array_equal(state_map, np.eye(4))
    np.testing.assert_array_equal(input_map, 0.0)


def test_markov_parameters_are_the_impulse_response():
    rng = np.random.default_rng(2)
    system = _random_system(rng, 3, 2, 2)
    markov = markov_parameters(system, 8)
    for j in range(2):
        impulse = np.zeros((8, 2))
        impulse[0, j] = 1.0
        _, Y = _simulate(system, impulse)
        np.testing.assert_allclose(markov[:, :, j], Y, atol=1e-12)


def test_hankel_singular_values_against_the_hankel_matrix():
    # Singular values of the (long, finite) Hankel matrix [C A^(i+j) B]_(i,j).
    rng = np.random.default_rng(3)
    system = _random_system(rng, 4, 2, 3, radius=0.7)
    markov = markov_parameters(LinearSystem(system.A, system.B, system.C, 0 * system.D), 120)
    n = 60
    H = np.block([[markov[i + j] for j in range(n)] for i in range(n)])
    expected = np.linalg.svd(H, compute_uv=False)[:4]
    np.testing.assert_allclose(hankel_singular_values(system), expected, rtol=1e-8)


def test_hankel_singular_values_unstable_modes_are_inf_first():
    A = linalg.block_diag([[1.05]], [[0.5, 0.3], [-0.3, 0.5]], [[-1.2]])
    system = LinearSystem(A, np.ones((4, 1)), np.ones((1, 4)), np.zeros((1, 1)))
    hsv = hankel_singular_values(system)
    assert np.all(np.isinf(hsv[:2]))
    stable = LinearSystem(A[1:3, 1:3], np.ones((2, 1)), np.ones((1, 2)), np.zeros((1, 1)))
    np.testing.assert_allclose(hsv[2:], hankel_singular_values(stable), rtol=1e-10)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_hankel_singular_values_invariant_to_similarity(n, seed):
    rng = np.random.default_rng(seed)
    system = _random_system(rng, n, 2, 2)
    T = _well_conditioned(rng, n)
    np.testing.assert_allclose(hankel_singular_values(_similar(system, T)),
                               hankel_singular_values(system), rtol=1e-7, atol=1e-10)


def test_balanced_truncation_error_bound():
    # The reduced system is stable and its frequency response error is within twice the sum
    # of the dropped Hankel singular values (the discrete-time bound).
    rng = np.random.default_rng(4)
    system = _random_system(rng, 6, 2, 2)
    hsv = hankel_singular_values(system)
    for order in range(1, 6):
        reduced, projection = balanced_truncation(system, order)
        assert projection.shape == (order, 6)
        assert np.abs(np.linalg.eigvals(reduced.A)).max() < 1
        worst = 0.0
        for omega in np.linspace(0, np.pi, 200):
            z = np.exp(1j * omega)

            def response(s, z=z):
                return s.C @ np.linalg.solve(np.eye(s.n_states) - s.A / z, s.B) + s.D

            worst = max(worst, np.linalg.norm(response(system) - response(reduced), 2))
        assert worst <= 2 * hsv[order:].sum() * (1 + 1e-8)


def test_balanced_truncation_removes_a_hidden_mode_exactly():
    # A mode the inputs never reach (uncontrollable) has a zero Hankel singular value:
    # truncating it changes nothing of the input-output behaviour.
    rng = np.random.default_rng(5)
    core = _random_system(rng, 3, 2, 2)
    A = linalg.block_diag(core.A, [[0.7]])
    A[:3, 3] = rng.standard_normal(3)
    system = LinearSystem(A, np.vstack([core.B, np.zeros((1, 2))]),
                          rng.standard_normal((2, 4)), core.D)
    hsv = hankel_singular_values(system)
    assert hsv[-1] < 1e-10 * hsv[0]
    reduced, _ = balanced_truncation(system, 3)
    np.testing.assert_allclose(markov_parameters(reduced, 50), markov_parameters(system, 50),
                               atol=1e-9)
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(reduced.A)),
                               np.sort_complex(np.linalg.eigvals(core.A)), atol=1e-8)


def test_balanced_truncation_refuses_orders_beyond_the_nonzero_values():
    # Inputs reach one mode only: one non-zero Hankel singular value, no order-2 realization.
    B = np.zeros((3, 1))
    B[0, 0] = 1.0
    system = LinearSystem(np.diag([0.9, 0.5, 0.3]), B, np.ones((1, 3)), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="non-zero Hankel singular values"):
        balanced_truncation(system, 2)


def test_balanced_truncation_keeps_unstable_modes():
    A = linalg.block_diag([[1.1]], [[0.5]], [[0.1]])
    system = LinearSystem(A, np.ones((3, 1)), np.ones((1, 3)), np.zeros((1, 1)))
    reduced, _ = balanced_truncation(system, 2)
    eigenvalues = np.sort(np.linalg.eigvals(reduced.A).real)
    assert eigenvalues[1] == pytest.approx(1.1, abs=1e-10)
    assert abs(eigenvalues[0]) < 1
    two_unstable = LinearSystem(np.diag([1.1, 1.2, 0.5]), system.B, system.C, system.D)
    with pytest.raises(ValueError, match="unstable modes"):
        balanced_truncation(two_unstable, 1)
    unchanged, projection = balanced_truncation(system, 3)
    assert unchanged is system
    np.testing.assert_array_equal(projection, np.eye(3))


def test_real_modal_form_order_and_blocks():
    # Moduli: 0.9 (a pair, a real and its negative), then 0.5; ties ordered by imaginary
    # part, then real part, descending; b > 0 in every 2x2 block.
    pair = 0.9 * np.exp(0.4j)
    A = linalg.block_diag([[-0.9]], [[pair.real, pair.imag], [-pair.imag, pair.real]],
                          [[0.5]], [[0.9]])
    rng = np.random.default_rng(6)
    T = _well_conditioned(rng, 5)
    modal = real_modal_form(T @ A @ np.linalg.inv(T), rng.standard_normal((2, 5)))
    np.testing.assert_allclose(modal.eigenvalues, [pair, pair.conjugate(), 0.9, -0.9, 0.5],
                               atol=1e-12)
    expected = linalg.block_diag([[pair.real, -pair.imag], [pair.imag, pair.real]],
                                 [[0.9]], [[-0.9]], [[0.5]])
    np.testing.assert_allclose(modal.A_canonical, expected, atol=1e-12)


def _random_spectrum(rng, n):
    """Distinct, well separated eigenvalues (conjugate pairs and reals) of a real matrix."""
    n_pairs = rng.integers(0, n // 2 + 1)
    moduli = rng.permutation(np.linspace(0.2, 0.95, n))
    values, i = [], 0
    for _ in range(n_pairs):
        values.append(moduli[i] * np.exp(1j * rng.uniform(0.3, 2.8)))
        i += 2
    reals = [moduli[j] * rng.choice([-1, 1]) for j in range(i, n)]
    blocks = [np.array([[v.real, -v.imag], [v.imag, v.real]]) for v in values]
    blocks += [np.array([[r]]) for r in reals]
    return linalg.block_diag(*blocks)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_real_modal_form_invariant_to_similarity(n, seed):
    rng = np.random.default_rng(seed)
    U = _well_conditioned(rng, n)
    A = U @ _random_spectrum(rng, n) @ np.linalg.inv(U)
    C = rng.standard_normal((2, n))
    modal = real_modal_form(A, C)
    np.testing.assert_allclose(A @ modal.basis, modal.basis @ modal.A_canonical, atol=1e-9)
    T = _well_conditioned(rng, n)
    other = real_modal_form(T @ A @ np.linalg.inv(T), C @ np.linalg.inv(T))
    np.testing.assert_allclose(other.eigenvalues, modal.eigenvalues, atol=1e-8)
    np.testing.assert_allclose(other.A_canonical, modal.A_canonical, atol=1e-8)
    np.testing.assert_allclose(other.basis, T @ modal.basis, atol=1e-8)


def test_real_modal_form_normalizes_against_the_output_map():
    rng = np.random.default_rng(7)
    A = _random_spectrum(rng, 4)
    C = rng.standard_normal((3, 4))
    modal = real_modal_form(A, C)
    G = C @ modal.basis
    col = 0
    for lam in modal.eigenvalues[modal.eigenvalues.imag >= 0]:
        g = G[:, col] - 1j * G[:, col + 1] if lam.imag > 0 else G[:, col].astype(complex)
        assert np.linalg.norm(g) == pytest.approx(1.0)
        k = np.argmax(np.abs(g))
        assert abs(g[k].imag) < 1e-12 and g[k].real > 0
        col += 2 if lam.imag > 0 else 1


def test_real_modal_form_unobserved_mode_uses_the_input_map():
    rng = np.random.default_rng(8)
    A = np.diag([0.9, 0.5, -0.3])
    C = np.array([[1.0, 0.0, 1.0]])  # the mode 0.5 is not seen
    B = rng.standard_normal((3, 2))
    T = _well_conditioned(rng, 3)
    modal = real_modal_form(A, C, B)
    other = real_modal_form(T @ A @ np.linalg.inv(T), C @ np.linalg.inv(T), T @ B)
    np.testing.assert_allclose(other.basis, T @ modal.basis, atol=1e-10)
