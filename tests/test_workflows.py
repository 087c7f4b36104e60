"""Real workflows: sequences as groups, cross-validation by whole sequences, scale-out on a
Dask cluster, and data at any scale or level."""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.utils.metadata_routing import get_routing_for_object

from skkalman import DynamicsRecovery, ElmanRNNRegressor, KalmanFilterRegressor
from skkalman._sequences import groups_to_lengths
from skkalman.datasets import make_lds
from skkalman.metrics import eigenvalue_error, make_dynamics_scorer

LENGTHS = [140, 90, 160, 110, 130, 120]


@pytest.fixture(scope="module")
def recordings():
    """Six recordings of one system, concatenated, with a string label per row."""
    X, y, system = make_lds(system="oscillator", n_inputs=1, n_samples=sum(LENGTHS),
                            lengths=LENGTHS, random_state=0)
    ids = np.repeat([f"rec{k}" for k in range(len(LENGTHS))], LENGTHS)
    return X, y, ids, system


def _parts(result):
    return result if isinstance(result, tuple) else (result,)


def _fitted_attributes(estimator):
    return {k: v for k, v in vars(estimator).items() if k.endswith("_")}


# --- groups wherever lengths ----------------------------------------------------------

def test_groups_give_the_same_fit_and_outputs_as_lengths(recordings):
    X, y, ids, _ = recordings
    by_groups = KalmanFilterRegressor(random_state=0).fit(X, y, groups=ids)
    by_lengths = KalmanFilterRegressor(random_state=0).fit(X, y, lengths=LENGTHS)
    for key, value in _fitted_attributes(by_lengths).items():
        np.testing.assert_array_equal(_fitted_attributes(by_groups)[key], value, err_msg=key)
    for method in ("filter", "smooth", "forecast", "log_likelihood", "score", "aic", "bic"):
        for a, b in zip(_parts(getattr(by_groups, method)(X, y, groups=ids)),
                        _parts(getattr(by_groups, method)(X, y, lengths=LENGTHS)),
                        strict=True):
            np.testing.assert_array_equal(a, b, err_msg=method)
    for a, b in zip(by_groups.predict(X, groups=ids, return_std=True),
                    by_groups.predict(X, lengths=LENGTHS, return_std=True), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(by_groups.sample(X, groups=ids, random_state=1)[0],
                                  by_groups.sample(X, lengths=LENGTHS, random_state=1)[0])
    # And the groups matter: as one sequence, states would cross the boundaries.
    assert not np.allclose(by_groups.predict(X, groups=ids), by_groups.predict(X))


def test_dynamics_recovery_passes_groups_on_as_lengths(recordings):
    X, y, ids, _ = recordings
    by_groups = DynamicsRecovery(KalmanFilterRegressor(random_state=0)).fit(X, y, groups=ids)
    by_lengths = DynamicsRecovery(KalmanFilterRegressor(random_state=0)).fit(
        X, y, lengths=LENGTHS)
    np.testing.assert_array_equal(by_groups.A_, by_lengths.A_)
    np.testing.assert_array_equal(by_groups.transform(X, groups=ids),
                                  by_lengths.transform(X, lengths=LENGTHS))
    np.testing.assert_array_equal(
        DynamicsRecovery(KalmanFilterRegressor(random_state=0)).fit_transform(X, y,
                                                                              groups=ids),
        by_lengths.transform(X, lengths=LENGTHS))


def test_rnn_takes_groups_like_lengths(recordings):
    X, y, ids, _ = recordings
    X, y, ids = X[:300], y[:300], ids[:300]
    lengths = groups_to_lengths(ids, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # (two epochs only)
        by_groups = ElmanRNNRegressor(hidden_size=2, max_epochs=2, random_state=0).fit(
            X, y, groups=ids)
        by_lengths = ElmanRNNRegressor(hidden_size=2, max_epochs=2, random_state=0).fit(
            X, y, lengths=lengths)
    np.testing.assert_array_equal(by_groups.W_hh_, by_lengths.W_hh_)
    np.testing.assert_array_equal(by_groups.predict(X, groups=ids),
                                  by_groups.predict(X, lengths=lengths))
    np.testing.assert_array_equal(by_groups.hidden_states(X, groups=ids),
                                  by_groups.hidden_states(X, lengths=lengths))
    assert by_groups.score(X, y, groups=ids) == by_groups.score(X, y, lengths=lengths)
    assert not np.allclose(by_groups.predict(X, groups=ids), by_groups.predict(X))


# --- cross-validation by whole sequences ------------------------------------------------

def _fold_fit(estimator, X, y, ids, train):
    """What a fold's fit must be: its rows, with the lengths of its own sequences."""
    lengths = groups_to_lengths(ids[train], len(train))
    return sklearn.clone(estimator).fit(X[train], y[train], lengths=lengths)


def test_grid_search_fits_and_scores_every_fold_on_whole_sequences(recordings):
    X, y, ids, _ = recordings
    cv = GroupKFold(n_splits=3)
    grid = {"n_states": [1, 2]}
    with sklearn.config_context(enable_metadata_routing=True):
        model = (KalmanFilterRegressor(random_state=0)
                 .set_fit_request(groups=True).set_score_request(groups=True))
        search = GridSearchCV(model, grid, cv=cv).fit(X, y, groups=ids)
    splits = list(cv.split(X, y, groups=ids))
    for i, params in enumerate(search.cv_results_["params"]):
        estimator = KalmanFilterRegressor(random_state=0, **params)
        for k, (train, test) in enumerate(splits):
            fold = _fold_fit(estimator, X, y, ids, train)
            expected = fold.score(X[test], y[test],
                                  lengths=groups_to_lengths(ids[test], len(test)))
            assert search.cv_results_[f"split{k}_test_score"][i] == pytest.approx(
                expected, rel=1e-9, abs=1e-12)
            if i == 1 and k == 0:
                # Scored as one sequence, the test fold would be another number.
                assert fold.score(X[test], y[test]) != pytest.approx(expected, rel=1e-9)
    assert search.best_params_ == {"n_states": 2}
    # The refit saw every sequence.
    np.testing.assert_array_equal(
        search.best_estimator_.A_,
        KalmanFilterRegressor(2, random_state=0).fit(X, y, lengths=LENGTHS).A_)


def test_cross_validate_routes_groups_to_fit_score_and_the_splitter(recordings):
    X, y, ids, _ = recordings
    cv = GroupKFold(n_splits=2)
    with sklearn.config_context(enable_metadata_routing=True):
        model = (KalmanFilterRegressor(random_state=0)
                 .set_fit_request(groups=True).set_score_request(groups=True))
        scores = cross_validate(model, X, y, params={"groups": ids}, cv=cv,
                                return_estimator=True)
    assert sklearn.get_config()["enable_metadata_routing"] is False  # restored
    for k, (train, test) in enumerate(cv.split(X, y, groups=ids)):
        fold = _fold_fit(KalmanFilterRegressor(random_state=0), X, y, ids, train)
        np.testing.assert_array_equal(scores["estimator"][k].A_, fold.A_)
        assert scores["test_score"][k] == pytest.approx(
            fold.score(X[test], y[test], lengths=groups_to_lengths(ids[test], len(test))),
            rel=1e-9)


def test_dynamics_scorer_in_a_search_by_sequences(recordings):
    X, y, ids, system = recordings
    cv = GroupKFold(n_splits=2)
    scorer = make_dynamics_scorer(system.A)
    with sklearn.config_context(enable_metadata_routing=True):
        recovery = (DynamicsRecovery(KalmanFilterRegressor(random_state=0))
                    .set_fit_request(groups=True))
        search = GridSearchCV(recovery, {"estimator__n_states": [1, 2]}, cv=cv,
                              scoring=scorer).fit(X, y, groups=ids)
    for i, n_states in enumerate([1, 2]):
        for k, (train, _) in enumerate(cv.split(X, y, groups=ids)):
            fold = _fold_fit(KalmanFilterRegressor(n_states, random_state=0), X, y, ids,
                             train)
            assert search.cv_results_[f"split{k}_test_score"][i] == pytest.approx(
                -eigenvalue_error(fold.A_, system.A), abs=1e-9)
    assert search.best_params_ == {"estimator__n_states": 2}
    assert -search.best_score_ < 0.05


def test_dynamics_scorer_requests_groups_and_linearizes_each_sequence(recordings):
    X, y, ids, system = recordings
    scorer = make_dynamics_scorer(system.A)
    assert get_routing_for_object(scorer).consumes("score", ["groups", "lengths"]) == {
        "groups"}
    # A bare tanh RNN is linearized along the trajectory of the data it is scored on:
    # with groups, each sequence's own (its state restarts at each first row).
    X, y, ids = X[:300], y[:300], ids[:300]
    lengths = groups_to_lengths(ids, 300)
    rnn = ElmanRNNRegressor(hidden_size=3, max_epochs=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # (three epochs only)
        rnn.fit(X, y, lengths=lengths)
    expected = -eigenvalue_error(rnn._state_space(X, lengths)[0], system.A)
    assert scorer(rnn, X, y, groups=ids) == pytest.approx(expected, abs=1e-12)
    assert scorer(rnn, X, y) != pytest.approx(expected, abs=1e-9)


# --- scale-out ---------------------------------------------------------------------------

@pytest.mark.slow
def test_grid_search_on_a_dask_cluster_equals_the_local_run(recordings):
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_backend

    X, y, ids, system = recordings
    grid = {"estimator__n_states": [1, 2], "estimator__fit_intercept": [True, False]}

    def search(n_jobs):
        with sklearn.config_context(enable_metadata_routing=True):
            recovery = (DynamicsRecovery(KalmanFilterRegressor(random_state=0))
                        .set_fit_request(groups=True))
            return GridSearchCV(recovery, grid, cv=GroupKFold(n_splits=3),
                                scoring=make_dynamics_scorer(system.A),
                                n_jobs=n_jobs).fit(X, y, groups=ids)

    local = search(n_jobs=None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, parallel_backend("dask"), \
            distributed.get_task_stream(client) as tasks:
        remote = search(n_jobs=-1)
    # The 12 fits and scores ran as tasks on the two workers.
    assert len({task["worker"] for task in tasks.data}) == 2
    assert np.all(np.isfinite(local.cv_results_["mean_test_score"]))
    for key in ("mean_test_score", "rank_test_score", *(f"split{k}_test_score"
                                                        for k in range(3))):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.best_estimator_.A_, local.best_estimator_.A_)


# --- any scale, any level ----------------------------------------------------------------

@pytest.fixture(scope="module")
def oscillator():
    X, y, system = make_lds(system="oscillator", n_inputs=1, n_samples=400, random_state=0)
    model = KalmanFilterRegressor(random_state=0).fit(X, y)
    return X, y, system, model


def _r2(model, X, y):
    """R² computed in units of y's spread (its sums of squares stay finite at any scale)."""
    scale = np.std(y)
    residual = (y - model.predict(X)) / scale
    return 1.0 - np.mean(residual**2) / np.var(y / scale)


def _check_like_the_base(model, X, y, base, system, predictions_scale=1.0, level=0.0):
    X0, y0, base_model = base
    assert model.converged_
    for name in ("A_", "B_", "C_", "D_", "Q_", "R_", "intercept_", "log_likelihoods_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    assert eigenvalue_error(model.A_, system.A) == pytest.approx(
        eigenvalue_error(base_model.A_, system.A), abs=5e-3)
    assert _r2(model, X, y) == pytest.approx(_r2(base_model, X0, y0), abs=5e-3)
    np.testing.assert_allclose((model.predict(X) - level) / predictions_scale,
                               base_model.predict(X0),
                               rtol=0.05, atol=0.02 * np.std(y0))


@pytest.mark.parametrize("exponent", [-150, -100, -30, 30, 100, 150])
def test_y_at_any_representable_scale_fits_like_unit_scale(oscillator, exponent):
    X, y, system, base = oscillator
    scale = 10.0**exponent
    model = KalmanFilterRegressor(random_state=0).fit(X, y * scale)
    _check_like_the_base(model, X, y * scale, (X, y, base), system, predictions_scale=scale)


@pytest.mark.parametrize("exponent", [-300, -200, 200, 300])
def test_x_at_any_scale_fits_like_unit_scale(oscillator, exponent):
    X, y, system, base = oscillator
    model = KalmanFilterRegressor(random_state=0).fit(X * 10.0**exponent, y)
    _check_like_the_base(model, X * 10.0**exponent, y, (X, y, base), system)


@pytest.mark.parametrize("level", [1e4, 1e8])
def test_levels_up_to_1e8_noise_standard_deviations_cost_nothing(oscillator, level):
    X, y, system, base = oscillator
    noise_std = np.sqrt(0.1)  # make_lds's measurement noise variance
    shifted_y, shifted_X = y + level * noise_std, X + level
    model = KalmanFilterRegressor(random_state=0).fit(shifted_X, shifted_y)
    _check_like_the_base(model, shifted_X, shifted_y, (X, y, base), system,
                         level=level * noise_std)
    recovery = DynamicsRecovery(KalmanFilterRegressor(random_state=0)).fit(shifted_X,
                                                                           shifted_y)
    assert eigenvalue_error(recovery.eigenvalues_, system.A) == pytest.approx(
        eigenvalue_error(base.A_, system.A), abs=5e-3)


@pytest.mark.parametrize("exponent", [-300, -200, -160, 160, 200, 300])
def test_y_whose_variance_leaves_float64_is_a_clear_error(oscillator, exponent):
    X, y, _, _ = oscillator
    with pytest.raises(ValueError, match=r"column 0 of y spreads .* does not fit in float64"):
        KalmanFilterRegressor().fit(X, y * 10.0**exponent)


def test_parameters_beyond_float64_are_a_clear_error_not_a_nan_model(oscillator):
    X, y, _, _ = oscillator
    # D_ = (y's scale / X's scale) in internal units: 1e150 / 1e-300 overflows.
    with pytest.raises(ValueError, match="the fitted D_ does not fit in float64"):
        KalmanFilterRegressor().fit(X * 1e-300, y * 1e150)


def test_constant_columns_of_any_magnitude_are_inputs_that_never_vary(oscillator):
    X, y, _, _ = oscillator
    for value in (1e300, -3e-300, 7.0):
        model = KalmanFilterRegressor(random_state=0).fit(np.c_[X, np.full(len(X), value)], y)
        assert model.converged_
        np.testing.assert_array_equal(model.B_[:, 1], 0.0)
        np.testing.assert_array_equal(model.D_[:, 1], 0.0)


@pytest.mark.parametrize("fixed", [{"initial_state_mean": [1e300, 1e300]},
                                   {"intercept": [1e300]}, {"C": [[1e300, 1e300]]}])
def test_held_values_without_a_finite_likelihood_are_an_error_not_a_converged_fit(
        oscillator, fixed):
    X, y, _, _ = oscillator
    with warnings.catch_warnings():
        # (The kernels' overflow warnings on the way are not what this test is about.)
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=r"the values held in fixed \(\[.*\]\) leave "
                                             "the data no finite likelihood"):
            KalmanFilterRegressor(fixed=fixed).fit(X, y)
