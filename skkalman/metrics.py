"""Similarity-invariant comparison of learned dynamics with the truth.

A state-space model's transition matrix ``A`` is defined only up to a change of basis
``T A T^{-1}``; its eigenvalues are not. The metrics here compare eigenvalues, matched
optimally, and report modes that have no partner instead of hiding them.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["EigenvalueMatch", "eigenvalue_error", "match_eigenvalues"]


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
