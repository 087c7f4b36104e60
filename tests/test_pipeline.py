"""lengths through scikit-learn's metadata routing: Pipelines see the sequences."""

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skkalman import DynamicsRecovery, KalmanFilterRegressor
from skkalman.datasets import make_lds

LENGTHS = [150, 120]


@pytest.fixture
def data():
    X, y, _ = make_lds(system="oscillator", n_inputs=1, n_samples=sum(LENGTHS),
                       lengths=LENGTHS, random_state=0)
    return X, y


def test_pipeline_routes_lengths_to_the_kalman_model(data):
    X, y = data
    with sklearn.config_context(enable_metadata_routing=True):
        model = (KalmanFilterRegressor(2)
                 .set_fit_request(lengths=True).set_predict_request(lengths=True))
        pipe = make_pipeline(StandardScaler(), model).fit(X, y, lengths=LENGTHS)
        routed = pipe.predict(X, lengths=LENGTHS)
        as_one = pipe.predict(X)
    Xs = StandardScaler().fit_transform(X)
    direct = KalmanFilterRegressor(2).fit(Xs, y, lengths=LENGTHS)
    np.testing.assert_allclose(routed, direct.predict(Xs, lengths=LENGTHS), atol=1e-10)
    # Without lengths the second sequence would continue the first one's state.
    assert not np.allclose(routed[LENGTHS[0]:], as_one[LENGTHS[0]:])


def test_dynamics_recovery_states_as_features_downstream(data):
    X, y = data
    with sklearn.config_context(enable_metadata_routing=True):
        recovery = (DynamicsRecovery(KalmanFilterRegressor(2))
                    .set_fit_request(lengths=True).set_transform_request(lengths=True))
        pipe = make_pipeline(recovery, Ridge()).fit(X, y, lengths=LENGTHS)
        prediction = pipe.predict(X, lengths=LENGTHS)
    states = pipe[0].transform(X, lengths=LENGTHS)
    assert states.shape == (X.shape[0], 2)
    np.testing.assert_allclose(prediction, pipe[1].predict(states), atol=1e-10)


def test_pipeline_routes_groups_like_lengths(data):
    X, y = data
    ids = np.repeat(["a", "b"], LENGTHS)
    with sklearn.config_context(enable_metadata_routing=True):
        model = (KalmanFilterRegressor(2)
                 .set_fit_request(groups=True).set_predict_request(groups=True)
                 .set_score_request(groups=True))
        pipe = make_pipeline(StandardScaler(), model).fit(X, y, groups=ids)
        routed = pipe.predict(X, groups=ids)
        score = pipe.score(X, y, groups=ids)
    Xs = StandardScaler().fit_transform(X)
    direct = KalmanFilterRegressor(2).fit(Xs, y, lengths=LENGTHS)
    np.testing.assert_allclose(routed, direct.predict(Xs, lengths=LENGTHS), atol=1e-10)
    assert score == pytest.approx(direct.score(Xs, y, lengths=LENGTHS), rel=1e-10)
