"""scikit-learn's common estimator checks over every public estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skkalman import DynamicsRecovery, ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.estimator_checks import expected_failed_checks

# Each estimator adds an instance here (small settings keep the checks fast).
ESTIMATORS = []
ESTIMATORS.append(ElmanRNNRegressor(hidden_size=3, max_epochs=5, tol=1.0, n_iter_no_change=1,
                                    random_state=0))
ESTIMATORS.append(KalmanFilterRegressor(n_iter=30))
ESTIMATORS.append(DynamicsRecovery(KalmanFilterRegressor(n_iter=30)))
ESTIMATORS.append(DynamicsRecovery(KalmanFilterRegressor(n_iter=30), uncertainty="bootstrap",
                                   n_bootstrap=2, random_state=0))


# The checks fit white noise with few rows: a state-space model has no maximum worth
# certifying there, and the iteration budget is kept small. They test the API, not
# convergence (that is tests/test_kalman.py's and the benchmarks' job).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
