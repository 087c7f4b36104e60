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
from scipy import linalg, optimize

from .._linalg import cho_factor_psd, cho_solve, nearest_psd, symmetrize
from ._compiled import complete_rows
from .filter import _as_float_arrays, kalman_filter
from .smoother import rts_smoother

__all__ = [
    "PARAM_NAMES",
    "SufficientStatistics",
    "e_step",
    "log_likelihood",
    "m_step",
    "polish",
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


def e_step(params, sequences):
    """Expected complete-data statistics under p(s | x, y) and ``log p(y | x)``.

    Parameters
    ----------
    params : StateSpaceParams
    sequences : list of (X, y) pairs
        ``X`` of shape ``(T, n_features)``, ``y`` of shape ``(T, n_targets)`` with NaN
        for missing entries.

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
    >>> new = m_step(stats, params, fixed={"A", "C"}, active_inputs=np.zeros(0, bool))
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
    for X, y in sequences:
        filtered = kalman_filter(params, X, y)
        smoothed = rts_smoother(params, filtered)
        total += filtered.log_likelihood
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


def _pair_m_step(S_ss, S_sx, S_xx, S_ys, S_yx, W_s, W_x, free_s, free_x, active):
    """Maximize over ``(W_s, W_x)`` in ``y = W_s s + W_x x``; inactive inputs keep 0."""
    W_s, W_x = W_s.copy(), W_x.copy()
    a = active
    if free_s and free_x:
        S_zz = np.block([[S_ss, S_sx[:, a]], [S_sx[:, a].T, S_xx[np.ix_(a, a)]]])
        W = _regression(S_zz, np.hstack([S_ys, S_yx[:, a]]))
        n = S_ss.shape[0]
        W_s = W[:, :n]
        W_x[:, a] = W[:, n:]
    elif free_s:
        W_s = _regression(S_ss, S_ys - W_x @ S_sx.T)
    elif free_x and a.any():
        W_x[:, a] = _regression(S_xx[np.ix_(a, a)], (S_yx - W_s @ S_sx)[:, a])
    return W_s, W_x


def m_step(stats, params, fixed, active_inputs):
    """Maximize the expected complete-data log-likelihood over the free parameters.

    Parameters
    ----------
    stats : SufficientStatistics
    params : StateSpaceParams
        Current values; the fixed ones are returned unchanged (the same arrays).
    fixed : set of str
        Names (from :data:`PARAM_NAMES`) held at their current values.
    active_inputs : ndarray of bool of shape (n_features,)
        Inputs that vary; ``B`` and ``D`` columns of the others are not estimated (their
        normal equations are singular), they keep their current values.

    Returns
    -------
    params : StateSpaceParams

    Examples
    --------
    See :func:`e_step`.
    """
    s = stats
    free = {name: name not in fixed for name in PARAM_NAMES}
    new = {}
    # (A, B) jointly, then Q at the new values: the transition's regressors are shared by
    # every state equation, so the (A, B) maximizer does not depend on Q.
    A, B = _pair_m_step(s.S_prev_prev, s.S_prev_x, s.S_xx_trans, s.S_cur_prev, s.S_cur_x,
                        params.A, params.B, free["A"], free["B"], active_inputs)
    if s.n_transitions > 0:
        if free["A"]:
            new["A"] = A
        if free["B"]:
            new["B"] = B
        if free["Q"]:
            new["Q"] = _floored(_residual_covariance(
                s.S_cur_cur, s.S_cur_prev, s.S_prev_prev, s.S_prev_x, s.S_cur_x,
                s.S_xx_trans, A, B, s.n_transitions))
    else:
        A, B = params.A, params.B
    C, D = _pair_m_step(s.S_ss, s.S_sx, s.S_xx, s.S_ys, s.S_yx, params.C, params.D,
                        free["C"], free["D"], active_inputs)
    if free["C"]:
        new["C"] = C
    if free["D"]:
        new["D"] = D
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


# --- Polishing: quasi-Newton on the exact log-likelihood ---------------------------------

_COVARIANCES = ("Q", "R", "initial_state_covariance")
# Log-likelihood gain (absolute) below which a polish iteration counts as no progress.
_NEGLIGIBLE_GAIN = 1e-2


def _expected_gradient(stats, params):
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


class _Packing:
    """Free parameters <-> one vector; covariances as log-Cholesky factors."""

    def __init__(self, params, free, active_inputs):
        self.base = params
        self.free = [name for name in PARAM_NAMES if name in free]
        self.active = active_inputs

    def _tril(self, n):
        return np.tril_indices(n)

    def pack(self, params):
        parts = []
        for name in self.free:
            value = getattr(params, name)
            if name in _COVARIANCES:
                L = cho_factor_psd(value)
                L[np.diag_indices_from(L)] = np.log(np.diag(L))
                parts.append(L[self._tril(L.shape[0])])
            elif name in ("B", "D"):
                parts.append(value[:, self.active].ravel())
            else:
                parts.append(np.ravel(value))
        return np.concatenate(parts) if parts else np.zeros(0)

    def unpack(self, theta):
        changes, i = {}, 0
        for name in self.free:
            template = getattr(self.base, name)
            if name in _COVARIANCES:
                n = template.shape[0]
                k = n * (n + 1) // 2
                L = np.zeros((n, n))
                L[self._tril(n)] = theta[i:i + k]
                L[np.diag_indices(n)] = np.exp(np.diag(L))
                changes[name] = symmetrize(L @ L.T)
            elif name in ("B", "D"):
                value = template.copy()
                k = value.shape[0] * int(self.active.sum())
                value[:, self.active] = theta[i:i + k].reshape(value.shape[0], -1)
                changes[name] = value
            else:
                k = template.size
                changes[name] = theta[i:i + k].reshape(template.shape)
            i += k
        return self.base.replace(**changes)

    def gradient(self, grads, params):
        parts = []
        for name in self.free:
            G = grads[name]
            if name in _COVARIANCES:
                L = cho_factor_psd(getattr(params, name))
                dL = 2.0 * G @ L  # d log p / dL for Σ = L L^T
                dL[np.diag_indices_from(dL)] *= np.diag(L)  # through L_ii = exp(l_ii)
                parts.append(dL[self._tril(L.shape[0])])
            elif name in ("B", "D"):
                parts.append(G[:, self.active].ravel())
            else:
                parts.append(np.ravel(G))
        return np.concatenate(parts) if parts else np.zeros(0)


def polish(params, sequences, fixed, active_inputs, *, max_iter=30, tol=1e-7, callback=None):
    """Maximize the exact log-likelihood over the free parameters by L-BFGS.

    EM's last iterations crawl when the likelihood is flat along some direction (a slow
    tail, typical of variance parameters); a quasi-Newton search started at EM's answer
    finishes in a few steps. Each evaluation is one filter + smoother pass, the gradient
    coming from Fisher's identity. The search never returns a worse point than its start,
    and it stops when two iterations in a row gain less than 0.01 in log-likelihood without
    the gains shrinking tenfold (a crawl along a flat ridge, not convergence).

    Parameters
    ----------
    params : StateSpaceParams
        The starting point (EM's answer).
    sequences : list of (X, y) pairs
    fixed : set of str
        Names held at their values.
    active_inputs : ndarray of bool of shape (n_features,)
    max_iter : int, default=30
        Most quasi-Newton iterations.
    tol : float, default=1e-7
        Stop when an iteration raises the log-likelihood by less than ``tol`` per observed
        measurement (relative to the log-likelihood per measurement when that exceeds 1).
    callback : callable, default=None
        Called as ``callback(log_likelihood)`` after each iteration that improved it.

    Returns
    -------
    params : StateSpaceParams
    log_likelihood : float
    n_iter : int
    converged : bool
        Whether the search stopped at a stationary point or on a flat ridge (not at
        ``max_iter``).

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman._kalman import StateSpaceParams
    >>> from skkalman._kalman.em import log_likelihood, polish
    >>> rng = np.random.default_rng(0)
    >>> y = np.cumsum(rng.standard_normal(50))[:, None] + rng.standard_normal((50, 1))
    >>> params = StateSpaceParams(
    ...     A=np.eye(1), B=np.zeros((1, 0)), C=np.eye(1), D=np.zeros((1, 0)),
    ...     Q=np.eye(1) * 0.3, R=np.eye(1) * 3.0, initial_state_mean=y[0],
    ...     initial_state_covariance=np.eye(1))
    >>> fixed = {"A", "C", "initial_state_mean", "initial_state_covariance"}
    >>> sequences = [(np.zeros((50, 0)), y)]
    >>> better, ll, n_iter, converged = polish(params, sequences, fixed, np.zeros(0, bool))
    >>> converged, bool(ll > log_likelihood(params, sequences))
    (True, True)
    """
    free = [name for name in PARAM_NAMES if name not in fixed]
    if params.n_features == 0 or not np.any(active_inputs):
        free = [name for name in free if name not in ("B", "D")]
    packing = _Packing(params, free, active_inputs)
    n_obs = max(sum(int(np.sum(~np.isnan(y))) for _, y in sequences), 1)
    cache = {}

    def objective(theta):
        key = theta.tobytes()
        if key not in cache:
            candidate = packing.unpack(theta)
            try:
                stats, ll = e_step(candidate, sequences)
                grad = packing.gradient(_expected_gradient(stats, candidate), candidate)
            except (linalg.LinAlgError, ValueError, FloatingPointError):
                ll, grad = -np.inf, np.zeros_like(theta)
            if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
                ll, grad = -np.inf, np.zeros_like(theta)
            cache.clear()
            cache[key] = (ll, grad)
        ll, grad = cache[key]
        # Scaled per observation so that the optimizer's tolerances mean the same for
        # short and long data.
        value = -ll / n_obs if np.isfinite(ll) else np.inf
        return value, -grad / n_obs

    theta0 = packing.pack(params)
    start_ll = -objective(theta0)[0] * n_obs
    best = {"theta": theta0, "ll": start_ll, "n_iter": 0}

    gains = []

    def step(intermediate_result):
        best["n_iter"] += 1
        ll = -intermediate_result.fun * n_obs
        gain = ll - best["ll"]
        if gain > 0:
            best["theta"], best["ll"] = intermediate_result.x.copy(), ll
            if callback is not None:
                callback(ll)
        gains.append(max(gain, 0.0))
        # Gains too small to be evidence between two models (a likelihood ratio near 1) and
        # not shrinking fast: the search crawls along a flat ridge (e.g. the directions of a
        # change of state basis) instead of converging superlinearly. Stop there.
        if (len(gains) >= 2 and gains[-2] < _NEGLIGIBLE_GAIN
                and 0.1 * gains[-2] < gains[-1] < _NEGLIGIBLE_GAIN):
            best["stalled"] = True
            raise StopIteration

    with np.errstate(over="ignore", invalid="ignore"):
        result = optimize.minimize(
            objective, theta0, jac=True, method="L-BFGS-B", callback=step,
            options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-10},
        )
    converged = bool(result.success) or best.get("stalled", False)
    return packing.unpack(best["theta"]), best["ll"], best["n_iter"], converged
