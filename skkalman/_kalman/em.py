"""Expectation-maximization for the linear-Gaussian state-space model.

The E-step runs the Kalman filter and RTS smoother over every sequence and sums the
expected complete-data statistics; the M-step maximizes the expected complete-data
log-likelihood in closed form (Shumway & Stoffer, 1982; 2017, Section 6.3-6.4). Missing
measurements are latent variables of the complete data: a missing entry ``y_u`` is
replaced by its moments given the observed entries of its row and the smoothed state,
``y_u | s_t, y_o ~ N(C_u s_t + D_u x_t + G (y_o - C_o s_t - D_o x_t), R_uu - G R_ou)`` with
``G = R_uo R_oo^{-1}``, which is Shumway & Stoffer's missing-data modification; the data
themselves enter only through their observed entries.

:func:`polish` finishes EM's slow tail with a quasi-Newton search on the exact
log-likelihood, its gradient from the same statistics (Fisher's identity: the gradient of
``log p(y)`` is the gradient of the expected complete-data log-likelihood at the current
parameters).
"""

from typing import NamedTuple

import numpy as np
from scipy import linalg

from .._linalg import cho_factor_psd, cho_solve, nearest_psd, symmetrize
from ._compiled import complete_rows
from .filter import _as_float_arrays, kalman_filter
from .smoother import rts_smoother

__all__ = [
    "PARAM_NAMES",
    "SufficientStatistics",
    "e_step",
    "log_likelihood",
    "expected_gradient",
    "m_step",
]

PARAM_NAMES = (
    "A", "B", "C", "D", "Q", "R", "initial_state_mean", "initial_state_covariance",
)

# Relative floor on the eigenvalues of estimated covariances: an M-step may drive a
# variance to zero (a degenerate maximum of the likelihood); the floor keeps the filter's
# Cholesky factorizations defined without visibly moving the estimate.
_COV_FLOOR = 1e-10


class SufficientStatistics(NamedTuple):
    """Expected complete-data sums over all sequences, given all measurements.

    ``s`` is the state, ``x`` the input, ``y`` the measurement (missing entries replaced
    by their conditional moments). Transition sums run over rows ``t >= 1`` of each
    sequence (``prev`` is row ``t-1``); measurement sums over every row.
    """

    S_prev_prev: np.ndarray  # sum E[s_{t-1} s_{t-1}^T]
    S_prev_x: np.ndarray  # sum E[s_{t-1}] x_t^T
    S_xx_trans: np.ndarray  # sum x_t x_t^T (t >= 1)
    S_cur_prev: np.ndarray  # sum E[s_t s_{t-1}^T]
    S_cur_x: np.ndarray  # sum E[s_t] x_t^T (t >= 1)
    S_cur_cur: np.ndarray  # sum E[s_t s_t^T] (t >= 1)
    n_transitions: int
    S_ss: np.ndarray  # sum E[s_t s_t^T]
    S_sx: np.ndarray  # sum E[s_t] x_t^T
    S_xx: np.ndarray  # sum x_t x_t^T
    S_ys: np.ndarray  # sum E[y_t s_t^T]
    S_yx: np.ndarray  # sum E[y_t] x_t^T
    S_yy: np.ndarray  # sum E[y_t y_t^T]
    n_rows: int
    S_first: np.ndarray  # sum over sequences of E[s_1]
    S_first_first: np.ndarray  # sum over sequences of E[s_1 s_1^T]
    n_sequences: int


def log_likelihood(params, sequences):
    """``log p(y | x)`` summed over sequences (a list of ``(X, y)`` pairs)."""
    return sum(kalman_filter(params, X, y).log_likelihood for X, y in sequences)


def _completed_measurements(params, X, y, means, covariances):
    """``E[y_t]``, and the sums of ``Cov(y_t, s_t)`` and ``Cov(y_t)`` over the rows.

    Observed entries are constants; a missing entry is predicted from the smoothed state
    and the observed entries of its row (its noise is correlated with theirs through R).
    Compiled row by row (``_compiled.complete_rows``), so that its cost stays small next
    to the filter's, on short sequences too.
    """
    m, n = params.C.shape
    y_hat = np.array(y, dtype=float)
    cov_ys = np.zeros((m, n))
    cov_yy = np.zeros((m, m))
    failed_row = complete_rows(
        *_as_float_arrays(params.C, params.D, params.R, X, y, means, covariances),
        y_hat, cov_ys, cov_yy,
    )
    if failed_row >= 0:
        raise np.linalg.LinAlgError(
            f"the covariance of the measurements observed at row {failed_row} is not "
            "positive definite"
        )
    # Only the lower triangle was accumulated: Cov(y_t) is symmetric.
    return y_hat, cov_ys, np.tril(cov_yy) + np.tril(cov_yy, -1).T


def e_step(params, sequences, filtered=None):
    """Expected complete-data statistics under p(s | x, y) and ``log p(y | x)``.

    Parameters
    ----------
    params : StateSpaceParams
    sequences : list of (X, y) pairs
        ``X`` of shape ``(T, n_features)``, ``y`` of shape ``(T, n_targets)`` with NaN
        for missing entries.
    filtered : list of FilterResult, default=None
        :func:`~skkalman._kalman.kalman_filter` of each sequence under ``params``, when
        already computed (the filter is then not run again).

    Returns
    -------
    stats : SufficientStatistics
    log_likelihood : float

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman._kalman import StateSpaceParams
    >>> from skkalman._kalman.em import e_step, m_step
    >>> params = StateSpaceParams(
    ...     A=np.eye(1), B=np.zeros((1, 0)), C=np.eye(1), D=np.zeros((1, 0)),
    ...     Q=np.eye(1), R=np.eye(1), initial_state_mean=np.zeros(1),
    ...     initial_state_covariance=np.eye(1))
    >>> y = np.array([[1.0], [np.nan], [2.0], [2.5]])
    >>> stats, ll = e_step(params, [(np.zeros((4, 0)), y)])
    >>> stats.n_transitions, stats.n_rows
    (3, 4)
    >>> new = m_step(stats, params, {"A", "C"}, np.zeros(0, bool), np.zeros(0, bool))
    >>> bool(e_step(new, [(np.zeros((4, 0)), y)])[1] >= ll)
    True
    """
    n, p, m = params.n_states, params.n_features, params.n_targets
    acc = dict(
        S_prev_prev=np.zeros((n, n)), S_prev_x=np.zeros((n, p)), S_xx_trans=np.zeros((p, p)),
        S_cur_prev=np.zeros((n, n)), S_cur_x=np.zeros((n, p)), S_cur_cur=np.zeros((n, n)),
        S_ss=np.zeros((n, n)), S_sx=np.zeros((n, p)), S_xx=np.zeros((p, p)),
        S_ys=np.zeros((m, n)), S_yx=np.zeros((m, p)), S_yy=np.zeros((m, m)),
        S_first=np.zeros(n), S_first_first=np.zeros((n, n)),
    )
    n_transitions = n_rows = 0
    total = 0.0
    for k, (X, y) in enumerate(sequences):
        filtered_k = kalman_filter(params, X, y) if filtered is None else filtered[k]
        smoothed = rts_smoother(params, filtered_k)
        total += filtered_k.log_likelihood
        M, P, P_lag = smoothed
        T = M.shape[0]
        # Sums over rows as products with ones (BLAS): several times faster than NumPy's
        # reduction over the first axis of a (T, n, n) array.
        ones = np.ones(T)
        P_sum = (ones @ P.reshape(T, n * n)).reshape(n, n)
        S_ss = P_sum + M.T @ M
        S_first_state = P[0] + np.outer(M[0], M[0])
        S_last_state = P[-1] + np.outer(M[-1], M[-1])
        acc["S_prev_prev"] += S_ss - S_last_state
        acc["S_cur_cur"] += S_ss - S_first_state
        acc["S_cur_prev"] += (ones[1:] @ P_lag[1:].reshape(T - 1, n * n)).reshape(n, n) + (
            M[1:].T @ M[:-1])
        acc["S_prev_x"] += M[:-1].T @ X[1:]
        acc["S_cur_x"] += M[1:].T @ X[1:]
        acc["S_xx_trans"] += X[1:].T @ X[1:]
        acc["S_ss"] += S_ss
        acc["S_sx"] += M.T @ X
        acc["S_xx"] += X.T @ X
        y_hat, cov_ys, cov_yy = _completed_measurements(params, X, y, M, P)
        acc["S_ys"] += y_hat.T @ M + cov_ys
        acc["S_yx"] += y_hat.T @ X
        acc["S_yy"] += y_hat.T @ y_hat + cov_yy
        acc["S_first"] += M[0]
        acc["S_first_first"] += S_first_state
        n_transitions += T - 1
        n_rows += T
    stats = SufficientStatistics(
        **acc, n_transitions=n_transitions, n_rows=n_rows, n_sequences=len(sequences)
    )
    return stats, float(total)


def _regression(S_zz, S_yz):
    """``S_yz S_zz^{-1}``: the least-squares coefficients from second-moment sums."""
    if S_zz.shape[0] == 0:
        return np.zeros((S_yz.shape[0], 0))
    try:
        return linalg.solve(S_zz, S_yz.T, assume_a="pos", check_finite=False).T
    except (linalg.LinAlgError, ValueError):
        # A regressor with no variation (e.g. a state the data never excite): the
        # minimum-norm solution leaves its coefficient at zero instead of failing.
        return linalg.lstsq(S_zz, S_yz.T, check_finite=False)[0].T


def _residual_covariance(S_yy, S_ys, S_ss, S_sx, S_yx, S_xx, W_s, W_x, count):
    """``(1/count) sum E[(y - W_s s - W_x x)(y - W_s s - W_x x)^T]`` from the sums."""
    cross = W_s @ S_ys.T + W_x @ S_yx.T
    E = (S_yy - cross - cross.T + W_s @ S_ss @ W_s.T
         + W_s @ S_sx @ W_x.T + W_x @ S_sx.T @ W_s.T + W_x @ S_xx @ W_x.T)
    return symmetrize(E) / count


def _floored(M):
    scale = max(float(np.trace(M)) / M.shape[0], np.finfo(float).tiny)
    return nearest_psd(M, floor=_COV_FLOOR * scale)


def _conditional_regression(S_zz, S_tz, W, free):
    """Maximize over the ``free`` columns of ``W`` in ``t = W z``, the others held.

    ``S_zz = sum z z^T`` and ``S_tz = sum t z^T``; the held columns' contribution is
    taken off the target first, so the answer is the exact conditional maximizer.
    """
    W = W.copy()
    if not free.any():
        return W
    held = ~free
    target = S_tz[:, free] - W[:, held] @ S_zz[np.ix_(held, free)]
    W[:, free] = _regression(S_zz[np.ix_(free, free)], target)
    return W


def m_step(stats, params, fixed, b_columns, d_columns):
    """Maximize the expected complete-data log-likelihood over the free parameters.

    Parameters
    ----------
    stats : SufficientStatistics
    params : StateSpaceParams
        Current values; the fixed ones are returned unchanged (the same arrays).
    fixed : set of str
        Names among ``A, C, Q, R, initial_state_mean, initial_state_covariance`` held at
        their current values.
    b_columns, d_columns : ndarray of bool of shape (n_features,)
        Free columns of ``B`` and of ``D``; the others keep their current values (held
        by the user, or inputs that never vary, whose normal equations are singular).

    Returns
    -------
    params : StateSpaceParams

    Examples
    --------
    See :func:`e_step`.
    """
    s = stats
    free = {name: name not in fixed for name in PARAM_NAMES}
    n = params.n_states
    new = {}
    # (A, B) jointly, then Q at the new values: the transition's regressors are shared by
    # every state equation, so the (A, B) maximizer does not depend on Q.
    if s.n_transitions > 0:
        S_zz = np.block([[s.S_prev_prev, s.S_prev_x], [s.S_prev_x.T, s.S_xx_trans]])
        W = _conditional_regression(
            S_zz, np.hstack([s.S_cur_prev, s.S_cur_x]), np.hstack([params.A, params.B]),
            np.concatenate([np.full(n, free["A"]), b_columns]))
        A, B = W[:, :n], W[:, n:]
        new["A"], new["B"] = A, B
        if free["Q"]:
            new["Q"] = _floored(_residual_covariance(
                s.S_cur_cur, s.S_cur_prev, s.S_prev_prev, s.S_prev_x, s.S_cur_x,
                s.S_xx_trans, A, B, s.n_transitions))
    S_zz = np.block([[s.S_ss, s.S_sx], [s.S_sx.T, s.S_xx]])
    W = _conditional_regression(
        S_zz, np.hstack([s.S_ys, s.S_yx]), np.hstack([params.C, params.D]),
        np.concatenate([np.full(n, free["C"]), d_columns]))
    C, D = W[:, :n], W[:, n:]
    new["C"], new["D"] = C, D
    if free["R"]:
        new["R"] = _floored(_residual_covariance(
            s.S_yy, s.S_ys, s.S_ss, s.S_sx, s.S_yx, s.S_xx, C, D, s.n_rows))
    m0 = params.initial_state_mean
    if free["initial_state_mean"]:
        m0 = new["initial_state_mean"] = s.S_first / s.n_sequences
    if free["initial_state_covariance"]:
        cross = np.outer(m0, s.S_first)
        P0 = (s.S_first_first - cross - cross.T) / s.n_sequences + np.outer(m0, m0)
        new["initial_state_covariance"] = _floored(symmetrize(P0))
    return params.replace(**new)




# --- The gradient of the exact log-likelihood (Fisher identity) --------------------------


def expected_gradient(stats, params):
    """Gradient of the expected complete-data log-likelihood at ``params``.

    By Fisher's identity this is the gradient of ``log p(y | x)`` when ``stats`` come from
    the E-step at ``params``. Covariance gradients are symmetric matrices ``G`` with
    ``d log p = tr(G dΣ)``.
    """
    s = stats
    A, B, C, D = params.A, params.B, params.C, params.D
    m0 = params.initial_state_mean
    L_Q, L_R = cho_factor_psd(params.Q), cho_factor_psd(params.R)
    L_P0 = cho_factor_psd(params.initial_state_covariance)

    def cov_grad(L, E, count):
        Si_E = cho_solve(L, E)
        Si_E_Si = cho_solve(L, Si_E.T)
        return symmetrize(0.5 * (Si_E_Si - count * cho_solve(L, np.eye(L.shape[0]))))

    E_Q = _residual_covariance(s.S_cur_cur, s.S_cur_prev, s.S_prev_prev, s.S_prev_x,
                               s.S_cur_x, s.S_xx_trans, A, B, 1.0)
    E_R = _residual_covariance(s.S_yy, s.S_ys, s.S_ss, s.S_sx, s.S_yx, s.S_xx, C, D, 1.0)
    cross = np.outer(m0, s.S_first)
    E_0 = symmetrize(s.S_first_first - cross - cross.T + s.n_sequences * np.outer(m0, m0))
    return {
        "A": cho_solve(L_Q, s.S_cur_prev - A @ s.S_prev_prev - B @ s.S_prev_x.T),
        "B": cho_solve(L_Q, s.S_cur_x - A @ s.S_prev_x - B @ s.S_xx_trans),
        "C": cho_solve(L_R, s.S_ys - C @ s.S_ss - D @ s.S_sx.T),
        "D": cho_solve(L_R, s.S_yx - C @ s.S_sx - D @ s.S_xx),
        "Q": cov_grad(L_Q, E_Q, s.n_transitions),
        "R": cov_grad(L_R, E_R, s.n_rows),
        "initial_state_mean": cho_solve(L_P0, s.S_first - s.n_sequences * m0),
        "initial_state_covariance": cov_grad(L_P0, E_0, s.n_sequences),
    }
