"""The reference tools' versions of skkalman's model, written once for every benchmark."""

import numpy as np


def statsmodels_smoother(system, y):
    """statsmodels' ``KalmanSmoother`` for ``system`` bound to ``y`` (NaN entries missing).

    statsmodels: ``a_{t+1} = T a_t + R eta_t``, ``y_t = Z a_t + eps_t``, ``a_1 ~ N(a1, P1)``
    before the first update: with no inputs, skkalman's model with ``T = A``, ``Z = C``.
    """
    from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother

    n_states = system.A.shape[0]
    model = KalmanSmoother(k_endog=y.shape[1], k_states=n_states)
    model.bind(y)
    model.design = system.C
    model.obs_cov = system.R
    model.transition = system.A
    model.selection = np.eye(n_states)
    model.state_cov = system.Q
    model.initialize_known(system.initial_state_mean, system.initial_state_covariance)
    return model


def pykalman_model(system):
    """pykalman's ``KalmanFilter`` with ``system``'s matrices (no inputs)."""
    from pykalman import KalmanFilter

    return KalmanFilter(
        transition_matrices=system.A, observation_matrices=system.C,
        transition_covariance=system.Q, observation_covariance=system.R,
        initial_state_mean=system.initial_state_mean,
        initial_state_covariance=system.initial_state_covariance,
    )


def innovations_forecasts(A, C, Q, R, S, y):
    """One-step forecasts of the steady-state Kalman predictor of a model whose process
    and measurement noises are correlated (cross covariance ``S``, nfoursid's)."""
    from scipy import linalg

    Q, R = 0.5 * (Q + Q.T), 0.5 * (R + R.T)
    P = linalg.solve_discrete_are(A.T, C.T, Q, R, s=S)
    K = linalg.solve(C @ P @ C.T + R, (A @ P @ C.T + S).T, assume_a="pos").T
    s = np.zeros(A.shape[0])
    pred = np.empty_like(y)
    for t in range(len(y)):
        pred[t] = C @ s
        s = A @ s + K @ (y[t] - pred[t])
    return pred
