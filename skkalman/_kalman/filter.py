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
# Covariance steps are deterministic functions of their inputs, and the same inputs recur
# bit for bit: every sequence starts from the same prior, and every gap in a steady stretch
# starts from the same steady state. Steps already taken are remembered, for the few most
# recent parameter sets and within a memory budget each. A remembered step returns exactly
# what computing it would, so results never depend on what was remembered.
_MEMO_PARAMETER_SETS = 4
_MEMO_BYTES = 16 * 2**20
_memos = OrderedDict()
_memos_lock = threading.Lock()


class _Memo(dict):
    """Remembered covariance steps of one kernel for one parameter set."""

    def __init__(self, capacity):
        super().__init__()
        self.capacity = capacity


def _memo(kind, *arrays):
    """The remembered covariance steps for one kind of kernel and parameter set."""
    key = (kind,) + tuple((a.shape, a.tobytes()) for a in arrays)
    with _memos_lock:
        memo = _memos.get(key)
        if memo is None:
            # A step keeps a few matrices of at most (n_states + n_targets)^2 entries
            # (measured: ~1 KB a step for 4 states and 2 targets).
            size = sum(a.shape[0] for a in arrays[:2])
            memo = _memos[key] = _Memo(capacity=_MEMO_BYTES // (24 * size**2 + 512))
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

    capacity = 0


def _remember(memo, key, value):
    if len(memo) < memo.capacity:
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

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman._kalman import StateSpaceParams, kalman_filter
    >>> params = StateSpaceParams(
    ...     A=np.eye(1), B=np.zeros((1, 0)), C=np.eye(1), D=np.zeros((1, 0)),
    ...     Q=np.eye(1), R=np.eye(1), initial_state_mean=np.zeros(1),
    ...     initial_state_covariance=np.eye(1))
    >>> result = kalman_filter(params, np.zeros((4, 0)), np.ones((4, 1)))
    >>> result.filtered_covariances.shape
    (4, 1, 1)
    """

    predicted_means: np.ndarray
    predicted_covariances: np.ndarray
    filtered_means: np.ndarray
    filtered_covariances: np.ndarray
    log_likelihood: float


def _linear_recursion(F, z0, U):
    """Solve ``z_i = F z_{i-1} + u_i`` for ``i = 0..n_rows-1`` from ``z_{-1} = z0``.

    A time-invariant linear recursion, evaluated by recursive doubling: after the pass
    with shift ``s``, ``z_i`` holds the sum over its last ``2 s`` inputs, so ``log2(n_rows)``
    products with the powers ``F^s`` replace ``n_rows`` steps. The result is the
    step-by-step one up to round-off (the same terms, grouped differently).

    Parameters
    ----------
    F : ndarray of shape (n, n)
    z0 : ndarray of shape (n,)
    U : ndarray of shape (n_rows, n)

    Returns
    -------
    Z : ndarray of shape (n_rows, n)
    """
    Z = U.copy()
    if Z.shape[0] == 0:
        return Z
    Z[0] += F @ z0
    power = F
    shift = 1
    while shift < Z.shape[0]:
        # The right-hand side is evaluated in full before the in-place update.
        Z[shift:] += Z[:-shift] @ power.T
        power = power @ power
        shift *= 2
    return Z


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


def _covariance_update(P, C, R, o):
    """Covariance of p(s_t | y_1..t) from that of p(s_t | y_1..t-1), measured through C.

    ``C`` and ``R`` are those of the measured entries ``o`` (a boolean mask). Returns the
    filtered covariance and the row's :class:`_Gain`.
    """
    CP = C @ P
    L = _cholesky(CP @ C.T + R)
    K = _cho_solve(L, CP).T  # P C^T S^{-1}, with S solved, never inverted
    # Joseph form: a sum of PSD terms, so round-off cannot make the covariance indefinite.
    IKC = -(K @ C)
    IKC.flat[:: P.shape[0] + 1] += 1.0
    P_f = symmetrize(IKC @ P @ IKC.T + K @ R @ K.T)
    # Padded to all entries (zero gain, unit factor on the missing ones), so that rows
    # with different missing patterns stack into one array.
    K_full = np.zeros((P.shape[0], o.size))
    K_full[:, o] = K
    L_full = np.eye(o.size)
    L_full[np.ix_(o, o)] = L
    gain = _Gain(IKC, K_full, L_full, 2.0 * np.log(L.diagonal()).sum(), K.shape[1])
    return P_f, gain


class _Gain(NamedTuple):
    """A row's measurement update on the means: ``m_f = IKC m_p + K (y - D x)``, and the
    whitening of its innovation, all padded to every entry of ``y``."""

    IKC: np.ndarray  # I - K C, (n, n)
    K: np.ndarray  # (n, n_targets), zero on missing entries
    L: np.ndarray  # Cholesky factor of S, (n_targets, n_targets), unit on missing entries
    logdet: float  # log det S over the measured entries
    n_measured: int


def _no_gain(n, m):
    """The gain of a row without measurements."""
    return _Gain(np.eye(n), np.zeros((n, m)), np.eye(m), 0.0, 0)


def _varying_recursion(F, z0, U, sequential=False):
    """Solve ``z_i = F_i z_{i-1} + u_i`` for ``i = 0..n_rows-1`` from ``z_{-1} = z0``.

    A time-varying linear recursion, evaluated by recursive doubling: after the pass with
    shift ``s``, ``z_i`` holds the sum over the last ``2 s`` inputs and ``F_i`` the product
    of the last ``2 s`` matrices, so ``log2(n_rows)`` array products replace ``n_rows``
    steps. The result is the step-by-step one up to round-off (the same products, grouped
    differently). ``sequential=True`` takes the steps one by one (the reference).

    Parameters
    ----------
    F : ndarray of shape (n_rows, n, n)
    z0 : ndarray of shape (n,)
    U : ndarray of shape (n_rows, n)
    sequential : bool, default=False

    Returns
    -------
    Z : ndarray of shape (n_rows, n)
    """
    n_rows = U.shape[0]
    if sequential or n_rows <= 4:
        Z = np.empty_like(U)
        z = z0
        for i in range(n_rows):
            z = F[i] @ z + U[i]
            Z[i] = z
        return Z
    Z = U.copy()
    Z[0] += F[0] @ z0
    F = F.copy()
    shift = 1
    while shift < n_rows:
        # Right-hand sides are evaluated in full before the in-place updates.
        Z[shift:] += (F[shift:] @ Z[:-shift, :, None])[..., 0]
        F[shift:] = F[shift:] @ F[:-shift]
        shift *= 2
    return Z


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
        result is the same up to round-off). False runs the plain recursion on every row,
        the means one step at a time: the reference the fast path is tested against.

    Returns
    -------
    result : FilterResult
        Predicted and filtered means and covariances, and the log-likelihood.

    Notes
    -----
    Two passes. The first runs the covariance recursion row by row (Joseph-form updates,
    Cholesky solves); it does not depend on the values of ``y``, only on which entries
    are missing, and it converges: once the predicted covariance has stopped changing
    (relative change below 1e-14 on 5 rows in a row) the rest of the run of rows with the
    same missing pattern gets the converged covariances and gain. Steps already computed
    are remembered for reuse by later gaps and later sequences with the same parameters.
    The second pass computes the means and the log-likelihood, vectorized: given the
    gains, the filtered means follow a linear recursion, solved by recursive doubling.

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
    T, n, m = y.shape[0], params.n_states, params.n_targets
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
        (o.tobytes(), o, C[o], R[np.ix_(o, o)]) if o.any() else None for o in patterns
    ]
    # run_end[t]: end of the run of rows sharing row t's missing pattern.
    new_run = np.ones(T, dtype=bool)
    new_run[1:] = np.any(observed[1:] != observed[:-1], axis=1)
    run_starts = np.flatnonzero(new_run)
    run_ends = np.append(run_starts[1:], T)
    run_end = np.repeat(run_ends, run_ends - run_starts).tolist()
    new_run = new_run.tolist()

    # Pass 1, row by row: the covariances (they do not depend on the values of y) and each
    # row's gain; steady stretches are filled at once and kept aside for pass 2.
    predicted_covariances = np.empty((T, n, n))
    filtered_covariances = np.empty((T, n, n))
    gains = [None] * T
    steady_stretches = []  # (t, stop, gain): rows t+1..stop-1 copy row t
    memo = _memo("filter", A, C, Q, R) if steady_state else _NoMemo()
    steady = {}  # missing pattern -> its steady state, the first one found
    no_gain = _no_gain(n, m)
    P = np.asarray(params.initial_state_covariance, dtype=float)
    streak = 0
    t = 0
    while t < T:
        if t > 0:
            key = P.tobytes()
            P_f = P
            P = memo.get(key)
            if P is None:
                P = _remember(memo, key, symmetrize(A @ P_f @ A.T + Q))
        predicted_covariances[t] = P
        pattern = measured[pattern_of_row[t]]
        gain = no_gain
        if pattern is not None:
            pattern_key, o, C_o, R_o = pattern
            key = (pattern_key, P.tobytes())
            update = memo.get(key) or _remember(
                memo, key, _covariance_update(P, C_o, R_o, o)
            )
            P, gain = update
        filtered_covariances[t] = P
        gains[t] = gain

        if steady_state and not new_run[t]:
            P_pred = predicted_covariances[t]
            change = abs(P_pred - predicted_covariances[t - 1]).max()
            streak = streak + 1 if change <= _STEADY_RTOL * abs(P_pred).max() else 0
            if streak >= _STEADY_STREAK and run_end[t] > t + 1:
                # The first steady state found for a pattern serves all its later runs, so
                # that the gaps between them start from the same covariance, bit for bit.
                P_pred, P, gain = steady.setdefault(pattern_of_row[t], (P_pred, P, gain))
                stop = run_end[t]
                predicted_covariances[t + 1:stop] = P_pred
                filtered_covariances[t + 1:stop] = P
                steady_stretches.append((t, stop, gain))
                t, streak = stop, 0
                continue
        else:
            streak = 0
        t += 1

    # Pass 2: the means and the likelihood, a time-varying linear recursion over the
    # transient rows and a time-invariant one over each steady stretch.
    predicted_means = np.empty((T, n))
    filtered_means = np.empty((T, n))
    y_measured = np.where(observed, y_minus_Dx, 0.0)
    m0 = np.asarray(params.initial_state_mean, dtype=float)
    log_likelihood = 0.0
    start = 0
    for t, stop, gain in [*steady_stretches, (T, T, None)]:
        if start < min(t + 1, T):
            log_likelihood += _transient_rows(
                params, start, min(t + 1, T), gains, m0, Bx, y_measured, observed,
                predicted_means, filtered_means, sequential=not steady_state,
            )
        if t < T:
            log_likelihood += _steady_rows(
                params, t, stop, gain, Bx, y_measured, observed, predicted_means,
                filtered_means,
            )
        start = stop

    return FilterResult(
        predicted_means, predicted_covariances, filtered_means, filtered_covariances,
        float(log_likelihood),
    )


def _transient_rows(params, start, stop, gains, m0, Bx, y_measured, observed,
                    predicted_means, filtered_means, sequential):
    """Means of rows start..stop-1, each with its own gain. Returns their log-likelihood.

    ``m_f[t] = IKC_t (A m_f[t-1] + B x_t) + K_t (y_t - D x_t)``: a time-varying linear
    recursion in the filtered mean, started from the prior at the first row.
    """
    A = params.A
    rows = slice(start, stop)
    row_gains = gains[rows]
    IKC = np.stack([g.IKC for g in row_gains])
    K = np.stack([g.K for g in row_gains])
    F = IKC @ A
    drift = Bx[rows].copy()
    if start == 0:
        # The prior mean stands for A m_f[-1] + B x_0 at the first row.
        drift[0] = m0
        z0 = np.zeros_like(m0)
    else:
        z0 = filtered_means[start - 1]
    U = (IKC @ drift[:, :, None])[..., 0] + (K @ y_measured[rows, :, None])[..., 0]
    filtered_means[rows] = _varying_recursion(F, z0, U, sequential=sequential)
    predicted_means[rows] = drift
    first = start + (start == 0)
    predicted_means[first:stop] += filtered_means[first - 1:stop - 1] @ A.T
    # Rows without measurements: the filtered mean is the predicted one, bit for bit.
    skipped = np.array([g.n_measured == 0 for g in row_gains])
    filtered_means[rows][skipped] = predicted_means[rows][skipped]

    n_measured = sum(g.n_measured for g in row_gains)
    if n_measured == 0:
        return 0.0
    innovations = np.where(
        observed[rows], y_measured[rows] - predicted_means[rows] @ params.C.T, 0.0
    )
    # One batched solve for all rows (L is triangular; a general solve is as exact).
    L = np.stack([g.L for g in row_gains])
    z = np.linalg.solve(L, innovations[:, :, None])
    logdet = sum(g.logdet for g in row_gains)
    return -0.5 * (n_measured * _LOG_2PI + logdet + np.sum(z * z))


def _steady_rows(params, t, stop, gain, Bx, y_measured, observed, predicted_means,
                 filtered_means):
    """Means of rows t+1..stop-1, which share the steady gain of row t. Returns their
    log-likelihood.

    With a constant gain the filtered mean follows the time-invariant recursion
    ``m_f[s] = IKC (A m_f[s-1] + B x_s) + K (y_s - D x_s)``, solved by recursive doubling.
    """
    A = params.A
    rows = slice(t + 1, stop)
    if gain.n_measured == 0:
        F, U = A, Bx[rows]
    else:
        F = gain.IKC @ A
        U = Bx[rows] @ gain.IKC.T + y_measured[rows] @ gain.K.T
    filtered_means[rows] = _linear_recursion(F, filtered_means[t], U)
    if gain.n_measured == 0:
        predicted_means[rows] = filtered_means[rows]  # no update: the same, bit for bit
        return 0.0
    predicted_means[rows] = filtered_means[t:stop - 1] @ A.T + Bx[rows]
    innovations = np.where(
        observed[rows], y_measured[rows] - predicted_means[rows] @ params.C.T, 0.0
    )
    z = dtrtrs(gain.L, innovations.T, lower=1)[0]
    return -0.5 * ((stop - t - 1) * (gain.n_measured * _LOG_2PI + gain.logdet)
                   + np.sum(z * z))
