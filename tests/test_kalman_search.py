"""EM steps, the gradient the search follows, its coordinates, and the convergence monitor."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skkalman._kalman import StateSpaceParams
from skkalman._kalman.em import PARAM_NAMES, e_step, expected_gradient, log_likelihood, m_step
from skkalman._kalman.monitor import ConvergenceMonitor
from skkalman._kalman.search import (
    _PROBES,
    Parametrization,
    SearchResult,
    StationaryPriorError,
    _Objective,
    _probe_unresolved,
    quasi_newton,
    stationary_prior,
    transform,
)
from skkalman._kalman.start import split_start
from skkalman.datasets import _modal_matrix, make_lds
from skkalman.kalman import _towards_singular_process_noise


def _problem(seed, n_states=2, n_inputs=1, n_targets=2, T=80, missing=0.0, lengths=None):
    X, y, system = make_lds(n_states=n_states, n_inputs=n_inputs, n_outputs=n_targets,
                            n_samples=T, lengths=lengths, direct_feedthrough=True,
                            random_state=seed)
    y = y.reshape(T, -1).copy()
    rng = np.random.default_rng(seed)
    y[rng.random(y.shape) < missing] = np.nan
    # A constant input column, as the estimator appends for the intercept.
    X = np.hstack([X, np.ones((T, 1))])
    params = StateSpaceParams(**{**system.params, "B": np.hstack(
        [system.B, np.zeros((n_states, 1))]), "D": np.hstack([system.D, 0.3 * np.ones(
            (n_targets, 1))])})
    lengths = [T] if lengths is None else lengths
    ends = np.cumsum(lengths)
    sequences = [(X[e - k:e], y[e - k:e]) for e, k in zip(ends, lengths, strict=True)]
    return params, sequences


def _perturbed(params, seed, scale=0.1):
    rng = np.random.default_rng(seed)
    n = params.n_states

    def jitter(M):
        return M + scale * rng.standard_normal(M.shape)

    return params.replace(
        A=0.8 * jitter(params.A) / max(1.0, np.max(np.abs(np.linalg.eigvals(jitter(
            params.A))))),
        B=jitter(params.B), C=jitter(params.C), D=jitter(params.D),
        Q=params.Q + 0.05 * np.eye(n), R=params.R * 1.5,
        initial_state_mean=jitter(params.initial_state_mean),
        initial_state_covariance=params.initial_state_covariance + 0.2 * np.eye(n),
    )


# --- EM, unguarded ----------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), missing=st.sampled_from([0.0, 0.2]),
       held=st.sets(st.sampled_from(["A", "C", "Q", "R", "initial_state_mean",
                                     "initial_state_covariance"]), max_size=3),
       n_sequences=st.integers(1, 3))
def test_em_steps_never_decrease_the_likelihood(seed, missing, held, n_sequences):
    # The bare kernels, no guard: every M-step after an E-step must climb (up to round-off).
    T = 90
    lengths = [T // n_sequences] * (n_sequences - 1) + [T - (T // n_sequences) * (
        n_sequences - 1)]
    params, sequences = _problem(seed, missing=missing, T=T, lengths=lengths)
    params = _perturbed(params, seed)
    rng = np.random.default_rng(seed)
    b_columns = np.array([True, False])
    d_columns = np.array([bool(rng.random() < 0.7), True])
    held_column = params.B[:, 1].copy()
    stats, ll = e_step(params, sequences)
    for _ in range(6):
        params = m_step(stats, params, held, b_columns, d_columns)
        stats, new_ll = e_step(params, sequences)
        assert new_ll >= ll - 1e-9 * abs(ll), (new_ll, ll)
        ll = new_ll
    np.testing.assert_array_equal(params.B[:, 1], held_column)  # held columns stay


# --- the gradient ---------------------------------------------------------------------------


@pytest.mark.parametrize("stationary", [False, True])
@pytest.mark.parametrize("missing", [0.0, 0.25])
def test_parametrization_gradient_matches_finite_differences(stationary, missing):
    params, sequences = _problem(3, missing=missing)
    params = _perturbed(params, 3)
    x_all = np.vstack([X for X, _ in sequences])
    mean, cov = x_all.mean(axis=0), np.cov(x_all, rowvar=False, bias=True)
    free = {"A", "C", "Q", "R"} | (set() if stationary else
                                   {"initial_state_mean", "initial_state_covariance"})
    par = Parametrization(params, free, np.array([True, False]), np.array([True, True]),
                          stationary_prior=stationary, input_mean=mean,
                          input_covariance=cov)
    theta = par.pack(par.unpack(par.pack(params)))

    def ll(t):
        return log_likelihood(par.unpack(t), sequences)

    p = par.unpack(theta)
    stats, _ = e_step(p, sequences)
    analytic = par.gradient(expected_gradient(stats, p), p)
    h = 1e-6
    numeric = np.array([(ll(theta + h * e) - ll(theta - h * e)) / (2 * h)
                        for e in np.eye(theta.size)])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stationary", [False, True])
def test_probes_use_the_filter_alone_and_return_the_best_climb(stationary):
    # The probes along unresolved directions score candidates by the filter's
    # log-likelihood alone: the same number the full objective gives, inf where the
    # parameters leave the domain, and the best climb comes back with its gradient.
    params, sequences = _problem(5, missing=0.2)
    params = _perturbed(params, 5)
    x_all = np.vstack([X for X, _ in sequences])
    par = Parametrization(params, {"A", "C", "Q", "R"}, np.array([True, False]),
                          np.array([True, True]), stationary_prior=stationary,
                          input_mean=x_all.mean(axis=0),
                          input_covariance=np.cov(x_all, rowvar=False, bias=True))
    theta0 = par.pack(params)
    basis = np.eye(theta0.size)
    objective = _Objective(par, sequences, 80, theta0, basis)
    rng = np.random.default_rng(0)
    for eta in 0.05 * rng.standard_normal((4, theta0.size)):
        assert objective.value(eta) == objective(eta)[0]
    A_entry = 0  # theta's first entry is A[0, 0]: far out, A is unstable
    far = np.zeros(theta0.size)
    far[A_entry] = 50.0
    if stationary:
        assert objective.value(far) == np.inf == objective(far)[0]
    # A made-up Hessian with one negative direction: the probe returns the best of the
    # climbing points along it (computed here by brute force), with its gradient.
    x = np.zeros(theta0.size)
    f, _ = objective(x)
    direction = np.zeros(theta0.size)
    direction[A_entry] = 1.0
    hessian = np.diag(np.where(direction > 0, -1.0, 1.0))
    found = _probe_unresolved(objective, x, f, hessian, target=0.0)
    candidates = [x + sign * length * direction for length in _PROBES
                  for sign in (1.0, -1.0)]
    values = [objective(c)[0] for c in candidates]
    best = int(np.argmin(values))
    if values[best] < f:
        np.testing.assert_array_equal(found[0], candidates[best])
        assert found[1] == values[best]
        np.testing.assert_array_equal(found[2], objective(candidates[best])[1])
    else:
        assert found is None


def test_a_scored_trial_reuses_its_filter_and_gives_the_same_iterate():
    # The line search scores a trial by the filter alone and adds the smoother and the
    # gradient only where it is accepted, reusing that filter: the iterate must be
    # exactly what a fresh evaluation gives.
    params, sequences = _problem(6, missing=0.2, lengths=[50, 30])
    params = _perturbed(params, 6)
    par = Parametrization(params, {"A", "C", "Q", "R"}, np.array([True, False]),
                          np.array([True, True]))
    theta0 = par.pack(params)
    eta = 0.03 * np.random.default_rng(1).standard_normal(theta0.size)
    reused = _Objective(par, sequences, 80, theta0, np.eye(theta0.size))
    fresh = _Objective(par, sequences, 80, theta0, np.eye(theta0.size))
    assert reused.value(eta) == fresh(eta)[0]
    f, g = reused(eta)
    f_fresh, g_fresh = fresh(eta)
    assert f == f_fresh
    np.testing.assert_array_equal(g, g_fresh)
    stats, ll = e_step(par.unpack(theta0 + eta), sequences)
    np.testing.assert_array_equal(reused.stats.S_cur_prev, stats.S_cur_prev)
    assert -ll / 80 == f
    # A filter kept for one trial is never used for another point.
    other = 2 * eta
    reused.value(eta)
    f_other, g_other = reused(other)
    assert f_other == fresh(other)[0] != f
    np.testing.assert_array_equal(g_other, fresh(other)[1])


def test_plain_cholesky_coordinates_reach_a_singular_covariance():
    # Q's Cholesky diagonal as plain coordinates (the search's second look at a nearly
    # singular Q): a zero diagonal entry is a singular Q, a negative one a valid Q, and
    # the gradient is exact there too.
    params, sequences = _problem(5)
    params = _perturbed(params, 5)
    par = Parametrization(params, {"A", "C", "Q", "R"}, np.array([True, False]),
                          np.array([True, True]), plain={"Q"})
    theta = par.pack(params)
    np.testing.assert_allclose(par.unpack(theta).Q, params.Q, atol=1e-13)
    q = par._blocks[[name for name, _ in par._blocks].index("Q")][1]
    diagonal = q.start + np.array([0, 2])  # the tril order of a 2 x 2 factor: 00, 10, 11
    singular = theta.copy()
    singular[diagonal[1]] = 0.0
    assert np.linalg.matrix_rank(par.unpack(singular).Q) == 1
    negative = theta.copy()
    negative[diagonal[0]] *= -0.5

    def ll(t):
        return log_likelihood(par.unpack(t), sequences)

    p = par.unpack(negative)
    stats, _ = e_step(p, sequences)
    analytic = par.gradient(expected_gradient(stats, p), p, negative)
    h = 1e-6
    numeric = np.array([(ll(negative + h * e) - ll(negative - h * e)) / (2 * h)
                        for e in np.eye(negative.size)])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_second_look_climbs_from_a_point_short_of_a_singular_process_noise():
    # Data whose process noise is singular; the search's maximum has a Q with an
    # eigenvalue near 0. A point certified with that eigenvalue raised (short of the
    # maximum by half a nat or more: where the log-Cholesky search stops, the quadratic
    # model sees a fraction of the gain) gets the second look in plain Cholesky coordinates,
    # which climbs back to the maximum and certifies it.
    params, sequences = _problem(2, n_states=2, n_targets=1, T=3000)
    params = params.replace(Q=np.diag([0.5, 0.0]))
    X, _ = sequences[0]
    rng = np.random.default_rng(2)
    s, y = np.zeros(2), np.empty((len(X), 1))
    for t in range(len(X)):
        s = params.A @ s + params.B @ X[t] + np.sqrt(params.Q) @ rng.standard_normal(2)
        y[t] = params.C @ s + params.D @ X[t] + np.sqrt(params.R[0, 0]) * rng.standard_normal()
    sequences = [(X, y)]
    start = params.replace(Q=np.diag([0.5, 0.05]))
    par = Parametrization(start, {"A", "C", "Q", "R"}, np.array([True, False]),
                          np.array([True, True]))
    monitor = ConvergenceMonitor(2000)
    monitor.start(log_likelihood(start, sequences))
    best = quasi_newton(start, monitor.best, sequences, par, monitor, tol=1e-3,
                        n_observed=len(y))
    w, V = np.linalg.eigh(best.params.Q)
    assert best.certified and w[0] < 1e-6 * w[-1]
    # The small eigenvalue raised to 5e-3 of the largest: still nearly singular (below
    # _NEARLY_SINGULAR), and a clear loss (0.5-1.9 nats, by the basis the search ended
    # in, which round-off on another CPU can change).
    short = best.params.replace(Q=best.params.Q + (5e-3 * w[-1] - w[0]) * np.outer(
        V[:, 0], V[:, 0]))
    short_ll = log_likelihood(short, sequences)
    assert short_ll < best.log_likelihood - 0.25
    monitor = ConvergenceMonitor(2000)
    monitor.start(short_ll)
    result = _towards_singular_process_noise(
        SearchResult(short, short_ll, True, "certified short of the maximum", 0.0, None),
        par.at(short), sequences, monitor, 1e-3, len(y))
    assert result.certified
    assert result.log_likelihood > best.log_likelihood - 1e-3


def _with_modes(eigenvalues, seed=0):
    """Params whose A has the given eigenvalues (complex ones in pairs), in a random basis."""
    rng = np.random.default_rng(seed)
    modal = _modal_matrix(eigenvalues)
    n = len(modal)
    T = rng.standard_normal((n, n)) + 2 * np.eye(n)
    L = rng.standard_normal((n, n))
    return StateSpaceParams(
        A=T @ modal @ np.linalg.inv(T), B=rng.standard_normal((n, 1)),
        C=rng.standard_normal((2, n)), D=np.zeros((2, 1)), Q=L @ L.T + np.eye(n),
        R=np.eye(2), initial_state_mean=rng.standard_normal(n),
        initial_state_covariance=np.eye(n))


def test_split_start_puts_a_copy_of_the_slowest_real_mode_in_place_of_the_fastest():
    params = _with_modes([0.95, -0.3, 0.5 + 0.4j, 0.5 - 0.4j])
    split = split_start(params)
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(split.A)),
                               np.sort_complex([0.94, 0.95, 0.5 - 0.4j, 0.5 + 0.4j]),
                               atol=1e-10)
    for S in (split.Q, split.initial_state_covariance):
        np.testing.assert_allclose(S, S.T, atol=1e-12)
        assert np.linalg.eigvalsh(S).min() > 0
    # The two copies load the outputs alike (half the slow mode's loading each).
    w, V = np.linalg.eig(split.A)
    assert np.linalg.matrix_rank(split.C @ V[:, np.isclose(w.real, 0.95)
                                               | np.isclose(w.real, 0.94)]) == 1
    # Nothing to split: one real mode; no fast real mode; no slow real mode.
    assert split_start(_with_modes([0.95, 0.5 + 0.4j, 0.5 - 0.4j])) is None
    assert split_start(_with_modes([0.95, 0.7, 0.5 + 0.4j, 0.5 - 0.4j])) is None
    assert split_start(_with_modes([0.5, 0.1, 0.9 + 0.4j, 0.9 - 0.4j])) is None


def test_pack_unpack_round_trip_and_held_values():
    params, _ = _problem(1)
    par = Parametrization(params, {"A", "Q"}, np.array([False, False]),
                          np.array([True, True]))
    back = par.unpack(par.pack(params))
    for name in PARAM_NAMES:
        np.testing.assert_allclose(getattr(back, name), getattr(params, name), atol=1e-13)
    assert back.C is params.C and back.B is params.B  # held: the same arrays


def test_stationary_prior_is_the_stationary_distribution():
    params, _ = _problem(2)
    mean = np.array([0.5, 1.0])
    cov = np.array([[2.0, 0.0], [0.0, 0.0]])
    m0, P0 = stationary_prior(params.A, params.B, params.Q, mean, cov)
    np.testing.assert_allclose(m0, params.A @ m0 + params.B @ mean)
    np.testing.assert_allclose(P0, params.A @ P0 @ params.A.T + params.Q
                               + params.B @ cov @ params.B.T)
    with pytest.raises(StationaryPriorError):
        stationary_prior(np.eye(2), params.B, params.Q, mean, cov)


def test_similarity_directions_leave_the_likelihood_unchanged():
    params, sequences = _problem(4)
    par = Parametrization(params, {"A", "C", "Q", "R", "initial_state_mean",
                                   "initial_state_covariance"},
                          np.array([True, False]), np.array([True, True]))
    tangent = par.similarity_directions(params)
    assert tangent.shape == (par.size, params.n_states**2)
    assert np.linalg.matrix_rank(tangent) == params.n_states**2
    stats, _ = e_step(params, sequences)
    gradient = par.gradient(expected_gradient(stats, params), params)
    # Along the ridge the likelihood is constant: the gradient is orthogonal to it.
    scale = np.linalg.norm(gradient) * np.linalg.norm(tangent, axis=0)
    np.testing.assert_array_less(np.abs(gradient @ tangent), 1e-8 * scale + 1e-10)
    T = np.array([[2.0, 0.3], [-0.1, 0.7]])
    assert log_likelihood(transform(params, T), sequences) == pytest.approx(
        log_likelihood(params, sequences), rel=1e-10)
    # A held A pins the basis: no ridge to leave out.
    pinned = Parametrization(params, {"C", "Q", "R"}, np.array([True, False]),
                             np.array([True, True]))
    assert pinned.similarity_directions(params).shape[1] == 0


# --- the monitor ------------------------------------------------------------------------------


def test_monitor_counts_every_iteration_and_records_only_climbs():
    monitor = ConvergenceMonitor(n_iter=5, offset=1.0)
    monitor.start(-3.0)
    assert monitor.report(-2.0, "EM")
    assert not monitor.report(-2.5, "EM")  # a decrease is counted, never recorded
    assert not monitor.report(np.nan, "search")
    assert monitor.history == [-2.0, -1.0]
    assert monitor.n_iter_run == 3 and monitor.budget == 2
    assert monitor.best == -2.0
    assert not monitor.converged and monitor.reason is None
    monitor.certify("gradient below tol")
    assert monitor.converged


def test_monitor_trial_counts_its_iterations_and_records_them_only_if_adopted():
    monitor = ConvergenceMonitor(n_iter=10)
    monitor.start(-3.0)
    monitor.report(-2.0, "EM")
    for adopt in (False, True):
        trial = monitor.trial()
        assert trial.budget == monitor.budget and trial.history == [-2.0]
        trial.report(-1.5, "search")
        trial.report(-1.8, "search")
        monitor.absorb(trial, adopt)
    # Both trials' iterations count; only the adopted one's iterates are recorded.
    assert monitor.n_iter_run == 5
    assert monitor.history == [-3.0, -2.0, -1.5]


def test_monitor_verbose_prints_each_recorded_iterate(capsys):
    monitor = ConvergenceMonitor(n_iter=3, verbose=1, name="M")
    monitor.start(-3.0)
    monitor.report(-2.0, "EM")
    monitor.report(-2.5, "EM")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[M] start")
