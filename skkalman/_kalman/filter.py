"""Kalman filter for one sequence: moments of p(s_t | x_1..t, y_1..t) and the likelihood."""

import contextlib
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotrs, dtrtrs
from threadpoolctl import ThreadpoolController

from .._linalg import cho_factor_psd, symmetrize

__all__ = ["FilterResult", "kalman_filter"]

_LOG_2PI = np.log(2.0 * np.pi)

# Steady state: the covariance recursion does not depend on the values of y, only on which
# entries are missing, and converges geometrically. Once it has stopped changing (relative
# change below _STEADY_RTOL on _STEADY_STREAK steps in a row) it is reused for the rest of
# the run of rows that share the same missing pattern, and only the mean recursion is left.
_STEADY_RTOL = 1e-14
_STEADY_STREAK = 5
# Rows per block of the blocked linear recursion: the block matrix has (block * n_states)^2
# entries, kept near 128 x 128 so that one matrix product does most of the work.
_SCAN_WIDTH = 128
# Covariance steps are deterministic functions of their inputs, and the same inputs recur
# bit for bit: every sequence starts from the same prior, and every gap in a steady stretch
# starts from the same steady state. Steps already taken are remembered, per parameter set
# (the few most recent ones) and up to a bounded number of steps each. A remembered step
# returns exactly what computing it would, so results never depend on what was cached.
_MEMO_PARAMETER_SETS = 8
_MEMO_STEPS = 20_000
_memos = OrderedDict()
_memos_lock = threading.Lock()


def _memo(kind, *arrays):
    """The dict of remembered covariance steps for one kind of kernel and parameter set."""
    key = (kind,) + tuple((a.shape, a.tobytes()) for a in arrays)
    with _memos_lock:
        memo = _memos.get(key)
        if memo is None:
            memo = _memos[key] = {}
            if len(_memos) > _MEMO_PARAMETER_SETS:
                _memos.popitem(last=False)
        else:
            _memos.move_to_end(key)
    return memo


# BLAS threads: the kernels' products are tall and thin (rows x a few states), where
# threads gain little and, on a busy machine, cost several times the work. Long sequences
# run with one BLAS thread (setting the limit costs ~0.1 ms, so short ones skip it).
_ONE_THREAD_ROWS = 2000
_blas_controller = None


def _one_blas_thread(T):
    """Context in which BLAS uses one thread, for a sequence of T rows."""
    global _blas_controller
    if T < _ONE_THREAD_ROWS:
        return contextlib.nullcontext()
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


class _NoMemo(dict):
    """Remembers nothing: the plain recursion (``steady_state=False``) computes every step."""

    def __setitem__(self, key, value):
        pass


def _remember(memo, key, value):
    if len(memo) < _MEMO_STEPS:
        memo[key] = value
    return value


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


def _linear_recursion(F, z0, U):
    """Solve ``z_i = F z_{i-1} + u_i`` for ``i = 0..n_rows-1`` from ``z_{-1} = z0``.

    A time-invariant linear recursion, evaluated by blocks instead of step by step: inside
    a block of ``b`` rows the zero-start response is one product with the block-Toeplitz
    matrix of the powers ``F^0..F^(b-1)``; the block ends then follow the same recursion
    with ``F^b``, solved recursively, and each block adds ``F^(j+1)`` times its start. The
    result is the step-by-step one up to round-off (the same terms, summed in another
    order).

    Parameters
    ----------
    F : ndarray of shape (n, n)
    z0 : ndarray of shape (n,)
    U : ndarray of shape (n_rows, n)

    Returns
    -------
    Z : ndarray of shape (n_rows, n)
    """
    n_rows, n = U.shape
    b = max(2, _SCAN_WIDTH // max(n, 1))
    if n_rows <= 2 * b:
        Z = np.empty((n_rows, n))
        z = z0
        for i in range(n_rows):
            z = F @ z + U[i]
            Z[i] = z
        return Z
    n_blocks = -(-n_rows // b)
    U_blocks = np.zeros((n_blocks * b, n))
    U_blocks[:n_rows] = U
    U_blocks = U_blocks.reshape(n_blocks, b * n)
    powers = np.empty((b + 1, n, n))
    powers[0] = np.eye(n)
    for j in range(b):
        powers[j + 1] = F @ powers[j]
    # Row-vector form z^T = u^T F^T: block (i, j) of the Toeplitz matrix is (F^(j-i))^T.
    lag = np.arange(b)[None, :] - np.arange(b)[:, None]
    toeplitz = np.where(
        (lag >= 0)[:, :, None, None], np.swapaxes(powers, 1, 2)[np.maximum(lag, 0)], 0.0
    )
    Z = U_blocks @ toeplitz.transpose(0, 2, 1, 3).reshape(b * n, b * n)
    starts = np.empty((n_blocks, n))
    starts[0] = z0
    starts[1:] = _linear_recursion(powers[b], z0, Z[:-1, -n:])
    Z += starts @ np.swapaxes(powers[1:], 1, 2).transpose(1, 0, 2).reshape(n, b * n)
    return Z.reshape(n_blocks * b, n)[:n_rows]


def _cholesky(S):
    """Lower Cholesky factor of the symmetric PSD matrix ``S`` (its lower triangle read).

    LAPACK is called directly because the transient rows pay this per row (scipy's checked
    wrappers cost ten times the factorization at these sizes); a matrix that is PSD only up
    to round-off falls back to the jittered factorization of ``_linalg``.
    """
    L, info = dpotrf(S, lower=1, clean=1)
    return L if info == 0 else cho_factor_psd(S)


def _cho_solve(L, B):
    """Solve ``(L L^T) X = B`` given the lower Cholesky factor ``L``."""
    return dpotrs(L, B, lower=1)[0]


def _covariance_update(P, C, R):
    """Covariance of p(s_t | y_1..t) from that of p(s_t | y_1..t-1), measured through C.

    Returns the filtered covariance, the gain ``K``, the Cholesky factor of the innovation
    covariance ``S`` and ``log det S``.
    """
    CP = C @ P
    L = _cholesky(CP @ C.T + R)
    K = _cho_solve(L, CP).T  # P C^T S^{-1}, with S solved, never inverted
    # Joseph form: a sum of PSD terms, so round-off cannot make the covariance indefinite.
    IKC = -(K @ C)
    IKC.flat[:: P.shape[0] + 1] += 1.0
    P_f = symmetrize(IKC @ P @ IKC.T + K @ R @ K.T)
    return P_f, K, L, 2.0 * np.log(L.diagonal()).sum()


def kalman_filter(params, X, y, *, steady_state=True):
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
    steady_state : bool, default=True
        Reuse the covariances once they have converged to round-off, within each run of
        rows that share a missing pattern, so that only the mean recursion remains (the
        result is the same up to round-off). False runs the plain recursion on every row.

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
    with _one_blas_thread(y.shape[0]):
        return _kalman_filter(params, X, y, steady_state)


def _row_codes(observed):
    """One comparable code per row of a boolean array (np.unique over rows sorts slowly)."""
    if observed.shape[1] <= 63:
        return observed @ (1 << np.arange(observed.shape[1], dtype=np.int64))
    packed = np.packbits(observed, axis=1)
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel()


def _kalman_filter(params, X, y, steady_state):
    A, C, Q, R = params.A, params.C, params.Q, params.R
    T, n = y.shape[0], params.n_states
    # Inputs enter the state and the measurement additively: fold them in once.
    Bx = X @ params.B.T
    y_minus_Dx = y - X @ params.D.T
    observed = ~np.isnan(y)
    # Each distinct missing pattern once: its measurement matrices and its memo key.
    if observed.all():  # the common case, without sorting
        first_row, pattern_of_row = [0], np.zeros(T, dtype=np.intp)
    else:
        _, first_row, pattern_of_row = np.unique(
            _row_codes(observed), return_index=True, return_inverse=True
        )
    patterns = observed[first_row]
    pattern_of_row = pattern_of_row.ravel().tolist()
    measured = [
        (o.tobytes(), o.all(), o, C[o], R[np.ix_(o, o)]) if o.any() else None
        for o in patterns
    ]
    # run_end[t]: end of the run of rows sharing row t's missing pattern.
    new_run = np.ones(T, dtype=bool)
    new_run[1:] = np.any(observed[1:] != observed[:-1], axis=1)
    run_starts = np.flatnonzero(new_run)
    run_ends = np.append(run_starts[1:], T)
    run_end = np.repeat(run_ends, run_ends - run_starts).tolist()
    new_run = new_run.tolist()

    predicted_means = np.empty((T, n))
    predicted_covariances = np.empty((T, n, n))
    filtered_means = np.empty((T, n))
    filtered_covariances = np.empty((T, n, n))
    log_likelihood = 0.0

    memo = _memo("filter", A, C, Q, R) if steady_state else _NoMemo()
    steady = {}  # missing pattern -> its steady covariances, the first ones found
    m = np.asarray(params.initial_state_mean, dtype=float)
    P = np.asarray(params.initial_state_covariance, dtype=float)
    streak = 0
    t = 0
    while t < T:
        if t > 0:
            m = A @ m + Bx[t]
            key = P.tobytes()
            P = memo.get(key)
            if P is None:
                P_f = filtered_covariances[t - 1]
                P = _remember(memo, key, symmetrize(A @ P_f @ A.T + Q))
        predicted_means[t], predicted_covariances[t] = m, P
        pattern = measured[pattern_of_row[t]]
        update = None
        if pattern is not None:
            pattern_key, all_measured, o, C_o, R_o = pattern
            key = (pattern_key, P.tobytes())
            update = memo.get(key) or _remember(memo, key, _covariance_update(P, C_o, R_o))
            e = (y_minus_Dx[t] if all_measured else y_minus_Dx[t, o]) - C_o @ m
            P, K, L, logdet = update
            m = m + K @ e
            z = dtrtrs(L, e, lower=1)[0]
            log_likelihood -= 0.5 * (e.size * _LOG_2PI + logdet + z @ z)
        filtered_means[t], filtered_covariances[t] = m, P

        if steady_state and not new_run[t]:
            P_pred = predicted_covariances[t]
            change = abs(P_pred - predicted_covariances[t - 1]).max()
            streak = streak + 1 if change <= _STEADY_RTOL * abs(P_pred).max() else 0
            if streak >= _STEADY_STREAK and run_end[t] > t + 1:
                # The first steady state found for a pattern serves all its later runs, so
                # that the gaps between them start from the same covariance, bit for bit.
                P_pred, update = steady.setdefault(pattern_of_row[t], (P_pred, update))
                stop = run_end[t]
                log_likelihood += _steady_rows(
                    params, t, stop, pattern, P_pred, update, Bx, y_minus_Dx, predicted_means,
                    predicted_covariances, filtered_means, filtered_covariances,
                )
                m, P = filtered_means[stop - 1], filtered_covariances[stop - 1]
                t, streak = stop, 0
                continue
        else:
            streak = 0
        t += 1

    return FilterResult(
        predicted_means, predicted_covariances, filtered_means, filtered_covariances,
        float(log_likelihood),
    )


def _steady_rows(params, t, stop, pattern, P_pred, update, Bx, y_minus_Dx, predicted_means,
                 predicted_covariances, filtered_means, filtered_covariances):
    """Fill rows t+1..stop-1 with the steady covariances ``P_pred`` and ``update``.

    ``pattern`` describes the rows' measured entries and ``update`` is ``(P_f, K, L,
    log det S)`` of their steady measurement update (both None for rows without
    measurements). With a constant gain ``K`` the filtered mean follows the time-invariant
    recursion ``m_f[s] = (I - K C) (A m_f[s-1] + B x_s) + K (y_s - D x_s)``, solved by
    blocks. Returns the log-likelihood of those rows.
    """
    A = params.A
    rows = slice(t + 1, stop)
    predicted_covariances[rows] = P_pred
    if update is None:
        filtered_covariances[rows] = P_pred
        F, U = A, Bx[rows]
    else:
        _, _, o, C_o, _ = pattern
        P_f, K, L, logdet = update
        filtered_covariances[rows] = P_f
        IKC = np.eye(A.shape[0]) - K @ C_o
        F = IKC @ A
        U = Bx[rows] @ IKC.T + y_minus_Dx[rows][:, o] @ K.T
    filtered_means[rows] = _linear_recursion(F, filtered_means[t], U)
    predicted_means[rows] = filtered_means[t:stop - 1] @ A.T + Bx[rows]
    if update is None:
        return 0.0
    innovations = y_minus_Dx[rows][:, o] - predicted_means[rows] @ C_o.T
    z = dtrtrs(L, innovations.T, lower=1)[0]
    n_rows, k = innovations.shape
    return -0.5 * (n_rows * (k * _LOG_2PI + logdet) + np.sum(z * z))
