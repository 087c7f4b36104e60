"""Drawing from the model: Gaussian noise and the state recursion, written once.

``datasets.make_lds``, ``KalmanFilterRegressor.sample`` and the subspace start all
simulate ``s_t = A s_{t-1} + u_t`` through these functions.
"""

import numba
import numpy as np

__all__ = ["gaussian_draws", "simulate_states"]


def gaussian_draws(rng, cov, size):
    """``size`` draws from N(0, cov), of shape ``(size, n)``; singular (PSD) ``cov`` too.

    The square root is taken by an eigendecomposition, not Cholesky, so that a covariance
    with zero variance along some direction (a noiseless state) draws exact zeros there.

    Examples
    --------
    >>> import numpy as np
    >>> draws = gaussian_draws(np.random.default_rng(0), np.diag([1.0, 0.0]), 3)
    >>> draws.shape, bool(np.all(draws[:, 1] == 0))
    ((3, 2), True)
    """
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    w, V = np.linalg.eigh(cov)
    root = V * np.sqrt(np.clip(w, 0.0, None))
    return rng.standard_normal((size, cov.shape[0])) @ root.T


def simulate_states(A, first_state, U):
    """The trajectory of ``s_t = A s_{t-1} + U[t]`` for ``t >= 1`` from ``s_0 = first_state``.

    Parameters
    ----------
    A : ndarray of shape (n_states, n_states)
    first_state : ndarray of shape (n_states,)
        The state at row 0 (``U[0]`` is not used).
    U : ndarray of shape (T, n_states)
        What enters each step: ``B x_t`` plus the process noise ``w_t``.

    Returns
    -------
    states : ndarray of shape (T, n_states)

    Examples
    --------
    >>> import numpy as np
    >>> simulate_states(np.array([[0.5]]), np.array([2.0]), np.ones((3, 1))).ravel()
    array([2., 2., 2.])
    """
    A = np.ascontiguousarray(A, dtype=float)
    U = np.ascontiguousarray(U, dtype=float)
    states = np.empty((U.shape[0], A.shape[0]))
    if U.shape[0]:
        _simulate(A, np.asarray(first_state, dtype=float), U, states)
    return states


@numba.njit(cache=True, nogil=True)
def _simulate(A, first_state, U, states):
    # A plain loop (compiled): it stays exact for any A, an unstable one included.
    n = A.shape[0]
    states[0] = first_state
    for t in range(1, U.shape[0]):
        for i in range(n):
            total = U[t, i]
            for j in range(n):
                total += A[i, j] * states[t - 1, j]
            states[t, i] = total
