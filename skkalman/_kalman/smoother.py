"""Rauch-Tung-Striebel smoother for one sequence: moments of p(s_t | all y)."""

from typing import NamedTuple

import numpy as np

from ._compiled import smoother_rows
from .filter import _as_float_arrays

__all__ = ["SmootherResult", "rts_smoother"]


class SmootherResult(NamedTuple):
    """Moments computed by :func:`rts_smoother` for one sequence of ``T`` rows.

    Attributes
    ----------
    smoothed_means : ndarray of shape (T, n_states)
        ``E[s_t | x_1..T, y_1..T]``.
    smoothed_covariances : ndarray of shape (T, n_states, n_states)
        ``Cov[s_t | x_1..T, y_1..T]``.
    lag_one_covariances : ndarray of shape (T, n_states, n_states)
        ``Cov[s_t, s_{t-1} | x_1..T, y_1..T]``; row 0 is zeros (no state before the first).

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman._kalman import StateSpaceParams, kalman_filter, rts_smoother
    >>> params = StateSpaceParams(
    ...     A=np.eye(1), B=np.zeros((1, 0)), C=np.eye(1), D=np.zeros((1, 0)),
    ...     Q=np.eye(1), R=np.eye(1), initial_state_mean=np.zeros(1),
    ...     initial_state_covariance=np.eye(1))
    >>> result = rts_smoother(params, kalman_filter(params, np.zeros((4, 0)), np.ones((4, 1))))
    >>> result.lag_one_covariances[0]
    array([[0.]])
    """

    smoothed_means: np.ndarray
    smoothed_covariances: np.ndarray
    lag_one_covariances: np.ndarray


def rts_smoother(params, filter_result, *, steady_state=True):
    """Moments of p(s_t | x_1..T, y_1..T) and Cov(s_t, s_{t-1} | x_1..T, y_1..T).

    The backward (Rauch-Tung-Striebel) pass over a :func:`kalman_filter` result with the
    same ``params``. The lag-one cross-covariances are the ones the EM M-step needs.

    Parameters
    ----------
    params : StateSpaceParams
        The model's matrices (only ``A`` and ``Q`` are used).
    filter_result : FilterResult
        The forward pass over the same sequence.
    steady_state : bool, default=True
        Where the filter's covariances repeat exactly (its steady state), reuse the gain,
        and the smoothed covariance once it has converged to round-off, so that only the
        means remain (the result is the same up to round-off). False computes every row's
        covariances: the reference for the fast path.

    Returns
    -------
    result : SmootherResult
        Smoothed means and covariances, and lag-one cross-covariances.

    Raises
    ------
    numpy.linalg.LinAlgError
        If a predicted covariance is not positive definite, even after jitter.

    Notes
    -----
    One compiled backward pass. The gain ``G = P_f A^T P_p^{-1}`` and the covariance of
    ``s_t`` given ``s_{t+1}`` and ``y_1..t``, ``P_f - G A P_f``, depend on the filter's
    moments alone: both come from one Cholesky factor of the joint covariance of
    ``(s_{t+1}, s_t)``, computed for blocks of rows side by side. Then, row by row
    backward, the smoothed covariance as the sum of that (PSD) covariance and
    ``G P_s[t+1] G^T``, which stays PSD under round-off, and the mean.

    A known limitation: where the process noise is exactly zero along a stable mode
    (e.g. ``Q = 0`` with every eigenvalue of ``A`` inside the unit circle), the filter's
    covariance shrinks towards zero along it and the backward recursion amplifies its
    round-off by ``|A^-1|`` per row; over long sequences the smoothed covariances there
    are then meaningless (the means much less so: 3e-4 relative on a 3-state system over
    120 rows, where the covariances were off by 1e15). A small positive process noise
    (``1e-12 I`` there: covariances within 2e-9) or modes of modulus one (a deterministic
    level or season: 1e-12) keep the error small.

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman._kalman import StateSpaceParams, kalman_filter, rts_smoother
    >>> params = StateSpaceParams(
    ...     A=np.eye(1), B=np.zeros((1, 0)), C=np.eye(1), D=np.zeros((1, 0)),
    ...     Q=np.eye(1), R=np.eye(1), initial_state_mean=np.zeros(1),
    ...     initial_state_covariance=np.eye(1))
    >>> y = np.array([[1.0], [np.nan], [2.0]])
    >>> result = rts_smoother(params, kalman_filter(params, np.zeros((3, 0)), y))
    >>> result.smoothed_means.ravel().round(4)
    array([0.7143, 1.1429, 1.5714])
    """
    m_p, P_p, m_f, P_f = _as_float_arrays(*filter_result[:4])
    T, n = m_f.shape
    smoothed_means = np.empty((T, n))
    smoothed_covariances = np.empty((T, n, n))
    lag_one_covariances = np.empty((T, n, n))
    failed_row = smoother_rows(
        *_as_float_arrays(params.A, params.Q), m_p, P_p, m_f, P_f, bool(steady_state),
        smoothed_means, smoothed_covariances, lag_one_covariances,
    )
    if failed_row >= 0:
        raise np.linalg.LinAlgError(
            f"the predicted covariance at row {failed_row} is not positive definite"
        )
    return SmootherResult(smoothed_means, smoothed_covariances, lag_one_covariances)
