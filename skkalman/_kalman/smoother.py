"""Rauch-Tung-Striebel smoother for one sequence: moments of p(s_t | all y)."""

from typing import NamedTuple

import numpy as np

from .._linalg import symmetrize
from .filter import (
    _STEADY_RTOL,
    _STEADY_STREAK,
    _cho_solve,
    _cholesky,
    _linear_recursion,
    _memo,
    _NoMemo,
    _one_blas_thread,
    _remember,
    _varying_recursion,
)

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
        Where the filter's covariances are constant (its steady state), reuse the smoothed
        covariance once it has converged to round-off, so that only the mean recursion
        remains (the result is the same up to round-off). False runs the plain recursion
        on every row, the means one step at a time: the reference for the fast path.

    Returns
    -------
    result : SmootherResult
        Smoothed means and covariances, and lag-one cross-covariances.

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
    with _one_blas_thread(filter_result.filtered_means.shape[0]):
        return _rts_smoother(params, filter_result, steady_state)


def _rts_smoother(params, filter_result, steady_state):
    A, Q = params.A, params.Q
    m_p, P_p, m_f, P_f, _ = filter_result
    T, n = m_f.shape
    smoothed_means = np.empty((T, n))
    smoothed_covariances = np.empty((T, n, n))
    lag_one_covariances = np.zeros((T, n, n))
    smoothed_means[-1], smoothed_covariances[-1] = m_f[-1], P_f[-1]
    if steady_state and T > 2:
        # Step t reads P_f[t] and P_p[t+1]; where those repeat exactly (a steady stretch
        # of the filter), the gain G repeats too. group_start[t]: first step of t's stretch.
        same_as_next = np.all(P_f[:-2] == P_f[1:-1], axis=(1, 2)) & np.all(
            P_p[1:-1] == P_p[2:], axis=(1, 2)
        )
        is_start = np.ones(T - 1, dtype=bool)
        is_start[1:] = ~same_as_next
        group_start = np.maximum.accumulate(np.where(is_start, np.arange(T - 1), 0))
    else:
        same_as_next = np.zeros(max(T - 2, 0), dtype=bool)
        group_start = np.arange(max(T - 1, 0))
    # Pass 1, backward row by row: the covariances and each row's gain G. Remembered steps
    # (see filter.py): gains by (P_f[t], P_p[t+1]), covariances by those and P_s[t+1].
    memo = _memo("smoother", A, Q) if steady_state else _NoMemo()
    steady = {}  # gain -> its steady smoothed covariance, the first one found
    gains = [None] * T
    steady_stretches = []  # (start, t, G): rows start..t-1 share the gain G of row t
    streak = 0
    t = T - 2
    while t >= 0:
        gain_key = P_f[t].tobytes() + P_p[t + 1].tobytes()
        gain = memo.get(gain_key)
        if gain is None:
            gain = _remember(memo, gain_key, _smoother_gain(A, P_f[t], P_p[t + 1]))
        G, IGA = gain
        gains[t] = G
        P_next = smoothed_covariances[t + 1]
        cov_key = gain_key + P_next.tobytes()
        covs = memo.get(cov_key)
        if covs is None:
            # P_f - G P_p G^T written as a sum of PSD terms, so the result stays PSD.
            P_s = symmetrize(IGA @ P_f[t] @ IGA.T + G @ (Q + P_next) @ G.T)
            covs = _remember(memo, cov_key, (P_s, P_next @ G.T))
        smoothed_covariances[t], lag_one_covariances[t + 1] = covs

        if t < T - 2 and same_as_next[t]:
            P_s = smoothed_covariances[t]
            change = abs(P_s - P_next).max()
            streak = streak + 1 if change <= _STEADY_RTOL * abs(P_s).max() else 0
            start = group_start[t]
            if streak >= _STEADY_STREAK and start < t:
                # The first steady state found for a gain serves all its later stretches,
                # so that the rows before them start from the same covariance, bit for bit.
                P_steady = steady.setdefault(gain_key, covs[0])
                smoothed_covariances[start:t] = P_steady
                lag_one_covariances[start + 1:t] = P_steady @ G.T
                lag_one_covariances[t] = smoothed_covariances[t] @ G.T
                steady_stretches.append((start, t, G))
                t, streak = start - 1, 0
                continue
        else:
            streak = 0
        t -= 1

    # Pass 2, backward: m_s[t] = G_t m_s[t+1] + (m_f[t] - G_t m_p[t+1]), a time-varying
    # linear recursion over the transient rows and a time-invariant one over each stretch.
    stop = T - 1  # rows stop.. are done
    for start, t, G in steady_stretches:
        _transient_rows(t, stop, gains, m_p, m_f, smoothed_means, not steady_state)
        U = m_f[start:t] - m_p[start + 1:t + 1] @ G.T
        smoothed_means[start:t] = _linear_recursion(G, smoothed_means[t], U[::-1])[::-1]
        stop = start
    if stop > 0:
        _transient_rows(0, stop, gains, m_p, m_f, smoothed_means, not steady_state)
    return SmootherResult(smoothed_means, smoothed_covariances, lag_one_covariances)


def _transient_rows(start, stop, gains, m_p, m_f, smoothed_means, sequential):
    """Smoothed means of rows start..stop-1, each with its own gain, from row stop's."""
    G = np.stack(gains[start:stop])
    U = m_f[start:stop] - (G @ m_p[start + 1:stop + 1, :, None])[..., 0]
    smoothed_means[start:stop] = _varying_recursion(
        G[::-1], smoothed_means[stop], U[::-1], sequential=sequential
    )[::-1]


def _smoother_gain(A, P_f, P_p):
    """G = P_f A^T P_p^{-1}, the regression of s_t on s_{t+1} given y_1..t, and I - G A."""
    G = _cho_solve(_cholesky(P_p), A @ P_f).T
    return G, np.eye(A.shape[0]) - G @ A
