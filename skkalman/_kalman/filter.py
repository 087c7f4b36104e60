"""Kalman filter for one sequence: moments of p(s_t | x_1..t, y_1..t) and the likelihood."""

from typing import NamedTuple

import numpy as np
from scipy import linalg

from .._linalg import cho_factor_psd, cho_logdet, cho_solve, symmetrize

__all__ = ["FilterResult", "kalman_filter"]

_LOG_2PI = np.log(2.0 * np.pi)


class FilterResult(NamedTuple):
    """Moments computed by :func:`kalman_filter` for one sequence of ``T`` rows.

    Attributes
    ----------
    predicted_means : ndarray of shape (T, n_states)
        ``E[s_t | x_1..t, y_1..t-1]``; row 0 is the initial state mean.
    predicted_covariances : ndarray of shape (T, n_states, n_states)
        ``Cov[s_t | x_1..t, y_1..t-1]``; row 0 is the initial state covariance.
    filtered_means : ndarray of shape (T, n_states)
        ``E[s_t | x_1..t, y_1..t]``.
    filtered_covariances : ndarray of shape (T, n_states, n_states)
        ``Cov[s_t | x_1..t, y_1..t]``.
    log_likelihood : float
        ``log p(y_1..T | x_1..T)`` over the observed (non-NaN) entries of ``y``.
    """

    predicted_means: np.ndarray
    predicted_covariances: np.ndarray
    filtered_means: np.ndarray
    filtered_covariances: np.ndarray
    log_likelihood: float


def _measurement_update(m, P, e, C, R):
    """Condition N(m, P) on e = y - C s - D x observed with noise N(0, R).

    Returns the filtered moments, the gain ``K``, the Cholesky factor of the innovation
    covariance ``S`` and the log density of ``e``.
    """
    L = cho_factor_psd(C @ P @ C.T + R)
    K = cho_solve(L, C @ P).T  # P C^T S^{-1}, with S solved, never inverted
    m_f = m + K @ e
    # Joseph form: a sum of PSD terms, so round-off cannot make the covariance indefinite.
    IKC = np.eye(P.shape[0]) - K @ C
    P_f = symmetrize(IKC @ P @ IKC.T + K @ R @ K.T)
    z = linalg.solve_triangular(L, e, lower=True, check_finite=False)
    log_density = -0.5 * (e.size * _LOG_2PI + cho_logdet(L) + z @ z)
    return m_f, P_f, K, L, log_density


def kalman_filter(params, X, y):
    """Moments of p(s_t | x_1..t, y_1..t) and p(s_t | x_1..t, y_1..t-1), and log p(y | x).

    The model is ``s_t = A s_{t-1} + B x_t + w_t``, ``y_t = C s_t + D x_t + v_t``, with the
    prior ``N(initial_state_mean, initial_state_covariance)`` on the state at the first row,
    before its measurement update. A row of ``y`` that is all NaN gets no measurement
    update; a partly NaN row is updated on its observed entries only.

    Parameters
    ----------
    params : StateSpaceParams
        The model's matrices.
    X : ndarray of shape (T, n_features)
        Known inputs of one sequence (``n_features`` may be 0).
    y : ndarray of shape (T, n_targets)
        Measurements of the same sequence; NaN marks a missing entry.

    Returns
    -------
    result : FilterResult
        Predicted and filtered means and covariances, and the log-likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman._kalman import StateSpaceParams, kalman_filter
    >>> params = StateSpaceParams(
    ...     A=np.eye(1), B=np.zeros((1, 0)), C=np.eye(1), D=np.zeros((1, 0)),
    ...     Q=np.eye(1), R=np.eye(1), initial_state_mean=np.zeros(1),
    ...     initial_state_covariance=np.eye(1))
    >>> result = kalman_filter(params, np.zeros((3, 0)), np.array([[1.0], [np.nan], [2.0]]))
    >>> result.filtered_means.ravel().round(4)
    array([0.5   , 0.5   , 1.5714])
    >>> round(result.log_likelihood, 4)
    -3.3823
    """
    A, C, Q, R = params.A, params.C, params.Q, params.R
    T, n = y.shape[0], params.n_states
    # Inputs enter the state and the measurement additively: fold them in once.
    Bx = X @ params.B.T
    y_minus_Dx = y - X @ params.D.T
    observed = ~np.isnan(y)

    predicted_means = np.empty((T, n))
    predicted_covariances = np.empty((T, n, n))
    filtered_means = np.empty((T, n))
    filtered_covariances = np.empty((T, n, n))
    log_likelihood = 0.0

    m = np.asarray(params.initial_state_mean, dtype=float)
    P = np.asarray(params.initial_state_covariance, dtype=float)
    for t in range(T):
        if t > 0:
            m = A @ m + Bx[t]
            P = symmetrize(A @ P @ A.T + Q)
        predicted_means[t], predicted_covariances[t] = m, P
        o = observed[t]
        if o.all():
            m, P, _, _, log_density = _measurement_update(m, P, y_minus_Dx[t] - C @ m, C, R)
            log_likelihood += log_density
        elif o.any():
            C_o = C[o]
            m, P, _, _, log_density = _measurement_update(
                m, P, y_minus_Dx[t, o] - C_o @ m, C_o, R[np.ix_(o, o)]
            )
            log_likelihood += log_density
        filtered_means[t], filtered_covariances[t] = m, P

    return FilterResult(
        predicted_means, predicted_covariances, filtered_means, filtered_covariances,
        float(log_likelihood),
    )
