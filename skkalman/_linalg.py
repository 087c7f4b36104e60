"""Small dense linear-algebra helpers shared by the kernels.

Covariances are never inverted: they are factored once (Cholesky) and the factor is used
for solves and log-determinants.
"""

import numpy as np
from scipy import linalg
from threadpoolctl import ThreadpoolController

__all__ = [
    "cho_factor_psd", "cho_logdet", "cho_solve", "nearest_psd", "one_blas_thread",
    "symmetrize",
]

_blas_controller = None
# LAPACK's double-precision Cholesky factorization and solve, called directly: the search
# makes thousands of small calls, where scipy.linalg's argument checks cost more than the
# arithmetic.
_potrf, _potrs = linalg.get_lapack_funcs(("potrf", "potrs"), (np.zeros(1),))


def one_blas_thread():
    """Context in which BLAS and LAPACK run on one thread.

    The model's matrices are small (states and targets by the dozen): threads gain
    nothing there, and on a machine whose other cores are busy OpenBLAS's waiting
    threads make a 300 x 300 eigendecomposition forty times slower (measured: 0.9 s
    against 0.02 s). Fitting runs inside this context; joblib or Dask parallelize
    across fits instead.
    """
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


def symmetrize(M):
    """Return ``(M + M^T) / 2`` over the last two axes.

    Round-off makes covariance updates drift from symmetry; the drift compounds over long
    sequences, so every covariance update ends here.

    Examples
    --------
    >>> import numpy as np
    >>> symmetrize(np.array([[1.0, 2.0], [0.0, 1.0]]))
    array([[1., 1.],
           [1., 1.]])
    """
    return 0.5 * (M + np.swapaxes(M, -1, -2))


def nearest_psd(M, floor=0.0):
    """Project a symmetric matrix onto the PSD cone, eigenvalues clipped at ``floor``.

    Used only where an *estimate* of a covariance (an M-step, a subspace fit) may come out
    indefinite from finite data; filter updates are kept PSD by their Joseph form instead.

    Examples
    --------
    >>> import numpy as np
    >>> nearest_psd(np.array([[1.0, 0.0], [0.0, -1.0]]))
    array([[1., 0.],
           [0., 0.]])
    """
    M = symmetrize(np.asarray(M, dtype=float))
    w, V = np.linalg.eigh(M)
    w = np.maximum(w, floor)
    return symmetrize((V * w) @ V.T)


def cho_factor_psd(S, jitter=1e-12):
    """Lower Cholesky factor of a symmetric PSD matrix, adding jitter only if needed.

    A covariance that is PSD in exact arithmetic can fail Cholesky by round-off; a jitter
    relative to its diagonal is the smallest change that makes it factor.

    Examples
    --------
    >>> import numpy as np
    >>> L = cho_factor_psd(np.array([[4.0, 2.0], [2.0, 2.0]]))
    >>> np.allclose(L @ L.T, [[4.0, 2.0], [2.0, 2.0]])
    True
    """
    S = symmetrize(np.asarray(S, dtype=float))
    if S.size == 0:
        return S.copy()
    L, info = _potrf(S, lower=1, clean=1)
    if info == 0:
        return L
    scale = max(float(np.max(np.abs(np.diag(S)))), np.finfo(float).tiny)
    eps = jitter
    eye = np.eye(S.shape[0])
    while eps < 1.0:
        L, info = _potrf(S + eps * scale * eye, lower=1, clean=1)
        if info == 0:
            return L
        eps *= 100.0
    raise linalg.LinAlgError("matrix is not positive semi-definite, even after jitter")


def cho_solve(L, B):
    """Solve ``(L L^T) X = B`` given the lower Cholesky factor ``L``.

    Examples
    --------
    >>> import numpy as np
    >>> L = np.linalg.cholesky(np.array([[4.0, 2.0], [2.0, 2.0]]))
    >>> cho_solve(L, np.array([4.0, 2.0]))
    array([1., 0.])
    """
    B = np.asarray(B, dtype=float)
    if B.size == 0:
        return np.zeros(B.shape)
    X, info = _potrs(L, B, lower=1)
    if info != 0:
        raise ValueError(f"illegal value in argument {-info} of LAPACK's dpotrs")
    return X


def cho_logdet(L):
    """``log det(L L^T)`` from the lower Cholesky factor ``L``.

    Examples
    --------
    >>> import numpy as np
    >>> float(cho_logdet(np.diag([2.0, 1.0])))  # det = 4
    1.3862943611198906
    """
    return 2.0 * np.sum(np.log(np.diag(L)))
