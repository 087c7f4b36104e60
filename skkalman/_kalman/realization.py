"""Realization theory of the deterministic state-space system ``(A, B, C, D)``.

In skkalman's timing (the input acts on the state in the same step)::

    s_t = A s_{t-1} + B x_t
    y_t = C s_t     + D x_t

Kernels here close a loop in which outputs are fed back as the next inputs, compute Markov
parameters, Gramians, Hankel singular values and balanced truncations, and bring a
transition matrix to a real modal form that is the same for every similar realization.
They know matrices only: no scikit-learn classes, no user-input validation.
"""

from dataclasses import dataclass

import numpy as np
from scipy import linalg

__all__ = [
    "LinearSystem",
    "ModalForm",
    "balanced_truncation",
    "closed_loop",
    "hankel_singular_values",
    "markov_parameters",
    "real_modal_form",
]

# Moduli closer than this (relative) count as tied when ordering eigenvalues, so that the
# round-off of a similarity transform cannot swap two modes of equal modulus.
_TIE_RTOL = 1e-9
# A normalizing vector smaller than this (relative to its matrix) counts as zero.
_ZERO_RTOL = 1e-12


@dataclass(frozen=True)
class LinearSystem:
    """Matrices of the deterministic system ``s_t = A s_{t-1} + B x_t``, ``y_t = C s_t + D x_t``.

    Parameters
    ----------
    A : ndarray of shape (n_states, n_states)
    B : ndarray of shape (n_states, n_inputs)
    C : ndarray of shape (n_targets, n_states)
    D : ndarray of shape (n_targets, n_inputs)

    Examples
    --------
    >>> import numpy as np
    >>> system = LinearSystem(np.eye(2), np.ones((2, 1)), np.ones((1, 2)), np.zeros((1, 1)))
    >>> system.n_states
    2
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray

    @property
    def n_states(self):
        return self.A.shape[0]


@dataclass(frozen=True)
class ModalForm:
    """A real modal form ``A = basis @ A_canonical @ inv(basis)``.

    Attributes
    ----------
    eigenvalues : ndarray of complex, shape (n_states,)
        Sorted by modulus, descending; a conjugate pair is adjacent, positive imaginary part
        first; equal moduli are ordered by imaginary part, then real part, descending.
    A_canonical : ndarray of shape (n_states, n_states)
        Block-diagonal in the order of ``eigenvalues``: ``[[lambda]]`` for a real eigenvalue,
        ``[[a, -b], [b, a]]`` with ``b > 0`` for the pair ``a +- ib``.
    basis : ndarray of shape (n_states, n_states)
        Columns: the canonical coordinates' directions in the original coordinates.
    """

    eigenvalues: np.ndarray
    A_canonical: np.ndarray
    basis: np.ndarray


def closed_loop(system, feedback_columns):
    """Close the loop in which each output is fed back as the next step's input.

    Input column ``feedback_columns[k]`` carries output ``k`` of the previous step:
    ``x_{t, f} = y_{t-1} = C s_{t-1} + D x_{t-1} + nu_t``, where ``nu_t`` is the part of the
    fed-back value that the system did not predict (the innovation). With ``B_f, D_f`` the
    feedback columns of ``B, D`` and ``B_e, D_e`` the remaining (exogenous) ones, the loop is
    driven by the inputs ``(nu_t, e_t)`` and outputs the prediction ``C s_t + D x_t``:

    - without a direct path (``D == 0``) the state is unchanged::

          s_t = (A + B_f C) s_{t-1} + B_f nu_t + B_e e_t

    - with one, the direct part of the output ``w_t = D x_t`` is carried as extra state
      (``n_targets`` more), which makes the loop exact::

          [s_t]   [A + B_f C  B_f] [s_{t-1}]   [B_f  B_e] [nu_t]
          [w_t] = [D_f C      D_f] [w_{t-1}] + [D_f  D_e] [e_t ],   y_t = [C  I] [s_t; w_t]

    Parameters
    ----------
    system : LinearSystem
        The open-loop system; ``n_inputs`` columns, ``n_targets`` outputs.
    feedback_columns : ndarray of int, shape (n_targets,)
        Distinct input columns, one per output.

    Returns
    -------
    loop : LinearSystem
        The closed loop; inputs: the innovations of the ``n_targets`` outputs, then the
        exogenous columns in their original order. Its ``D`` is zero.
    state_map : ndarray of shape (n_loop_states, n_states)
    input_map : ndarray of shape (n_loop_states, n_inputs)
        The loop's state from the open-loop state and the input of the same step:
        ``z_t = state_map @ s_t + input_map @ x_t``.

    Examples
    --------
    >>> import numpy as np
    >>> open_loop = LinearSystem(A=np.array([[0.5]]), B=np.array([[0.3]]),
    ...                          C=np.array([[1.0]]), D=np.zeros((1, 1)))
    >>> loop, _, _ = closed_loop(open_loop, np.array([0]))
    >>> loop.A
    array([[0.8]])
    """
    A, B, C, D = system.A, system.B, system.C, system.D
    n_states, n_targets = A.shape[0], C.shape[0]
    feedback_columns = np.asarray(feedback_columns, dtype=np.intp)
    exogenous = np.setdiff1d(np.arange(B.shape[1]), feedback_columns)
    B_f, B_e = B[:, feedback_columns], B[:, exogenous]
    D_f, D_e = D[:, feedback_columns], D[:, exogenous]
    A_loop = A + B_f @ C
    if not np.any(D):
        loop = LinearSystem(
            A=A_loop, B=np.hstack([B_f, B_e]), C=C.copy(),
            D=np.zeros((n_targets, n_targets + exogenous.size)),
        )
        return loop, np.eye(n_states), np.zeros((n_states, B.shape[1]))
    loop = LinearSystem(
        A=np.block([[A_loop, B_f], [D_f @ C, D_f]]),
        B=np.block([[B_f, B_e], [D_f, D_e]]),
        C=np.hstack([C, np.eye(n_targets)]),
        D=np.zeros((n_targets, n_targets + exogenous.size)),
    )
    state_map = np.vstack([np.eye(n_states), np.zeros((n_targets, n_states))])
    input_map = np.vstack([np.zeros((n_states, B.shape[1])), D])
    return loop, state_map, input_map


def markov_parameters(system, n_lags):
    """Impulse response of the system: the Markov parameters in skkalman's timing.

    An input at time ``t`` reaches the state at once, so the response at lag 0 is
    ``D + C B`` and at lag ``k >= 1`` it is ``C A^k B``. The Markov parameters are the same
    for every similar realization ``(T A T^{-1}, T B, C T^{-1}, D)``.

    Parameters
    ----------
    system : LinearSystem
    n_lags : int
        Number of lags, from 0.

    Returns
    -------
    markov : ndarray of shape (n_lags, n_targets, n_inputs)

    Examples
    --------
    >>> import numpy as np
    >>> system = LinearSystem(np.array([[0.5]]), np.array([[1.0]]), np.array([[2.0]]),
    ...                       np.array([[1.0]]))
    >>> markov_parameters(system, 3).ravel()
    array([3. , 1. , 0.5])
    """
    A, B, C, D = system.A, system.B, system.C, system.D
    markov = np.empty((n_lags, C.shape[0], B.shape[1]))
    AkB = B.copy()
    for k in range(n_lags):
        markov[k] = C @ AkB
        AkB = A @ AkB
    if n_lags:
        markov[0] += D
    return markov


def _stable_split(A):
    """Similarity ``S`` with ``inv(S) A S = blockdiag(A_stable, A_unstable)``.

    Returns ``S``, ``inv(S)`` and the size of the stable block (eigenvalues of modulus
    below 1). An ordered real Schur form puts the stable eigenvalues first; a Sylvester
    equation then removes the coupling block (the two spectra are disjoint).
    """
    n = A.shape[0]
    T, Z, n_stable = linalg.schur(A, output="real", sort="iuc")
    if n_stable in (0, n):
        return Z, Z.T, n_stable
    k = n_stable
    X = linalg.solve_sylvester(T[:k, :k], -T[k:, k:], -T[:k, k:])
    W = np.eye(n)
    W[:k, k:] = X
    W_inv = np.eye(n)
    W_inv[:k, k:] = -X
    return Z @ W, W_inv @ Z.T, n_stable


def _gramian_factor(A, M):
    """``L`` with ``L L^T = G``, the solution of ``G = A G A^T + M M^T`` (a Gramian).

    A symmetric eigendecomposition, not a Cholesky factor: Gramians of non-minimal systems
    (uncontrollable or unobservable modes) are singular.
    """
    G = linalg.solve_discrete_lyapunov(A, M @ M.T)
    w, V = np.linalg.eigh(0.5 * (G + G.T))
    return V * np.sqrt(np.clip(w, 0.0, None))


def _power_of_two_below(M):
    """The power of two at or below the largest magnitude in ``M`` (1 if it is 0)."""
    peak = float(np.max(np.abs(M), initial=0.0))
    return float(np.ldexp(1.0, np.frexp(peak)[1] - 1)) if 0.0 < peak < np.inf else 1.0


def _balanced_pieces(system):
    """Stable/unstable split and the square-root balancing of the stable part."""
    S, S_inv, k = _stable_split(system.A)
    A_split = S_inv @ system.A @ S
    B_split, C_split = S_inv @ system.B, system.C @ S
    # The Gramians square B and C: with inputs or outputs in units near float64's limits
    # (B ~ 1e-300 or 1e300) they would underflow or overflow. Their factors are computed
    # for B and C scaled to unit size by powers of two (exact) and scaled back.
    b, c = _power_of_two_below(B_split[:k]), _power_of_two_below(C_split[:, :k])
    Lc = _gramian_factor(A_split[:k, :k], B_split[:k] / b)
    Lo = _gramian_factor(A_split[:k, :k].T, C_split[:, :k].T / c)
    U, sigma, Vt = np.linalg.svd(Lo.T @ Lc)
    return S, S_inv, k, b * Lc, c * Lo, U, b * c * sigma, Vt


def hankel_singular_values(system):
    """Hankel singular values of the system, descending.

    The square roots of the eigenvalues of the product of the controllability and
    observability Gramians: how much each state direction carries from past inputs to
    future outputs. Modes with eigenvalue modulus >= 1 have no finite Gramian; as in
    MATLAB's ``hsvd`` they are split off and reported as ``inf`` (first), the stable part's
    values follow.

    Parameters
    ----------
    system : LinearSystem

    Returns
    -------
    hsv : ndarray of shape (n_states,)

    Examples
    --------
    >>> import numpy as np
    >>> system = LinearSystem(np.diag([0.5, 1.2]), np.ones((2, 1)), np.ones((1, 2)),
    ...                       np.zeros((1, 1)))
    >>> hankel_singular_values(system).round(4)
    array([   inf, 1.3333])
    """
    _, _, k, _, _, _, sigma, _ = _balanced_pieces(system)
    n_unstable = system.n_states - k
    return np.concatenate([np.full(n_unstable, np.inf), sigma])


def balanced_truncation(system, order):
    """Reduce the system to ``order`` states by balanced truncation.

    The stable part is balanced (its two Gramians made equal and diagonal, the Hankel
    singular values on the diagonal) and its weakest directions are dropped; unstable modes
    (modulus >= 1) are always kept. ``order == n_states`` returns the system unchanged.

    Parameters
    ----------
    system : LinearSystem
    order : int
        ``n_unstable <= order <= n_states``, and the kept Hankel singular values must be
        non-zero.

    Returns
    -------
    reduced : LinearSystem
    projection : ndarray of shape (order, n_states)
        Reduced state from the full one: ``z_reduced = projection @ z``.

    Raises
    ------
    ValueError
        If no realization of that order can be formed as above.

    Examples
    --------
    >>> import numpy as np
    >>> system = LinearSystem(np.diag([0.9, 0.1]), np.array([[1.0], [1e-6]]),
    ...                       np.ones((1, 2)), np.zeros((1, 1)))
    >>> reduced, projection = balanced_truncation(system, 1)
    >>> reduced.A.round(6)
    array([[0.9]])
    """
    n = system.n_states
    if not 1 <= order <= n:
        raise ValueError(f"order must be between 1 and the number of states ({n}), got "
                         f"{order}.")
    if order == n:
        return system, np.eye(n)
    S, S_inv, k, Lc, Lo, U, sigma, Vt = _balanced_pieces(system)
    n_unstable = n - k
    if order < n_unstable:
        raise ValueError(
            f"order={order} is below the number of unstable modes ({n_unstable}, eigenvalue "
            "modulus >= 1), which balanced truncation always keeps."
        )
    r = order - n_unstable
    if r and sigma[r - 1] <= _ZERO_RTOL * sigma[0]:
        n_nonzero = int(np.sum(sigma > _ZERO_RTOL * sigma[0]))
        raise ValueError(
            f"order={order} needs {r} non-zero Hankel singular values of the stable part, "
            f"but it has {n_nonzero}: no minimal realization of that order exists; choose "
            f"order <= {n_unstable + n_nonzero}."
        )
    scale = 1.0 / np.sqrt(sigma[:r])
    right_stable = Lc @ Vt[:r].T * scale
    left_stable = Lo @ U[:, :r] * scale
    projection = np.zeros((order, n))
    right = np.zeros((n, order))
    projection[:r, :k] = left_stable.T
    right[:k, :r] = right_stable
    projection[r:, k:] = np.eye(n_unstable)
    right[k:, r:] = np.eye(n_unstable)
    projection, right = projection @ S_inv, S @ right
    reduced = LinearSystem(
        A=projection @ system.A @ right, B=projection @ system.B, C=system.C @ right,
        D=system.D.copy(),
    )
    return reduced, projection


def _mode_order(eigenvalues):
    """Indices of the real eigenvalues and of each pair's positive member, in canonical order.

    By modulus, descending; tied moduli (within ``_TIE_RTOL``) by imaginary part, then real
    part, descending.
    """
    modes = np.flatnonzero(eigenvalues.imag >= 0)
    modulus = np.abs(eigenvalues[modes])
    modes, modulus = modes[np.argsort(-modulus, kind="stable")], np.sort(modulus)[::-1]
    tol = _TIE_RTOL * max(1.0, modulus[0]) if modulus.size else 0.0
    group = np.concatenate([[0], np.cumsum(-np.diff(modulus) > tol)])
    lam = eigenvalues[modes]
    return modes[np.lexsort((-lam.real, -lam.imag, group))]


def _unit_phase(g):
    """Scalar ``c`` making ``g * c`` of unit norm with its (first) largest entry real > 0."""
    magnitude = np.abs(g)
    # "first nearly largest", so that round-off cannot move the reference between two
    # entries of equal size.
    k = np.flatnonzero(magnitude >= (1 - 1e-6) * magnitude.max())[0]
    return np.conj(g[k]) / magnitude[k] / np.linalg.norm(g)


def real_modal_form(A, C, B=None):
    """Real modal form of ``A``, in a basis fixed by the output map ``C``.

    Each real eigenvalue ``lambda`` with eigenvector ``v`` contributes the basis column
    ``v``; each complex pair ``a +- ib`` (``b > 0``) with eigenvector ``v`` of ``a + ib``
    contributes ``[Re v, -Im v]``, on which ``A`` acts as ``[[a, -b], [b, a]]``. An
    eigenvector is defined up to a (complex) factor; it is fixed by requiring that the
    mode's output direction ``C v`` have unit norm and its first largest entry real and
    positive. So a similar realization ``(T A T^{-1}, C T^{-1})`` gets the basis
    ``T @ basis`` and the same canonical coordinates. A mode that ``C`` does not see is
    normalized the same way through its input direction (the row of ``inv(V) B``), and
    failing that by the eigenvector itself (then the basis is not similarity-invariant).
    Distinct eigenvalues are assumed: a repeated one has no unique eigenvectors.

    Parameters
    ----------
    A : ndarray of shape (n_states, n_states)
    C : ndarray of shape (n_targets, n_states)
    B : ndarray of shape (n_states, n_inputs), default=None

    Returns
    -------
    modal : ModalForm

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[0.9, 0.5], [-0.2, 0.6]])
    >>> modal = real_modal_form(A, np.array([[1.0, 0.0]]))
    >>> modal.eigenvalues.round(4)
    array([0.75+0.2784j, 0.75-0.2784j])
    >>> modal.A_canonical.round(4)
    array([[ 0.75  , -0.2784],
           [ 0.2784,  0.75  ]])
    >>> np.allclose(A @ modal.basis, modal.basis @ modal.A_canonical)
    True
    """
    n = A.shape[0]
    lam, V = np.linalg.eig(A)
    order = _mode_order(lam)
    V_inv_B = None
    C_norm = np.linalg.norm(C)
    eigenvalues, blocks, columns = [], [], []
    for i in order:
        v = V[:, i]
        g = C @ v
        if np.linalg.norm(g) > _ZERO_RTOL * max(C_norm, np.finfo(float).tiny):
            c = _unit_phase(g)
        else:
            if V_inv_B is None:
                V_inv_B = (np.linalg.solve(V, B) if B is not None and B.size
                           else np.zeros((n, 0)))
            h = V_inv_B[i]
            if h.size and np.linalg.norm(h) > _ZERO_RTOL * np.linalg.norm(V_inv_B):
                # Rescaling v by c rescales its input direction by 1/c.
                c = 1.0 / _unit_phase(h)
            else:
                c = _unit_phase(v)
        v = v * c
        if lam[i].imag == 0:
            eigenvalues.append(lam[i])
            blocks.append(np.array([[lam[i].real]]))
            columns.append(v.real[:, None])
        else:
            a, b = lam[i].real, lam[i].imag
            eigenvalues.extend([lam[i], np.conj(lam[i])])
            blocks.append(np.array([[a, -b], [b, a]]))
            columns.append(np.column_stack([v.real, -v.imag]))
    if not n:
        return ModalForm(np.zeros(0, dtype=complex), np.zeros((0, 0)), np.zeros((0, 0)))
    return ModalForm(
        eigenvalues=np.array(eigenvalues, dtype=complex),
        A_canonical=linalg.block_diag(*blocks), basis=np.hstack(columns),
    )
