"""Subspace identification: a state-space estimate without iterations, to start EM.

Predictor-based subspace identification (PBSID, Chiuso 2007), with inputs:

1. A high-order ARX regression ``y_t = D' x_t + sum_{j=1..p} Phi_j (x_{t-j}, y_{t-j}) + e_t``.
   It is causal, so it stays consistent when the inputs are fed back from the outputs
   (``x_t = y_{t-1}``, the forecasting set-up). Its coefficients are the Markov parameters
   of the Kalman predictor, ``Phi_j = C Abar^{j-1} (Bbar, K)``.
2. The past-to-future map of the predictor is the block Hankel matrix of the ``Phi_j``
   (``f x p`` blocks, small); the dominant right singular directions of that map, weighted
   by the past data through its economy QR factor, give the state sequence (up to a change
   of basis). No full-size SVD and no future inputs are involved.
3. ``(C, D')`` and the innovations ``e_t`` by regressing ``y_t`` on the state and ``x_t``;
   ``(A, B')`` by regressing the next state on the state, ``x_t`` and ``e_t`` (the
   scipy/nfoursid timing ``s_{t+1} = A s_t + B' u_t``), then skkalman's timing by least
   squares: ``A B = B'``, ``D = D' - C B``.
4. ``Q`` and ``R``: the innovations form has fully correlated noises; skkalman's model has
   independent ones. Its own ``Q, R`` are found by matching the autocovariances of the
   output not explained by the inputs (autocovariance least squares).

When a regressor duplicates an input exactly (``y_{t-1}`` beside ``x_t = y_{t-1}``) the
later copy, the output lag, is dropped: the past then enters through the inputs and the
model found is the Kalman predictor's own form (``Q`` near zero, the gain in ``B``), the
one whose ``predict(X)`` forecasts well.
"""

from typing import NamedTuple

import numpy as np
from scipy import fft, linalg, signal

from .._linalg import nearest_psd, symmetrize
from .params import StateSpaceParams
from .simulate import simulate_states

__all__ = ["SubspaceCandidate", "lagged_target_columns", "predictor_form",
           "subspace_candidates", "subspace_identification"]

# Relative size below which a column of the past is taken as a linear combination of the
# others (exact duplicates arise when the inputs are lagged outputs).
_RANK_TOL = 1e-9
# Smallest starting measurement variance, relative to the innovation variance.
_NOISE_FLOOR = 0.05


def _lstsq(Z, Y):
    return linalg.lstsq(Z, Y, cond=_RANK_TOL, check_finite=False)[0]


def _covariance(E):
    return symmetrize(E.T @ E) / max(E.shape[0], 1)


def _floor(S, reference):
    # Residual covariances may vanish (a state that is an exact function of the inputs);
    # keep them positive definite, relative to the scale of the variable they belong to.
    scale = max(float(np.trace(reference)) / reference.shape[0], np.finfo(float).tiny)
    return nearest_psd(S, floor=1e-8 * scale)


def _autocovariances(residuals, n_lags):
    """``Lambda_k = E[r_{t+k} r_t^T]`` for k = 0..n_lags, over complete pairs of rows."""
    m = residuals[0].shape[1]
    sums = np.zeros((n_lags + 1, m, m))
    counts = np.zeros(n_lags + 1)
    for r in residuals:
        r = np.where(np.isnan(r), 0.0, r)  # a missing entry contributes nothing
        for k in range(min(n_lags + 1, r.shape[0])):
            sums[k] += r[k:].T @ r[: r.shape[0] - k]
            counts[k] += r.shape[0] - k
    return sums / np.maximum(counts, 1)[:, None, None]


def _noise_by_covariance_matching(A, C, Lam):
    """``Q``, ``R`` whose output autocovariances best match ``Lam`` (least squares).

    With uncorrelated noises, ``Sigma = A Sigma A^T + Q``, ``Lambda_0 = C Sigma C^T + R``
    and ``Lambda_k = C A^k Sigma C^T``: linear in ``(Q, R)`` (autocovariance least
    squares). The subspace step gives the innovations form, whose process and measurement
    noises are fully correlated; this is the model's own split of that noise.
    """
    n, m = A.shape[0], C.shape[0]
    n_lags = Lam.shape[0] - 1
    powers = [np.eye(n)]
    for _ in range(n_lags):
        powers.append(A @ powers[-1])
    columns = []
    for i, j in zip(*np.triu_indices(n), strict=True):
        E = np.zeros((n, n))
        E[i, j] = E[j, i] = 1.0
        Sigma = linalg.solve_discrete_lyapunov(A, E)
        columns.append(np.concatenate([(C @ Ak @ Sigma @ C.T).ravel() for Ak in powers]))
    for i, j in zip(*np.triu_indices(m), strict=True):
        E = np.zeros((m, m))
        E[i, j] = E[j, i] = 1.0
        columns.append(np.concatenate([E.ravel(), np.zeros(n_lags * m * m)]))
    theta = linalg.lstsq(np.column_stack(columns), Lam.ravel(), check_finite=False)[0]
    Q = np.zeros((n, n))
    Q[np.triu_indices(n)] = theta[: n * (n + 1) // 2]
    R = np.zeros((m, m))
    R[np.triu_indices(m)] = theta[n * (n + 1) // 2:]
    return symmetrize(Q + np.triu(Q, 1).T), symmetrize(R + np.triu(R, 1).T)


class _LagSums:
    """Exact sums of lagged products of ``psi_t``, for least-squares regressions on the past.

    ``block(i, d) = sum over rows t = P..T-1 of psi_{t-i} psi_{t-i-d}^T`` (summed over
    sequences, ``P = max_past``): every block of the normal equations of a regression of
    row ``t`` on ``psi_{t-1}, ..., psi_{t-p}``, for any ``p <= P``, on the same rows (so
    that the orders compare). It is the full lagged sum (by FFT) less the few products
    at the sequence's two ends, so the cost is about one pass over the data, not ``P``.
    """

    def __init__(self, sequences, max_past):
        n_psi = sequences[0].shape[1]
        self.max_past = P = max_past
        self.full = np.zeros((P + 1, n_psi, n_psi))
        self.head = np.zeros((P + 1, P + 1, n_psi, n_psi))  # [d, k]: first k products
        self.tail = np.zeros((P + 1, P + 1, n_psi, n_psi))  # [d, k]: last k products
        self.n_rows = 0
        for psi in sequences:
            T = psi.shape[0]
            if T <= P:
                continue
            self.n_rows += T - P
            n_fft = fft.next_fast_len(T + P + 1)
            F = fft.rfft(psi, n=n_fft, axis=0)
            # irfft(F_a conj(F_b))[d] = sum_s a_s b_{s-d} (zero padding: no wrap-around).
            self.full += fft.irfft(F[:, :, None] * F[:, None, :].conj(), n=n_fft,
                                   axis=0)[:P + 1]
            for d in range(P + 1):
                k = min(P, T - d)
                first = psi[d:d + k, :, None] * psi[:k, None, :]
                self.head[d, 1:k + 1] += np.cumsum(first, axis=0)
                last = psi[T - k:, :, None] * psi[T - k - d:T - d, None, :]
                self.tail[d, 1:k + 1] += np.cumsum(last[::-1], axis=0)

    def block(self, i, d):
        return self.full[d] - self.head[d, self.max_past - i - d] - self.tail[d, i]

    def moments(self, n_in, p):
        """Normal equations of ``y_t`` on ``z_t = (x_t, psi_{t-1}, ..., psi_{t-p})``.

        ``psi_t = (x_t, y_t)``; rows ``t >= max_past`` of each sequence. Returns
        ``Z^T Z``, ``Z^T y`` and ``y^T y``.
        """
        n_psi = self.full.shape[1]
        P = self.max_past
        x, yy = slice(0, n_in), slice(n_in, n_psi)
        # All blocks at once: block (i, j) of the past, i <= j, is lag d = j - i.
        i, j = np.triu_indices(p + 1)
        d = j - i
        blocks = self.full[d] - self.head[d, P - i - d] - self.tail[d, i]  # (n_blocks, n, n)
        full = np.zeros((p + 1, p + 1, n_psi, n_psi))
        full[i, j] = blocks
        full[j, i] = blocks.transpose(0, 2, 1)
        # Row/column 0 is psi_t itself: x_t enters z_t, y_t is the target.
        past = full[1:, 1:].transpose(0, 2, 1, 3).reshape(p * n_psi, p * n_psi)
        now_past = full[0, 1:].transpose(1, 0, 2).reshape(n_psi, p * n_psi)
        G = np.block([[full[0, 0][x, x], now_past[x]], [now_past[x].T, past]])
        g = np.vstack([full[0, 0][x, yy], now_past[yy].T])
        return G, g, full[0, 0][yy, yy]


def _psd_solve(G, g, keep):
    """``G^-1 g`` over the ``keep`` rows (zeros elsewhere), a pseudo-inverse if singular."""
    coef = np.zeros((G.shape[0], g.shape[1]))
    L, whiten = _square_root(G[np.ix_(keep, keep)])
    # G = L L^T, so G^-1 g = L^-T (L^-1 g) = whiten(L^+ g).
    coef[keep] = whiten(np.linalg.lstsq(L, g[keep], rcond=None)[0] if L.shape[0] != L.shape[1]
                        else linalg.solve_triangular(L, g[keep], lower=True,
                                                     check_finite=False))
    return coef


def subspace_identification(sequences, n_states, active_inputs, n_past=None):
    """Estimate the state-space matrices by predictor-based subspace identification.

    Parameters
    ----------
    sequences : list of (X, y) pairs
        ``X`` of shape ``(T, n_features)``, ``y`` of shape ``(T, n_targets)``, both
        complete (the caller interpolates missing measurements) and centred.
    n_states : int
    active_inputs : ndarray of bool of shape (n_features,)
        Input columns that vary; ``B`` and ``D`` are zero for the others.
    n_past : int, default=None
        Number ``p`` of past lags in the high-order ARX regression; None chooses it by
        Akaike's criterion among the lengths of :func:`subspace_candidates`.

    Returns
    -------
    params : StateSpaceParams or None
        None when the data hold too few rows for the requested order.

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman.datasets import make_lds
    >>> from skkalman._kalman.subspace import subspace_identification
    >>> X, y, system = make_lds(system="oscillator", n_samples=2000, random_state=0)
    >>> params = subspace_identification([(X, y[:, None])], 2, np.zeros(0, bool))
    >>> np.round(np.sort(np.abs(np.linalg.eigvals(params.A))), 2)
    array([0.95, 0.95])
    """
    found = subspace_candidates(sequences, n_states, active_inputs,
                                n_pasts=None if n_past is None else [n_past])
    if not found:
        return None
    return min(found, key=lambda candidate: candidate.aic).params


class SubspaceCandidate(NamedTuple):
    """One subspace estimate: its past length, the ARX fit's AIC, the model."""

    n_past: int
    aic: float
    params: StateSpaceParams


# Past lengths tried (those the data support: ten rows per ARX regressor at least).
_PASTS = (5, 10, 20, 40, 80, 160, 250)


def subspace_candidates(sequences, n_states, active_inputs, n_pasts=None):
    """One subspace estimate per length of the past, sharing one pass over the data.

    The past must be as long as the slowest mode's memory (a mode at 0.99 needs well over
    a hundred lags) but no longer than the data support; Akaike's criterion on the ARX
    step favours short pasts (a slow mode adds little to one-step prediction), so the
    estimator scores the candidates by the model's own likelihood instead.

    Returns
    -------
    candidates : list of SubspaceCandidate
    """
    n_targets = sequences[0][1].shape[1]
    a = np.asarray(active_inputs, dtype=bool)
    n_in = int(a.sum())
    n_psi = n_in + n_targets
    f_min = int(np.ceil(n_states / n_targets))
    psi = [np.hstack([X[:, a], y]) for X, y in sequences]
    n_rows = sum(len(p_k) for p_k in psi)
    if n_pasts is None:
        most = min(max(_PASTS), n_rows // (10 * n_psi) - 1)
        n_pasts = sorted({max(f_min + 1, c) for c in _PASTS if max(f_min + 1, c) <= most})
    n_pasts = [p for p in n_pasts
               if sum(max(len(p_k) - p, 0) for p_k in psi) >= max(5 * (p * n_psi + n_in),
                                                                  20)]
    if not n_pasts:
        return []
    sums = _LagSums(psi, max(n_pasts))
    # An input that repeats a target one step back (x_t = y_{t-1}) duplicates that lag
    # of the past: the past's copy is dropped, so the past enters through the input.
    duplicates = lagged_target_columns([(X[:, a], y) for X, y in sequences])
    found = []
    for p in n_pasts:
        # 1. High-order ARX: y_t = D' x_t + sum_j Phi_j psi_{t-j} + e_t, a causal
        # regression (consistent even when inputs are fed back from outputs). Every
        # length is fitted on the same rows (those with the longest past).
        G, g, S_yy = sums.moments(n_in, p)
        keep = np.ones(G.shape[0], dtype=bool)
        for k in duplicates:
            keep[n_in + n_in + k] = False  # lag 1 of target k
        coef = _psd_solve(G, g, keep)
        resid = symmetrize(S_yy - g.T @ coef) / sums.n_rows
        sign, logdet = np.linalg.slogdet(resid)
        if sign <= 0:
            continue
        aic = sums.n_rows * logdet + 2 * n_targets * int(keep.sum())
        params = _realization(sequences, psi, a, n_states, p, G[n_in:, n_in:], coef)
        found.append(SubspaceCandidate(p, float(aic), params))
    return found


def _square_root(G):
    """A factor ``L`` with ``G = L L^T``, and ``M -> L^-T M`` (a pseudo-inverse if singular).

    Cholesky when ``G`` is positive definite; an eigendecomposition otherwise (duplicated
    regressors, e.g. an input that repeats a lagged target, make the past singular).
    """
    try:
        L = linalg.cholesky(G, lower=True, check_finite=False)
        if np.min(np.abs(np.diag(L))) > np.sqrt(_RANK_TOL) * np.max(np.abs(np.diag(L))):
            return L, lambda M: linalg.solve_triangular(L, M, lower=True, trans="T",
                                                        check_finite=False)
    except linalg.LinAlgError:
        pass
    w, V = np.linalg.eigh(0.5 * (G + G.T))
    ok = w > _RANK_TOL * max(w.max(initial=0.0), np.finfo(float).tiny)
    return V[:, ok] * np.sqrt(w[ok]), lambda M: (V[:, ok] / np.sqrt(w[ok])) @ M


def _realization(sequences, psi, a, n_states, p, G_past, coef):
    """Steps 2-6 of subspace identification from the ARX coefficients of past length p."""
    n_features = sequences[0][0].shape[1]
    n_targets = sequences[0][1].shape[1]
    n_in = int(a.sum())
    n_psi = n_in + n_targets
    f_min = int(np.ceil(n_states / n_targets))
    Phi = coef[n_in:].T.reshape(n_targets, p, n_psi).transpose(1, 0, 2)  # Phi[j-1] (m, n_psi)

    # 2. Phi_j = C Abar^{j-1} [Bbar K]: the past-to-future map of the predictor is the
    # block Hankel matrix of the Phi_j; its dominant right singular subspace, weighted by
    # the past's covariance (a square root W of it), is the state.
    f = max(f_min + 1, p // 2)
    k, i = np.meshgrid(np.arange(f), np.arange(p), indexing="ij")
    blocks = np.where((k + i < p)[..., None, None], Phi[np.minimum(k + i, p - 1)], 0.0)
    H = blocks.transpose(0, 2, 1, 3).reshape(f * n_targets, p * n_psi)
    root, whiten = _square_root(G_past)  # past covariance = root @ root.T
    U, sv, Vt = linalg.svd(H @ root, full_matrices=False, check_finite=False)
    n = min(n_states, sv.size)
    # State estimates s_t = W^T past_t (whitened past, projected), with a balanced
    # scaling (any basis would do; this one keeps the states of order one).
    W = np.zeros((p * n_psi, n_states))
    W[:, :n] = whiten(Vt[:n].T) * np.sqrt(sv[:n] / max(sv[0], 1e-300))
    # s_t = sum_j W_j^T psi_{t-j}: a filter over the past, by FFT per input channel.
    kernels = W.reshape(p, n_psi, n_states)
    parts = []
    for k, (X, y) in enumerate(sequences):
        length = y.shape[0]
        if length <= p:
            continue
        states_k = np.zeros((length - p, n_states))
        for c in range(n_psi):
            # full[t] = sum_j kernel[j] psi[t - j]; the past of row t starts at lag 1.
            full = signal.fftconvolve(psi[k][:, c, None], kernels[:, c, :], axes=0)
            states_k += full[p - 1:length - 1]
        t = np.arange(p, length)
        parts.append((np.column_stack([np.full(length - p, k), t]), y[t], X[t][:, a],
                      states_k))
    index, y_now, x_now, states = (np.vstack(column) for column in zip(*parts, strict=True))

    # 3. Measurement equation (standard timing: y_t = C s'_t + D' x_t + e_t).
    Zm = np.hstack([states, x_now])
    Wm = _lstsq(Zm, y_now)
    C = Wm[:n_states].T
    D_std = Wm[n_states:].T
    e = y_now - Zm @ Wm
    R = _floor(_covariance(e), _covariance(y_now))

    # 4. State equation over consecutive rows: s'_{t+1} = A s'_t + B' x_t + K e_t.
    nxt = np.flatnonzero((index[1:, 0] == index[:-1, 0]) & (index[1:, 1] == index[:-1, 1] + 1))
    A = np.zeros((n_states, n_states))
    B_std = np.zeros((n_states, n_in))
    Q = np.eye(n_states)
    if nxt.size > 2 * n_states + n_in + n_targets:
        Zs = np.hstack([states[nxt], x_now[nxt], e[nxt]])
        Ws = _lstsq(Zs, states[nxt + 1])
        A = Ws[:n_states].T
        B_std = Ws[n_states:n_states + n_in].T
        K = Ws[n_states + n_in:].T
        Q = _floor(K @ R @ K.T, _covariance(states))

    # 5. To skkalman's timing (x_t acts on s_t): A B = B', D = D' - C B.
    B = np.zeros((n_states, n_features))
    D = np.zeros((n_targets, n_features))
    if n_in:
        B[:, a] = _lstsq(A, B_std)
        D[:, a] = D_std - C @ B[:, a]
        states = states + x_now @ B[:, a].T
    # 6. Q and R by matching the autocovariances of the output not explained by the
    # inputs (possible for stable A); the innovations-form split is the fallback.
    if np.max(np.abs(np.linalg.eigvals(A)), initial=0.0) < 0.995:
        residuals = []
        for X, y in sequences:
            Bx = X @ B.T
            S = simulate_states(A, Bx[0], Bx)  # from rest: s_0 = B x_0
            residuals.append(y - S @ C.T - X @ D.T)
        Lam = _autocovariances(residuals, max(f, 2))
        Q_cm, R_cm = _noise_by_covariance_matching(A, C, Lam)
        # A negative or vanishing eigenvalue (sampling error, or a noise split the
        # autocovariances hardly constrain) is lifted to a fraction of the innovation
        # variance, not to zero: the maximization starts inside the model, where neither
        # noise is ruled out (EM cannot revive a variance it starts at zero, and in
        # log-Cholesky coordinates the search could only crawl back).
        innovation = R
        R = nearest_psd(R_cm, floor=_NOISE_FLOOR * np.trace(innovation) / n_targets)
        Q = nearest_psd(Q_cm, floor=1e-3 * max(np.linalg.eigvalsh(Q_cm)[-1], 0.0))
        Q = _floor(Q, _covariance(states))
    m0 = states.mean(axis=0)
    P0 = nearest_psd(_covariance(states - m0) + Q, floor=1e-8)
    return StateSpaceParams(A=A, B=B, C=C, D=D, Q=Q, R=R, initial_state_mean=m0,
                            initial_state_covariance=P0)


def lagged_target_columns(sequences):
    """Input columns that repeat a target one step back (the forecasting set-up).

    Returns a dict ``{k: (j, c)}``: column ``j`` of ``X`` at row ``t`` equals ``c`` times
    target ``k`` at row ``t - 1`` in every sequence (``c`` absorbs a change of units).
    Targets without such a column are absent.
    """
    n_features = sequences[0][0].shape[1]
    n_targets = sequences[0][1].shape[1]
    found = {}
    for k in range(n_targets):
        for j in range(n_features):
            if j in {col for col, _ in found.values()}:
                continue
            ratios, matches = [], True
            for X, y in sequences:
                prev, now = y[:-1, k], X[1:, j]
                seen = ~np.isnan(prev)
                if not seen.any():
                    continue
                nonzero = seen & (prev != 0)
                if nonzero.any():
                    i = np.flatnonzero(nonzero)[0]
                    ratios.append(now[i] / prev[i])
                c = ratios[0] if ratios else 1.0
                if not np.array_equal(now[seen], c * prev[seen]):
                    matches = False
                    break
            # (A zero column repeats every target times zero: it is no copy.)
            if (matches and ratios and ratios[0] != 0 and np.isfinite(ratios[0])
                    and np.all(np.asarray(ratios) == ratios[0])):
                found[k] = (j, ratios[0])
                break
    return found


def predictor_form(base, lagged):
    """The steady-state Kalman predictor of ``base``, in the forecasting set-up.

    When every target's previous value is an input (``lagged``, from
    :func:`lagged_target_columns`), the model that makes ``predict(X)`` the optimal
    one-step forecast is the steady-state Kalman predictor, in skkalman's timing
    ``z_t = A (I - K C) z_{t-1} + A K y_{t-1}``, ``y_t = C z_t + e_t`` with ``Cov(e_t)``
    the innovation covariance. ``base`` is a subspace fit of the measurements on the other
    (exogenous) inputs; ``K`` comes from the discrete algebraic Riccati equation.
    Without this, the likelihood cannot tell the predictor from models that carry the
    past through a near-direct path, whose ``predict`` fails at sequence starts.

    Returns
    -------
    params : StateSpaceParams or None
        None when the Riccati equation fails.
    """
    A, C, Q, R = base.A, base.C, base.Q, base.R
    try:
        P = linalg.solve_discrete_are(A.T, C.T, Q, R)
        S = symmetrize(C @ P @ C.T + R)
        K = linalg.solve(S, C @ P, assume_a="pos").T
    except (linalg.LinAlgError, ValueError):
        return None
    if not np.all(np.isfinite(K)):
        return None
    A_p = A @ (np.eye(A.shape[0]) - K @ C)
    B = base.B.copy()
    D = base.D.copy()
    for k, (j, c) in lagged.items():
        B[:, j] = (A @ K)[:, k] / c
        D[:, j] = 0.0
    drive = (A @ K) @ S @ (A @ K).T
    # The predictor's state is a function of the inputs (Q = 0); EM needs a variance to
    # start from, so a small one.
    Q_p = nearest_psd(1e-3 * drive, floor=1e-6 * max(np.trace(drive) / A.shape[0], 1e-12))
    P0 = nearest_psd(linalg.solve_discrete_lyapunov(A_p, drive) + Q_p, floor=1e-8)
    return StateSpaceParams(A=A_p, B=B, C=C, D=D, Q=Q_p, R=S,
                            initial_state_mean=np.zeros(A.shape[0]),
                            initial_state_covariance=P0)
