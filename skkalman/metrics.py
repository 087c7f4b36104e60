"""Similarity-invariant comparison of learned dynamics with the truth.

A state-space model's transition matrix ``A`` is defined only up to a change of basis
``T A T^{-1}``; its eigenvalues are not. The metrics here compare eigenvalues, matched
optimally, and report modes that have no partner instead of hiding them; for systems with
inputs, they compare impulse responses (Markov parameters), which are invariant too.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import r2_score

from ._kalman.realization import LinearSystem, markov_parameters

__all__ = [
    "EigenvalueMatch",
    "eigenvalue_error",
    "impulse_response_error",
    "make_dynamics_scorer",
    "match_eigenvalues",
]


def _eigenvalues(M, name):
    M = np.asarray(M)
    if M.ndim == 2:
        if M.shape[0] != M.shape[1]:
            raise ValueError(f"{name} must be a square matrix or a 1-D array of "
                             f"eigenvalues, got shape {M.shape}.")
        if not np.all(np.isfinite(M)):
            raise ValueError(f"{name} contains NaN or infinity.")
        return np.linalg.eigvals(M.astype(float) if not np.iscomplexobj(M) else M)
    if M.ndim == 1:
        if not np.all(np.isfinite(M)):
            raise ValueError(f"{name} contains NaN or infinity.")
        return M.astype(complex)
    raise ValueError(f"{name} must be a square matrix or a 1-D array of eigenvalues, got "
                     f"an array of shape {M.shape}.")


@dataclass(frozen=True)
class EigenvalueMatch:
    """Optimal one-to-one matching of estimated to true eigenvalues.

    Attributes
    ----------
    estimated, true : ndarray of complex, shape (n_matched,)
        Matched pairs, in the order of ``true``'s eigenvalues sorted by modulus.
    errors : ndarray of shape (n_matched,)
        ``|estimated - true|`` for each pair.
    unmatched_estimated : ndarray of complex
        Estimated modes with no true partner (the model has more states than the truth).
    unmatched_true : ndarray of complex
        True modes the model lacks.
    error : float
        The largest error, where a mode without partner counts as its own modulus (an
        eigenvalue 0 is a mode that vanishes at once, so it is as good as no mode).
    """

    estimated: np.ndarray
    true: np.ndarray
    errors: np.ndarray
    unmatched_estimated: np.ndarray
    unmatched_true: np.ndarray
    error: float


def match_eigenvalues(A_est, A_true):
    """Match the eigenvalues of ``A_est`` to those of ``A_true`` (Hungarian algorithm).

    Parameters
    ----------
    A_est, A_true : array-like
        Square matrices, or 1-D arrays of their eigenvalues. Sizes may differ.

    Returns
    -------
    match : EigenvalueMatch

    Examples
    --------
    >>> import numpy as np
    >>> m = match_eigenvalues(np.diag([0.5, 0.9, 0.01]), np.diag([0.9, 0.52]))
    >>> m.errors.round(3), m.unmatched_estimated.real
    (array([0.  , 0.02]), array([0.01]))
    >>> round(m.error, 3)
    0.02
    """
    est, true = _eigenvalues(A_est, "A_est"), _eigenvalues(A_true, "A_true")
    cost = np.abs(est[:, None] - true[None, :])
    rows, cols = linear_sum_assignment(cost)
    order = np.argsort(-np.abs(true[cols]), kind="stable")
    rows, cols = rows[order], cols[order]
    errors = cost[rows, cols]
    extra_est = np.delete(est, rows)
    extra_true = np.delete(true, cols)
    unmatched = np.abs(np.concatenate([extra_est, extra_true]))
    error = float(max(errors.max(initial=0.0), unmatched.max(initial=0.0)))
    return EigenvalueMatch(
        estimated=est[rows], true=true[cols], errors=errors,
        unmatched_estimated=extra_est, unmatched_true=extra_true, error=error,
    )


def eigenvalue_error(A_est, A_true):
    """Largest distance between optimally matched eigenvalues of ``A_est`` and ``A_true``.

    Invariant to any change of basis of either matrix. When the sizes differ, each mode
    without a partner counts as its modulus (its distance to a vanishing mode), so surplus
    or missing dynamics raise the error instead of being dropped; see
    :func:`match_eigenvalues` for the matched pairs and the unmatched modes themselves.

    Parameters
    ----------
    A_est, A_true : array-like
        Square matrices, or 1-D arrays of their eigenvalues.

    Returns
    -------
    error : float

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[0.9, 0.2], [-0.2, 0.9]])
    >>> T = np.array([[1.0, 2.0], [0.0, 1.0]])
    >>> round(eigenvalue_error(T @ A @ np.linalg.inv(T), A), 12)
    0.0
    """
    return match_eigenvalues(A_est, A_true).error


class _DynamicsScorer:
    """Scorer ``(estimator, X, y) -> -eigenvalue_error``; see :func:`make_dynamics_scorer`."""

    def __init__(self, A_true):
        self.A_true = A_true

    def __call__(self, estimator, X, y=None, **kwargs):
        eigenvalues = getattr(estimator, "eigenvalues_", None)
        if eigenvalues is None:
            if not hasattr(estimator, "_state_space"):
                raise TypeError(
                    "make_dynamics_scorer reads the dynamics of a DynamicsRecovery "
                    "(eigenvalues_) or of a KalmanFilterRegressor or ElmanRNNRegressor "
                    f"(their state-space form); got {type(estimator).__name__}."
                )
            A = estimator._state_space(X, linearization="trajectory")[0]
            eigenvalues = np.linalg.eigvals(np.asarray(A, dtype=float))
        return -eigenvalue_error(eigenvalues, self.A_true)

    def __repr__(self):
        return f"make_dynamics_scorer(A_true=<{len(self.A_true)} eigenvalues>)"


def make_dynamics_scorer(A_true):
    """Scorer that rates a fitted model by the dynamics it recovered.

    For ``GridSearchCV(scoring=...)`` and friends: greater is better, the score is minus
    :func:`eigenvalue_error` between the estimator's effective dynamics and ``A_true``.
    The estimator scored is either a :class:`~skkalman.DynamicsRecovery` (its
    ``eigenvalues_``: closed loop, reduction and linearization as it was configured) or a
    bare :class:`~skkalman.KalmanFilterRegressor` or :class:`~skkalman.ElmanRNNRegressor`
    (the eigenvalues of its own transition matrix; a ``tanh``/``relu`` RNN linearized along
    the trajectory of the ``X`` it is scored on). In the forecasting set-up wrap the model
    in ``DynamicsRecovery(feedback_columns=...)``: a bare predictor's matrix is the filter's.

    Parameters
    ----------
    A_true : array-like
        The true transition matrix, or a 1-D array of its eigenvalues.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> from skkalman import DynamicsRecovery, KalmanFilterRegressor
    >>> from skkalman.datasets import make_lds
    >>> X, y, system = make_lds(system="oscillator", n_inputs=1, n_samples=100,
    ...                         random_state=0)
    >>> recovery = DynamicsRecovery(KalmanFilterRegressor.from_params(**system.params),
    ...                             prefit=True).fit(X, y)
    >>> scorer = make_dynamics_scorer(system.A)
    >>> round(scorer(recovery, X, y), 12)
    -0.0
    """
    eigenvalues = _eigenvalues(A_true, "A_true")
    return _DynamicsScorer(eigenvalues)


def _as_system(system, name):
    """A ``LinearSystem`` from a mapping, an (A, B, C[, D]) sequence or a fitted model."""
    if hasattr(system, "keys"):
        parts = [system.get(key) for key in ("A", "B", "C", "D")]
    elif hasattr(system, "A_"):
        parts = [getattr(system, f"{key}_", None) for key in ("A", "B", "C", "D")]
    else:
        parts = list(system) + [None] * (4 - len(system))
    if len(parts) != 4 or any(part is None for part in parts[:3]):
        raise ValueError(f"{name} must give A, B, C (and optionally D): a mapping with those "
                         "keys, a sequence (A, B, C[, D]), or a fitted model with A_, B_, C_.")
    A, B, C = (np.asarray(part, dtype=float) for part in parts[:3])
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name}: A must be square, got shape {A.shape}.")
    if B.ndim != 2 or B.shape[0] != A.shape[0]:
        raise ValueError(f"{name}: B must have shape ({A.shape[0]}, n_inputs), got {B.shape}.")
    if C.ndim != 2 or C.shape[1] != A.shape[0]:
        raise ValueError(f"{name}: C must have shape (n_targets, {A.shape[0]}), got "
                         f"{C.shape}.")
    D = (np.zeros((C.shape[0], B.shape[1])) if parts[3] is None
         else np.asarray(parts[3], dtype=float))
    if D.shape != (C.shape[0], B.shape[1]):
        raise ValueError(f"{name}: D must have shape {(C.shape[0], B.shape[1])}, got {D.shape}.")
    for key, M in zip("ABCD", (A, B, C, D), strict=True):
        if not np.all(np.isfinite(M)):
            raise ValueError(f"{name}: {key} contains NaN or infinity.")
    return LinearSystem(A=A, B=B, C=C, D=D)


def impulse_response_error(estimated, true, *, n_lags=100):
    """Relative distance between the impulse responses of two systems with inputs.

    Compares the Markov parameters (``D + C B`` at lag 0, ``C A^k B`` at lag ``k >= 1``, in
    skkalman's timing ``s_t = A s_{t-1} + B x_t``): the input-output behaviour, which every
    similar realization shares, so systems of different state dimension or basis can be
    compared. Unlike :func:`eigenvalue_error` it also weighs each mode by how strongly the
    inputs excite it and the outputs see it.

    Parameters
    ----------
    estimated, true : mapping, sequence or fitted model
        Each a mapping with keys ``"A", "B", "C"`` and optionally ``"D"`` (such as the
        ``system`` returned by :func:`~skkalman.datasets.make_lds`), a sequence
        ``(A, B, C[, D])``, or a fitted model with attributes ``A_, B_, C_, D_`` (a
        :class:`~skkalman.KalmanFilterRegressor`, a :class:`~skkalman.DynamicsRecovery`).
        ``D`` defaults to zero. Both must have the same numbers of inputs and targets.
    n_lags : int, default=100
        Number of lags compared, from 0.

    Returns
    -------
    error : float
        ``||H_est - H_true|| / ||H_true||`` over the stacked Markov parameters (Frobenius
        norm); 0 for identical input-output behaviour.

    Examples
    --------
    >>> import numpy as np
    >>> A, B, C = np.array([[0.9, 0.2], [-0.2, 0.9]]), np.eye(2)[:, :1], np.eye(2)[:1]
    >>> T = np.array([[1.0, 2.0], [0.0, 1.0]])
    >>> similar = (T @ A @ np.linalg.inv(T), T @ B, C @ np.linalg.inv(T))
    >>> round(impulse_response_error(similar, (A, B, C)), 12)
    0.0
    >>> round(impulse_response_error((0.95 * A, B, C), (A, B, C)), 3)
    0.258
    """
    if not isinstance(n_lags, (int, np.integer)) or n_lags < 1:
        raise ValueError(f"n_lags must be a positive integer, got {n_lags!r}.")
    est, tru = _as_system(estimated, "estimated"), _as_system(true, "true")
    if est.B.shape[1] != tru.B.shape[1] or est.C.shape[0] != tru.C.shape[0]:
        raise ValueError(
            f"the systems differ in shape: estimated has {est.B.shape[1]} inputs and "
            f"{est.C.shape[0]} targets, true has {tru.B.shape[1]} and {tru.C.shape[0]}."
        )
    H_true = markov_parameters(tru, n_lags)
    scale = np.linalg.norm(H_true)
    if scale == 0:
        raise ValueError("the true system's impulse response is zero (no inputs, or inputs "
                         "that reach no output): there is nothing to compare.")
    return float(np.linalg.norm(markov_parameters(est, n_lags) - H_true) / scale)


def _observed_r2_score(y_true, y_pred, sample_weight=None):
    """R² of each target over the rows where it is observed, averaged over the targets.

    The rule of both estimators' ``score`` for ``y`` with missing measurements (NaN): a
    target's R² is scikit-learn's over its observed rows (weighted by ``sample_weight``),
    and the targets count equally, as in :func:`sklearn.metrics.r2_score`'s default
    ``multioutput="uniform_average"``. With every target fully observed this is
    :func:`~sklearn.metrics.r2_score` itself.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_targets)
        NaN marks a missing measurement.
    y_pred : array-like of the same shape
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    score : float

    Raises
    ------
    ValueError
        If ``sample_weight`` does not have one finite, non-negative entry per row, or a
        target has no observed entry (its R² is undefined).

    Notes
    -----
    Each target is divided by its largest observed magnitude first (R² does not change),
    so that values near float64's limits (``1e300``, ``1e-300``) score as well as values
    near 1.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 4.0], [4.0, 5.0]])
    >>> pred = np.array([[1.0, 2.5], [2.5, 0.0], [3.0, 3.5], [4.0, 5.0]])
    >>> round(_observed_r2_score(y, pred), 4)
    0.9214
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}; they must match.")
    n_samples = y_true.shape[0]
    y_true = y_true.reshape(n_samples, -1)
    y_pred = y_pred.reshape(n_samples, -1)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=float)
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight has shape {sample_weight.shape} but y has {n_samples} rows; "
                "give one weight per row (time step)."
            )
        if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
            raise ValueError("sample_weight must be finite and non-negative.")
    scores = []
    for k in range(y_true.shape[1]):
        observed = ~np.isnan(y_true[:, k])
        if not observed.any():
            raise ValueError(f"target {k} of y has no observed (non-NaN) entry, so its R² "
                             "is undefined.")
        weight = None if sample_weight is None else sample_weight[observed]
        # R² is unchanged by a common scale; dividing by the largest observed magnitude
        # keeps its sums of squares clear of float64's overflow and underflow.
        scale = np.max(np.abs(y_true[observed, k]))
        scale = scale if scale > 0 else 1.0
        scores.append(r2_score(y_true[observed, k] / scale, y_pred[observed, k] / scale,
                               sample_weight=weight))
    return float(np.mean(scores))
