"""The model's starting point: subspace identification, or moment and random guesses.

Everything here works in the estimator's internal units (standardized inputs and
measurements) on a list of ``(X, y)`` sequences; held parameters are applied by the
caller afterwards.
"""

import numpy as np

from .._linalg import nearest_psd
from .em import log_likelihood
from .params import StateSpaceParams
from .realization import real_modal_form
from .subspace import predictor_form, subspace_candidates

__all__ = ["initial_params", "split_start"]


def initial_params(sequences, n_states, active_inputs, *, init="subspace", basis_given=False,
                   C_given=None, lagged=None, rng=None, n_starts=1):
    """Starting points for the maximization, the likeliest first.

    Parameters
    ----------
    sequences : list of (X, y) pairs
    n_states : int
    active_inputs : ndarray of bool of shape (n_features,)
        Inputs that vary (the others get zero ``B`` and ``D`` columns).
    init : {"subspace", "random"}, default="subspace"
        ``"subspace"``: predictor-based subspace identification (or, when every target's
        previous value is an input, the steady-state Kalman predictor of a subspace fit);
        ``"random"``: a random stable ``A`` and random ``C``, drawn from ``rng``.
    basis_given : bool, default=False
        Whether a held ``A`` or ``C`` fixes the state's basis; subspace identification
        would pick another one, so the moment guesses are used instead.
    C_given : ndarray of shape (n_targets, n_states), default=None
        A held ``C``: the noise guesses are then read in its units.
    lagged : dict, default=None
        ``{target: (column, factor)}`` when every target's previous value is an input
        (see :func:`~skkalman._kalman.subspace.lagged_target_columns`): the start is then
        the steady-state Kalman predictor.
    rng : numpy.random.RandomState, default=None
        For ``init="random"``.
    n_starts : int, default=1
        Most starts returned: subspace identification gives one per length of the past,
        ranked by their log-likelihood; the other inits give one.

    Returns
    -------
    starts : list of StateSpaceParams
    predictor_lags : dict or None
        When the start is the steady-state Kalman predictor (every target's previous
        value is an input), ``{target: (column, factor)}`` of the lag columns; else None.
    """
    n_features = sequences[0][0].shape[1]
    n_targets = sequences[0][1].shape[1]
    if init == "subspace" and not basis_given:
        # Subspace identification regresses on long windows of the past, which scattered
        # missing entries would nearly all touch: it runs on interpolated measurements
        # (a start only; the likelihood uses the observed entries alone). One estimate
        # per length of the past; the start is the one the data find likeliest.
        filled = [(X, _interpolated(y)) for X, y in sequences]
        if lagged:
            exogenous = np.asarray(active_inputs, dtype=bool).copy()
            exogenous[[j for j, _ in lagged.values()]] = False
            found = [predictor_form(c.params, lagged)
                     for c in subspace_candidates(filled, n_states, exogenous)]
        else:
            found = [c.params for c in subspace_candidates(filled, n_states, active_inputs)]
        ranked = _ranked([params for params in found if params is not None], sequences)
        if ranked:
            return ranked[:n_starts], lagged or None
    y = np.vstack([y for _, y in sequences])
    variance = np.nanvar(y, axis=0)
    variance = np.where(np.isfinite(variance) & (variance > 0), variance, 1.0)
    if init == "random" and not basis_given:
        U, _ = np.linalg.qr(rng.standard_normal((n_states, n_states)))
        A = U @ np.diag(rng.uniform(0.3, 0.9, n_states)) @ U.T
        C = rng.standard_normal((n_targets, n_states)) / np.sqrt(n_states)
    else:
        # Moment guesses, deterministic: a slowly decaying state read by the leading
        # principal directions of y.
        A = 0.9 * np.eye(n_states)
        y0 = np.where(np.isnan(y), np.nanmean(y, axis=0), y)
        _, s, Vt = np.linalg.svd(y0 - y0.mean(axis=0), full_matrices=False)
        C = np.zeros((n_targets, n_states))
        k = min(n_states, Vt.shape[0])
        C[:, :k] = Vt[:k].T * (s[:k] / np.sqrt(y0.shape[0]) + 1e-3)
    if C_given is not None:
        C = C_given
    # Noise guesses in the state's own units (a held C sets them): half the variance of
    # the state's steps, read off y by least squares.
    y_mean = np.nanmean(y, axis=0)
    states = [np.linalg.lstsq(C, np.where(np.isnan(y_k), y_mean, y_k).T, rcond=None)[0].T
              for _, y_k in sequences]
    S = np.vstack(states)
    steps = np.vstack([np.diff(S_k, axis=0) for S_k in states])
    if steps.shape[0] == 0:  # sequences of one row: no steps to measure
        steps = S - S.mean(axis=0)
    Q = 0.5 * np.atleast_2d(np.cov(steps, rowvar=False, bias=True))
    Q = nearest_psd(Q, floor=1e-3 * max(np.trace(Q) / n_states, 1e-12))
    P0 = nearest_psd(np.atleast_2d(np.cov(S, rowvar=False, bias=True)),
                     floor=1e-3 * max(np.trace(Q) / n_states, 1e-12))
    return [StateSpaceParams(
        A=A, B=np.zeros((n_states, n_features)), C=C,
        D=np.zeros((n_targets, n_features)), Q=Q, R=np.diag(0.5 * variance),
        initial_state_mean=S.mean(axis=0), initial_state_covariance=P0,
    )], None


def _ranked(candidates, sequences):
    """The candidates with a finite log-likelihood, likeliest first."""
    scored = []
    for params in candidates:
        try:
            ll = log_likelihood(params, sequences)
        except (np.linalg.LinAlgError, ValueError):
            continue
        if np.isfinite(ll):
            scored.append((ll, params))
    return [params for _, params in sorted(scored, key=lambda pair: -pair[0])]


def _interpolated(y):
    """``y`` with each column's missing entries linearly interpolated (held at the ends)."""
    missing = np.isnan(y)
    if not missing.any():
        return y
    y = y.copy()
    rows = np.arange(y.shape[0])
    for j in range(y.shape[1]):
        seen = ~missing[:, j]
        if seen.any():
            y[~seen, j] = np.interp(rows[~seen], rows[seen], y[seen, j])
        else:
            y[:, j] = 0.0  # never measured in this sequence: its (centred) mean
    return y


# A real mode faster than this, next to one at least this slow, may be a state the search
# spent on noise while it merged two slow modes into one (see :func:`split_start`).
_FAST_MODE = 0.6
# The split-off copy's eigenvalue sits this far below the slow mode's.
_SPLIT_GAP = 0.01


def split_start(params):
    """A start that splits the slowest real mode of ``params`` in two, in place of its
    fastest real mode; None where ``params`` has no such pair.

    A maximum of the likelihood can merge two close slow modes into one and spend the
    freed state on a fast mode that only whitens the noise (on a random 6-state system
    with real modes at 0.966 and 0.976, such a maximum lies 16 nats below the one that
    keeps both). No subspace start need lead out of it; this start does: in the modal
    basis, the fast mode's state becomes a copy of the slow one's (its eigenvalue
    ``_SPLIT_GAP`` lower, the same noise and prior, the two sharing the slow mode's
    measurement loading half and half), as split-and-merge EM does for mixtures (Ueda et
    al., 2000). The caller keeps it only if it climbs higher.
    """
    modal = real_modal_form(params.A, params.C, params.B)
    T = modal.basis
    if not np.linalg.cond(T) <= 1e8:  # (also NaN): nearly defective, no stable basis
        return None
    real = [(position, value.real) for position, value in enumerate(modal.eigenvalues)
            if value.imag == 0.0]
    if len(real) < 2:
        return None
    fast, fast_value = min(real, key=lambda mode: abs(mode[1]))
    slow, slow_value = max(real, key=lambda mode: abs(mode[1]))
    if not abs(fast_value) < _FAST_MODE <= abs(slow_value):
        return None
    T_inv = np.linalg.inv(T)
    A = T_inv @ params.A @ T
    B = T_inv @ params.B
    C = params.C @ T
    Q = T_inv @ params.Q @ T_inv.T
    m0 = T_inv @ params.initial_state_mean
    P0 = T_inv @ params.initial_state_covariance @ T_inv.T
    A[fast, :] = 0.0
    A[:, fast] = 0.0
    A[fast, fast] = slow_value - np.copysign(_SPLIT_GAP, slow_value)
    C[:, slow] *= 0.5  # the two copies share the slow mode's loading
    C[:, fast] = C[:, slow]
    B[fast] = B[slow]
    m0[fast] = m0[slow]
    for S in (Q, P0):
        S[fast, :] = 0.5 * S[slow, :]
        S[:, fast] = 0.5 * S[:, slow]
        S[fast, fast] = S[slow, slow]
    # The copied rows can make Q and P0 indefinite; the search's log-Cholesky coordinates
    # need them positive definite, so they are projected with a relative floor.
    Q, P0 = (nearest_psd(S, floor=1e-9 * max(float(np.trace(S)), 1e-300)) for S in (Q, P0))
    return params.replace(A=A, B=B, C=C, Q=Q, initial_state_mean=m0,
                          initial_state_covariance=P0)
