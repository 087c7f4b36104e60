"""DynamicsRecovery: the protocol, the closed loop, reduction, canonical coordinates, the
scorer, bad input, and recovery of known dynamics from both models."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV

from skkalman import KalmanFilterRegressor
from skkalman._sequences import validate_sequences
from skkalman._sklearn_compat import check_is_fitted
from skkalman.datasets import lagged_targets, make_lds
from skkalman.dynamics import DynamicsRecovery
from skkalman.metrics import eigenvalue_error, impulse_response_error, make_dynamics_scorer


class StateSpaceDouble(RegressorMixin, BaseEstimator):
    """The smallest model implementing the state-space protocol: fixed matrices.

    ``fit`` only validates the data and stores the constructor's matrices; latent states
    follow ``s_t = A s_{t-1} + B x_t`` from ``s_0 = 0`` in every sequence.
    """

    def __init__(self, A=None, B=None, C=None, D=None):
        self.A = A
        self.B = B
        self.C = C
        self.D = D

    def fit(self, X, y, lengths=None):
        data = validate_sequences(self, X, y, lengths, reset=True, y_required=True)
        n_features, n_targets = data.X.shape[1], data.y.shape[1]
        rng = np.random.default_rng(0)
        self.A_ = np.asarray(self.A if self.A is not None else
                             0.9 * np.array([[np.cos(0.5), -np.sin(0.5)],
                                             [np.sin(0.5), np.cos(0.5)]]), dtype=float)
        n = self.A_.shape[0]
        self.B_ = np.asarray(self.B if self.B is not None else
                             0.1 * rng.standard_normal((n, n_features)), dtype=float)
        self.C_ = np.asarray(self.C if self.C is not None else
                             rng.standard_normal((n_targets, n)), dtype=float)
        self.D_ = np.asarray(self.D if self.D is not None else
                             np.zeros((n_targets, n_features)), dtype=float)
        return self

    def _state_space(self, X=None, lengths=None, *, linearization="trajectory"):
        check_is_fitted(self)
        return self.A_.copy(), self.B_.copy(), self.C_.copy(), self.D_.copy()

    def _latent_states(self, X, lengths=None):
        check_is_fitted(self)
        data = validate_sequences(self, X, lengths=lengths, reset=False)
        S = np.empty((data.X.shape[0], self.A_.shape[0]))
        for part in data.slices:
            s = np.zeros(self.A_.shape[0])
            for t in range(part.start, part.stop):
                s = self.A_ @ s + self.B_ @ data.X[t]
                S[t] = s
        return S

    def predict(self, X, lengths=None):
        data = validate_sequences(self, X, lengths=lengths, reset=False)
        return self._latent_states(X, lengths) @ self.C_.T + data.X @ self.D_.T


def _system(seed, n_states=4, n_features=3, n_targets=2, direct=False):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_states, n_states))
    A *= 0.6 / np.abs(np.linalg.eigvals(A)).max()
    B = 0.3 * rng.standard_normal((n_states, n_features))
    C = rng.standard_normal((n_targets, n_states))
    D = (0.3 * rng.standard_normal((n_targets, n_features)) if direct
         else np.zeros((n_targets, n_features)))
    return A, B, C, D


def _similar(A, B, C, D, T):
    T_inv = np.linalg.inv(T)
    return T @ A @ T_inv, T @ B, C @ T_inv, D


def _data(seed=0, n_samples=40, n_features=3, n_targets=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_samples, n_features)), rng.standard_normal((n_samples,
                                                                              n_targets))


# ------------------------------------------------------------------ with the test double


def test_fit_reads_the_model_through_the_protocol():
    A, B, C, D = _system(0)
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble(A, B, C, D)).fit(X, y)
    np.testing.assert_array_equal(recovery.A_, A)
    assert isinstance(recovery.estimator_, StateSpaceDouble)
    assert recovery.estimator_ is not recovery.estimator
    assert not hasattr(recovery.estimator, "A_")  # the clone was fitted, not the original
    assert recovery.n_features_in_ == 3
    expected = np.linalg.eigvals(A)
    assert eigenvalue_error(recovery.eigenvalues_, expected) < 1e-12
    moduli = np.abs(recovery.eigenvalues_)
    assert np.all(np.diff(moduli) <= 1e-12)
    np.testing.assert_allclose(recovery.A_ @ recovery.canonical_basis_,
                               recovery.canonical_basis_ @ recovery.A_canonical_, atol=1e-12)
    assert recovery.hankel_singular_values_.shape == (4,)


def test_feedback_closes_the_loop():
    A, B, C, D = _system(1)
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble(A, B, C, D), feedback_columns=[2, 0])
    recovery.fit(X, y)
    np.testing.assert_allclose(recovery.A_, A + B[:, [2, 0]] @ C)
    np.testing.assert_allclose(recovery.B_, B[:, [2, 0, 1]])


def test_feedback_columns_accepts_a_range():
    A, B, C, D = _system(1)
    X, y = _data()
    as_range = DynamicsRecovery(StateSpaceDouble(A, B, C, D), feedback_columns=range(2))
    as_list = DynamicsRecovery(StateSpaceDouble(A, B, C, D), feedback_columns=[0, 1])
    np.testing.assert_array_equal(as_range.fit(X, y).A_, as_list.fit(X, y).A_)


def test_feedback_with_direct_path_augments_the_state():
    A, B, C, D = _system(2, direct=True)
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble(A, B, C, D), feedback_columns=[0, 1])
    recovery.fit(X, y)
    assert recovery.A_.shape == (6, 6)
    expected = np.block([[A + B[:, :2] @ C, B[:, :2]], [D[:, :2] @ C, D[:, :2]]])
    np.testing.assert_allclose(recovery.A_, expected)
    assert recovery.transform(X).shape == (40, 6)


def test_prefit_uses_the_fitted_model_without_refitting():
    A, B, C, D = _system(3)
    X, y = _data()
    model = StateSpaceDouble(A, B, C, D).fit(X, y)
    model.A_ = 0.5 * model.A_  # a refit would undo this
    recovery = DynamicsRecovery(model, prefit=True).fit(X, y)
    np.testing.assert_allclose(recovery.A_, 0.5 * A)
    assert recovery.estimator_ is not model


def test_transform_is_the_canonical_state_trajectory():
    # Without feedback, canonical coordinates follow z_t = A_can z_{t-1} + B_can x_t.
    A, B, C, D = _system(4)
    X, y = _data(n_samples=30)
    recovery = DynamicsRecovery(StateSpaceDouble(A, B, C, D)).fit(X, y)
    Z = recovery.transform(X)
    B_canonical = np.linalg.solve(recovery.canonical_basis_, B)
    np.testing.assert_allclose(Z[1:], Z[:-1] @ recovery.A_canonical_.T + X[1:] @ B_canonical.T,
                               atol=1e-12)
    # and the model's outputs are read from them through C in canonical coordinates.
    np.testing.assert_allclose(Z @ (C @ recovery.canonical_basis_).T,
                               recovery.estimator_.predict(X), atol=1e-12)
    # lengths restart the state in each sequence.
    Z2 = recovery.transform(X, lengths=[12, 18])
    np.testing.assert_allclose(Z2[:12], Z[:12], atol=1e-12)
    np.testing.assert_allclose(Z2[12:], recovery.transform(X[12:]), atol=1e-12)


@pytest.mark.parametrize(
    "params",
    [dict(), dict(feedback_columns=[1, 2]), dict(feedback_columns=[2, 0], order=3),
     dict(order=2)],
)
@pytest.mark.parametrize("direct", [False, True])
def test_similar_realizations_give_the_same_results(params, direct):
    A, B, C, D = _system(5, direct=direct)
    X, y = _data(n_samples=50)
    T = np.random.default_rng(6).standard_normal((4, 4)) + 3 * np.eye(4)
    first = DynamicsRecovery(StateSpaceDouble(A, B, C, D), **params).fit(X, y)
    second = DynamicsRecovery(StateSpaceDouble(*_similar(A, B, C, D, T)), **params).fit(X, y)
    np.testing.assert_allclose(second.eigenvalues_, first.eigenvalues_, atol=1e-8)
    np.testing.assert_allclose(second.A_canonical_, first.A_canonical_, atol=1e-8)
    np.testing.assert_allclose(second.hankel_singular_values_, first.hankel_singular_values_,
                               rtol=1e-8)
    np.testing.assert_allclose(second.transform(X), first.transform(X), atol=1e-8)


def test_order_reduces_to_a_minimal_realization():
    # A fifth mode the inputs never excite is what balanced truncation removes.
    A, B, C, D = _system(7)
    A5 = linalg.block_diag(A, [[0.8]])
    B5 = np.vstack([B, np.zeros((1, 3))])
    C5 = np.hstack([C, np.ones((2, 1))])
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble(A5, B5, C5, D)).fit(X, y)
    assert recovery.hankel_singular_values_[-1] < 1e-10
    reduced = DynamicsRecovery(StateSpaceDouble(A5, B5, C5, D), order=4).fit(X, y)
    assert eigenvalue_error(reduced.eigenvalues_, A) < 1e-8
    assert reduced.transform(X).shape == (40, 4)
    assert impulse_response_error(reduced, (A, B, C, D)) < 1e-8
    np.testing.assert_allclose(reduced.hankel_singular_values_,
                               recovery.hankel_singular_values_)


def test_feature_names_out():
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble()).fit(X, y)
    np.testing.assert_array_equal(recovery.get_feature_names_out(),
                                  ["dynamicsrecovery0", "dynamicsrecovery1"])


def test_fit_transform_passes_lengths():
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble())
    Z = recovery.fit_transform(X, y, lengths=[20, 20])
    np.testing.assert_allclose(Z, recovery.transform(X, lengths=[20, 20]))
    assert not np.allclose(Z, recovery.transform(X))


def test_scorer_reads_eigenvalues_and_the_protocol():
    A, B, C, D = _system(8)
    X, y = _data()
    scorer = make_dynamics_scorer(A)
    assert scorer(DynamicsRecovery(StateSpaceDouble(A, B, C, D)).fit(X, y), X, y) == (
        pytest.approx(0.0, abs=1e-12))
    # A bare model through its state-space form; greater is better.
    worse = StateSpaceDouble(0.9 * A, B, C, D).fit(X, y)
    assert scorer(worse, X, y) == pytest.approx(-eigenvalue_error(0.9 * A, A))
    assert scorer(worse, X, y) < 0
    with pytest.raises(TypeError, match="DynamicsRecovery"):
        scorer(Ridge().fit(X, y), X, y)


def test_scorer_pickles_for_parallel_search():
    import pickle

    A = _system(8)[0]
    scorer = pickle.loads(pickle.dumps(make_dynamics_scorer(A)))
    X, y = _data()
    assert scorer(DynamicsRecovery(StateSpaceDouble(A=A)).fit(X, y), X, y) == (
        pytest.approx(0.0, abs=1e-12))


def test_grid_search_with_the_scorer_picks_the_true_dynamics():
    A, B, C, D = _system(9)
    X, y = _data()
    grid = GridSearchCV(
        DynamicsRecovery(StateSpaceDouble(B=B, C=C, D=D)),
        {"estimator__A": [0.5 * A, A, 1.2 * A]}, scoring=make_dynamics_scorer(A), cv=2,
    ).fit(X, y)
    np.testing.assert_array_equal(grid.best_params_["estimator__A"], A)
    assert grid.best_score_ == pytest.approx(0.0, abs=1e-12)


def test_impulse_response_error_accepts_systems_in_several_forms():
    from skkalman import KalmanFilterRegressor

    _, _, system = make_lds(system="two_rotations", n_inputs=2, n_samples=10, random_state=0)
    model = KalmanFilterRegressor.from_params(**system.params)
    T = np.random.default_rng(0).standard_normal((4, 4)) + 3 * np.eye(4)
    similar = _similar(system.A, system.B, system.C, system.D, T)
    assert impulse_response_error(model, system) == pytest.approx(0.0, abs=1e-12)
    assert impulse_response_error(similar, system.params) == pytest.approx(0.0, abs=1e-10)
    slower = (0.99 * system.A, system.B, system.C, system.D)
    assert 0 < impulse_response_error(slower, system) < impulse_response_error(
        slower, system, n_lags=300)


@pytest.mark.parametrize(
    "estimated, true, match",
    [((np.eye(2), np.ones((2, 1)), np.ones((1, 2))), (np.eye(2), np.ones((2, 2)),
                                                      np.ones((1, 2))), "differ in shape"),
     ((np.eye(2), np.ones((2, 1)), np.ones((1, 2))), (np.eye(2), np.zeros((2, 1)),
                                                      np.ones((1, 2))), "zero"),
     ((np.eye(2), np.ones((3, 1)), np.ones((1, 2))), (np.eye(2), np.ones((2, 1)),
                                                      np.ones((1, 2))), "B must have shape"),
     ((np.eye(2),), (np.eye(2), np.ones((2, 1)), np.ones((1, 2))), "must give A, B, C")],
)
def test_impulse_response_error_bad_input(estimated, true, match):
    with pytest.raises(ValueError, match=match):
        impulse_response_error(estimated, true)


def test_dynamics_scorer_bad_truth():
    with pytest.raises(ValueError, match="square"):
        make_dynamics_scorer(np.ones((2, 3)))


# ------------------------------------------------------------------------- bad input


def test_unsupported_estimator_is_a_type_error():
    X, y = _data()
    with pytest.raises(TypeError, match="KalmanFilterRegressor and ElmanRNNRegressor.*Ridge"):
        DynamicsRecovery(Ridge()).fit(X, y)


def test_prefit_unfitted_estimator_mentions_prefit():
    X, y = _data()
    with pytest.raises(NotFittedError, match="prefit"):
        DynamicsRecovery(StateSpaceDouble(), prefit=True).fit(X, y)


@pytest.mark.parametrize(
    "columns, match",
    [([0], "2 targets"), ([0, 1, 2], "3 entries"), ([0, 3], "out of range"),
     ([-1, 0], "out of range"), ([1, 1], "more than once"), ([0.5, 1.0], "integer"),
     ([[0, 1]], "one-dimensional")],
)
def test_bad_feedback_columns(columns, match):
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        DynamicsRecovery(StateSpaceDouble(), feedback_columns=columns).fit(X, y)


def test_order_larger_than_the_state_is_a_value_error():
    X, y = _data()
    with pytest.raises(ValueError, match="order=3 exceeds the 2 states"):
        DynamicsRecovery(StateSpaceDouble(), order=3).fit(X, y)
    A, B, C, D = _system(10, direct=True)
    with pytest.raises(ValueError, match="direct path"):
        DynamicsRecovery(StateSpaceDouble(A, B, C, D), feedback_columns=[0, 1],
                         order=7).fit(X, y)


@pytest.mark.parametrize("params", [dict(order=0), dict(linearization="mean"),
                                    dict(prefit="yes")])
def test_bad_parameters(params):
    X, y = _data()
    with pytest.raises(ValueError, match=next(iter(params))):
        DynamicsRecovery(StateSpaceDouble(), **params).fit(X, y)


def test_failed_fit_leaves_no_fitted_attributes():
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble(), feedback_columns=[5, 0])
    with pytest.raises(ValueError):
        recovery.fit(X, y)
    assert not any(name.endswith("_") for name in vars(recovery))
    with pytest.raises(NotFittedError):
        recovery.transform(X)


def test_transform_checks_the_data():
    X, y = _data()
    recovery = DynamicsRecovery(StateSpaceDouble()).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        recovery.transform(X[:, :2])
    with pytest.raises(ValueError, match="lengths"):
        recovery.transform(X, lengths=[10, 10])


def test_clone_and_params():
    recovery = DynamicsRecovery(StateSpaceDouble(), feedback_columns=[0, 1], order=2)
    copy = clone(recovery)
    assert copy.get_params()["order"] == 2
    assert "estimator__A" in copy.get_params()


# ---------------------------------------------------------------- with the real models


def _separated_spectrum(rng, n):
    """Real block-diagonal matrix with distinct eigenvalues of well separated moduli."""
    moduli = rng.permutation(np.linspace(0.3, 0.9, n))
    blocks, i = [], 0
    for _ in range(rng.integers(0, n // 2 + 1)):
        lam = moduli[i] * np.exp(1j * rng.uniform(0.3, 2.8))
        blocks.append(np.array([[lam.real, -lam.imag], [lam.imag, lam.real]]))
        i += 2
    blocks += [np.array([[moduli[j] * rng.choice([-1, 1])]]) for j in range(i, n)]
    return linalg.block_diag(*blocks)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 5), seed=st.integers(0, 10_000), feedback=st.booleans())
def test_kalman_results_unchanged_by_a_similarity_transform(n, seed, feedback):
    from skkalman import KalmanFilterRegressor

    rng = np.random.default_rng(seed)
    U = rng.standard_normal((n, n)) + 3 * np.eye(n)
    A = U @ _separated_spectrum(rng, n) @ np.linalg.inv(U)
    B, C = 0.3 * rng.standard_normal((n, 2)), rng.standard_normal((2, n))
    D = 0.2 * rng.standard_normal((2, 2))
    Q, R = 0.1 * np.eye(n), 0.1 * np.eye(2)
    T = rng.standard_normal((n, n)) + 3 * np.eye(n)
    T_inv = np.linalg.inv(T)
    # The same model in two bases: the prior of the first state transformed too (the
    # filter's one-step predictions, which signal_to_noise_ reads, start from it).
    first = KalmanFilterRegressor.from_params(A=A, C=C, Q=Q, R=R, B=B, D=D,
                                              initial_state_covariance=np.eye(n))
    second = KalmanFilterRegressor.from_params(A=T @ A @ T_inv, C=C @ T_inv, Q=T @ Q @ T.T,
                                               R=R, B=T @ B, D=D,
                                               initial_state_covariance=T @ T.T)
    X = rng.standard_normal((30, 2))
    y, _ = first.sample(X, random_state=seed)
    params = dict(prefit=True, feedback_columns=[1, 0] if feedback else None)
    one = DynamicsRecovery(first, **params).fit(X, y)
    two = DynamicsRecovery(second, **params).fit(X, y)
    np.testing.assert_allclose(two.eigenvalues_, one.eigenvalues_, atol=1e-8)
    np.testing.assert_allclose(two.A_canonical_, one.A_canonical_, atol=1e-8)
    np.testing.assert_allclose(two.transform(X), one.transform(X), atol=1e-8)
    np.testing.assert_allclose(two.signal_to_noise_, one.signal_to_noise_, rtol=1e-6,
                               atol=1e-12)
    np.testing.assert_allclose(two.concentration_, one.concentration_, rtol=1e-6,
                               atol=1e-10)


def test_kalman_predictor_closed_loop_is_the_generative_dynamics():
    # The Kalman predictor of the forecasting set-up, sigma_t = (A - K C) sigma_{t-1} +
    # K y_{t-1}, has A - K C as its own matrix; closing the loop gives back A exactly.
    from skkalman import KalmanFilterRegressor

    _, y, system = make_lds(system="two_rotations", n_samples=50, random_state=0)
    A, C = system.A, system.C
    P = linalg.solve_discrete_are(A.T, C.T, system.Q, system.R)
    S = C @ P @ C.T + system.R
    K = A @ P @ C.T @ np.linalg.inv(S)
    predictor = KalmanFilterRegressor.from_params(
        A=A - K @ C, C=C, Q=1e-9 * np.eye(4), R=S, B=K, D=np.zeros((2, 2)))
    X, y, _ = lagged_targets(y)
    recovery = DynamicsRecovery(predictor, prefit=True, feedback_columns=[0, 1]).fit(X, y)
    assert eigenvalue_error(recovery.eigenvalues_, A) < 1e-10
    assert eigenvalue_error(DynamicsRecovery(predictor, prefit=True).fit(X, y).eigenvalues_,
                            A - K @ C) < 1e-10


@pytest.mark.slow
def test_kalman_recovers_input_driven_dynamics():
    from skkalman import KalmanFilterRegressor

    X, y, system = make_lds(system="two_rotations", n_inputs=2, n_samples=10_000,
                            random_state=0)
    recovery = DynamicsRecovery(KalmanFilterRegressor(n_states=4)).fit(X, y)
    assert eigenvalue_error(recovery.eigenvalues_, system.A) <= 0.01
    # The canonical states are the model's input-driven states, read out through C.
    np.testing.assert_allclose(
        recovery.transform(X) @ (recovery.C_ @ recovery.canonical_basis_).T
        + X @ recovery.D_.T + recovery.estimator_.intercept_, recovery.estimator_.predict(X),
        atol=1e-8)


@pytest.mark.slow
def test_kalman_recovers_forecasting_dynamics():
    # In the forecasting set-up the fitted model is the Kalman predictor, with no direct
    # path from the lags (D = 0 on their columns): the closed loop A + B_f C has exactly
    # the model's 4 states and is the system's A.
    from skkalman import KalmanFilterRegressor

    _, y, system = make_lds(system="two_rotations", n_samples=10_000, random_state=0)
    X, y, lengths = lagged_targets(y)
    model = KalmanFilterRegressor(n_states=4).fit(X, y, lengths=lengths)
    assert model.converged_
    np.testing.assert_array_equal(model.D_, 0.0)
    exact = DynamicsRecovery(model, prefit=True, feedback_columns=[0, 1]).fit(X, y)
    assert exact.hankel_singular_values_.size == 4
    assert eigenvalue_error(exact.eigenvalues_, system.A) <= 0.02
    # Without closing the loop the model shows the filter's dynamics, not the system's.
    assert eigenvalue_error(DynamicsRecovery(model, prefit=True).fit(X, y).eigenvalues_,
                            system.A) > 0.3


def _forecasting_data(n_samples=10_000):
    _, y, system = make_lds(system="two_rotations", n_samples=n_samples, random_state=0)
    X, y, _ = lagged_targets(y)
    return X, y, system


@pytest.mark.slow
def test_grid_search_over_rnn_sizes_and_linear_rnn_recovery():
    # A network smaller than the system misses modes; a larger one carries extra, weakly
    # excited modes, which its Hankel singular values expose and balanced truncation drops.
    from sklearn.model_selection import PredefinedSplit

    from skkalman import ElmanRNNRegressor

    X, y, system = _forecasting_data()
    split = PredefinedSplit(np.where(np.arange(len(X)) < 0.8 * len(X), -1, 0))
    rnn = ElmanRNNRegressor(nonlinearity="linear", max_epochs=60, random_state=0)
    grid = GridSearchCV(
        DynamicsRecovery(rnn, feedback_columns=[0, 1]), {"estimator__hidden_size": [2, 8]},
        scoring=make_dynamics_scorer(system.A), cv=split,
    ).fit(X, y)
    assert grid.best_params_ == {"estimator__hidden_size": 8}
    assert grid.cv_results_["mean_test_score"][0] < -0.8  # two of four modes missing
    hsv = grid.best_estimator_.hankel_singular_values_
    assert hsv.size == 8 and hsv[3] > 5 * hsv[4]  # the gap that says: four states
    reduced = DynamicsRecovery(grid.best_estimator_.estimator_, prefit=True,
                               feedback_columns=[0, 1], order=4).fit(X, y)
    # Measured 0.003 (target 0.02).
    assert eigenvalue_error(reduced.eigenvalues_, system.A) <= 0.02


@pytest.mark.slow
def test_tanh_rnn_recovers_forecasting_dynamics():
    from skkalman import ElmanRNNRegressor

    X, y, system = _forecasting_data()
    rnn = ElmanRNNRegressor(hidden_size=8, max_epochs=60, random_state=0).fit(X, y)
    recovery = DynamicsRecovery(rnn, prefit=True, feedback_columns=[0, 1], order=4).fit(X, y)
    # Measured 0.017 (target 0.05), Jacobians averaged along the data's trajectory.
    assert eigenvalue_error(recovery.eigenvalues_, system.A) <= 0.05
    Z = recovery.transform(X)
    assert Z.shape == (len(X), 4) and np.all(np.isfinite(Z))
    # The Jacobian at the mean input's fixed point overstates the gain of tanh units that
    # the data drives away from it (measured error 0.15, a modulus slightly above 1).
    at_fixed_point = DynamicsRecovery(rnn, prefit=True, feedback_columns=[0, 1], order=4,
                                      linearization="fixed_point").fit(X, y)
    assert at_fixed_point.eigenvalues_.shape == (4,)
    assert np.abs(at_fixed_point.eigenvalues_).max() > np.abs(recovery.eigenvalues_).max()


@pytest.mark.parametrize("x_scale", [1e-300, 1e300])
def test_inputs_at_any_scale_give_the_same_dynamics_and_scaled_gramians(x_scale):
    # The Gramians square B (about 1 / x_scale here): computed in scaled units, the Hankel
    # singular values neither overflow nor vanish.
    X, y, system = make_lds(system="oscillator", n_inputs=1, n_samples=400, random_state=0)
    model = KalmanFilterRegressor.from_params(**system.params)
    scaled = KalmanFilterRegressor.from_params(**{**system.params,
                                                  "B": system.params["B"] / x_scale})
    for order in (None, 1):
        base = DynamicsRecovery(model, prefit=True, order=order).fit(X, y)
        recovery = DynamicsRecovery(scaled, prefit=True, order=order).fit(X * x_scale, y)
        np.testing.assert_allclose(recovery.hankel_singular_values_,
                                   base.hankel_singular_values_ / x_scale, rtol=1e-10)
        np.testing.assert_allclose(recovery.eigenvalues_, base.eigenvalues_, rtol=1e-10)
        np.testing.assert_allclose(recovery.transform(X * x_scale), base.transform(X),
                                   rtol=1e-8, atol=1e-10)
