"""Data sampled from known linear-Gaussian state-space systems.

The model, in skkalman's timing (the input acts on the state in the same step)::

    s_t = A s_{t-1} + B x_t + w_t,   w_t ~ N(0, Q)
    y_t = C s_t     + D x_t + v_t,   v_t ~ N(0, R)

with ``s_1 ~ N(initial_state_mean, initial_state_covariance)`` at the first row of every
sequence. scipy and nfoursid write ``s_{t+1} = A s_t + B u_t`` instead: their ``B`` is
``A @ B`` and their ``D`` is ``D + C @ B`` in this timing.
"""

import numbers

import numpy as np
from scipy import linalg
from sklearn.utils import Bunch, check_random_state

from ._sequences import check_lengths

__all__ = ["SYSTEMS", "lagged_targets", "make_lds"]


def _rotation(modulus, angle):
    c, s = np.cos(angle), np.sin(angle)
    return modulus * np.array([[c, -s], [s, c]])


# Embedded systems: fixed matrices, so every run and every benchmark sees the same truth.
_SYSTEMS = {
    "oscillator": dict(
        description="damped 2-D oscillator, eigenvalues 0.95 exp(+-0.3i), one output",
        A=_rotation(0.95, 0.3),
        C=np.array([[1.0, 0.0]]),
    ),
    "two_rotations": dict(
        description=(
            "two damped rotations, eigenvalues 0.95 exp(+-0.3i) and 0.8 exp(+-1.1i), "
            "two outputs"
        ),
        A=linalg.block_diag(_rotation(0.95, 0.3), _rotation(0.8, 1.1)),
        C=np.array([[1.0, 0.0, 0.6, -0.4], [0.2, 1.0, 0.0, 0.8]]),
    ),
}
SYSTEMS = tuple(_SYSTEMS)
"""Names of the embedded systems accepted by ``make_lds(system=...)``."""

_PARAM_NAMES = (
    "A", "B", "C", "D", "Q", "R", "initial_state_mean", "initial_state_covariance",
)


def _modal_matrix(eigenvalues):
    """Real block-diagonal matrix with the given eigenvalues (complex ones in pairs)."""
    eigenvalues = np.asarray(eigenvalues, dtype=complex).ravel()
    blocks, used = [], np.zeros(eigenvalues.size, dtype=bool)
    for i, lam in enumerate(eigenvalues):
        if used[i]:
            continue
        used[i] = True
        if abs(lam.imag) <= 1e-12:
            blocks.append(np.array([[lam.real]]))
            continue
        partner = [j for j in range(eigenvalues.size)
                   if not used[j] and abs(eigenvalues[j] - np.conj(lam)) <= 1e-9]
        if not partner:
            raise ValueError(
                f"eigenvalue {lam} has no complex conjugate in eigenvalues; a real matrix "
                "needs complex eigenvalues in conjugate pairs."
            )
        used[partner[0]] = True
        blocks.append(_rotation(abs(lam), abs(np.angle(lam))))
    return linalg.block_diag(*blocks)


def _random_eigenvalues(n_states, rng):
    n_pairs, n_real = divmod(n_states, 2)
    moduli = rng.uniform(0.5, 0.95, size=n_pairs)
    angles = rng.uniform(0.1, np.pi - 0.1, size=n_pairs)
    pairs = moduli * np.exp(1j * angles)
    values = list(np.concatenate([pairs, pairs.conj()]))
    if n_real:
        values.append(rng.uniform(-0.9, 0.9))
    return np.array(values, dtype=complex)


def _noise_matrix(value, n, name):
    if isinstance(value, numbers.Real):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value}.")
        return float(value) * np.eye(n)
    M = np.asarray(value, dtype=float)
    if M.shape != (n, n):
        raise ValueError(f"{name} must be a number or an array of shape ({n}, {n}), got "
                         f"shape {M.shape}.")
    if not np.allclose(M, M.T) or np.linalg.eigvalsh(0.5 * (M + M.T)).min() < -1e-12:
        raise ValueError(f"{name} must be a symmetric positive semi-definite matrix.")
    return 0.5 * (M + M.T)


def _gaussian(rng, cov, size):
    """Draws from N(0, cov) that work for singular (PSD) covariances too."""
    w, V = np.linalg.eigh(cov)
    root = V * np.sqrt(np.clip(w, 0.0, None))
    return rng.standard_normal((size, cov.shape[0])) @ root.T


def make_lds(
    n_states=None, n_inputs=0, n_outputs=None, n_samples=1000, *, lengths=None,
    eigenvalues=None, system=None, process_noise=0.1, measurement_noise=0.1,
    input_scale=1.0, direct_feedthrough=False, random_state=None,
):
    """Sample inputs, measurements and states from a linear-Gaussian state-space system.

    The system is one of the embedded :data:`SYSTEMS` (``system="two_rotations"``) or a
    random stable one (``eigenvalues`` sets its spectrum). Inputs are white Gaussian
    noise; each sequence starts from the stationary distribution of the state.

    Parameters
    ----------
    n_states : int, default=None
        State dimension of a random system (2 when None). Fixed by a named ``system``.
    n_inputs : int, default=0
        Number of input columns in ``X``; 0 gives ``X`` of shape ``(n_samples, 0)``.
    n_outputs : int, default=None
        Number of measured outputs of a random system (1 when None).
    n_samples : int, default=1000
        Total number of time steps over all sequences.
    lengths : array-like of int, default=None
        Split the samples into independent sequences of these lengths.
    eigenvalues : array-like of complex, default=None
        Eigenvalues of ``A`` for a random system (complex ones in conjugate pairs).
    system : str, default=None
        Name of an embedded system, one of :data:`SYSTEMS`.
    process_noise, measurement_noise : float or ndarray, default=0.1
        ``Q`` and ``R``: a variance (times the identity) or a full covariance matrix.
    input_scale : float, default=1.0
        Standard deviation of the white-noise inputs.
    direct_feedthrough : bool, default=False
        Whether the inputs reach the outputs directly (a non-zero ``D``).
    random_state : int, RandomState instance or None, default=None
        Seeds the random system (if any) and every draw.

    Returns
    -------
    X : ndarray of shape (n_samples, n_inputs)
        The inputs.
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        The measurements; one-dimensional when there is one output.
    system : :class:`~sklearn.utils.Bunch`
        The truth: ``A, B, C, D, Q, R, initial_state_mean, initial_state_covariance``,
        ``states`` of shape ``(n_samples, n_states)``, ``eigenvalues``, ``lengths``,
        ``name``, and ``params`` (a dict of the eight matrices, ready for
        ``KalmanFilterRegressor.from_params(**system.params)``).

    Examples
    --------
    >>> X, y, system = make_lds(system="two_rotations", n_samples=500, random_state=0)
    >>> X.shape, y.shape, system.A.shape
    ((500, 0), (500, 2), (4, 4))
    >>> X, y, system = make_lds(n_states=3, n_inputs=2, n_samples=100, random_state=0)
    >>> X.shape, y.shape, system.B.shape
    ((100, 2), (100,), (3, 2))
    """
    rng = check_random_state(random_state)
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    if not isinstance(n_inputs, numbers.Integral) or n_inputs < 0:
        raise ValueError(f"n_inputs must be a non-negative integer, got {n_inputs!r}.")
    if not np.isfinite(input_scale) or input_scale < 0:
        raise ValueError(f"input_scale must be a non-negative number, got {input_scale}.")
    lengths = check_lengths(lengths, n_samples)

    if system is not None:
        if system not in _SYSTEMS:
            raise ValueError(f"unknown system {system!r}; choose one of {SYSTEMS}.")
        if eigenvalues is not None:
            raise ValueError("give either system or eigenvalues, not both.")
        spec = _SYSTEMS[system]
        A, C = spec["A"].copy(), spec["C"].copy()
        for name, given, fixed in (("n_states", n_states, A.shape[0]),
                                   ("n_outputs", n_outputs, C.shape[0])):
            if given is not None and given != fixed:
                raise ValueError(f"system {system!r} has {name}={fixed}, but {name}={given} "
                                 "was asked for; leave it as None.")
        n_states, n_outputs = C.shape[1], C.shape[0]
        # B and D of a named system come from a seed of its own: same for every random_state.
        param_rng = np.random.default_rng(sorted(_SYSTEMS).index(system) + 1)
        name = system
    else:
        n_states = 2 if n_states is None else n_states
        n_outputs = 1 if n_outputs is None else n_outputs
        for pname, value in (("n_states", n_states), ("n_outputs", n_outputs)):
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{pname} must be a positive integer, got {value!r}.")
        if eigenvalues is None:
            eigenvalues = _random_eigenvalues(n_states, rng)
        eigenvalues = np.asarray(eigenvalues, dtype=complex).ravel()
        if eigenvalues.size != n_states:
            raise ValueError(f"eigenvalues has {eigenvalues.size} entries but n_states is "
                             f"{n_states}.")
        if np.max(np.abs(eigenvalues)) >= 1.0:
            raise ValueError("eigenvalues must lie strictly inside the unit circle (a "
                             "stationary system); got modulus "
                             f"{np.max(np.abs(eigenvalues)):.4g}.")
        # A random orthogonal change of basis hides the block-diagonal form.
        U, _ = np.linalg.qr(rng.standard_normal((n_states, n_states)))
        A = U @ _modal_matrix(eigenvalues) @ U.T
        C = rng.standard_normal((n_outputs, n_states)) / np.sqrt(n_states)
        param_rng = rng
        name = "random"

    B = param_rng.standard_normal((n_states, n_inputs)) / np.sqrt(max(n_inputs, 1))
    D = (param_rng.standard_normal((n_outputs, n_inputs)) / np.sqrt(max(n_inputs, 1))
         if direct_feedthrough else np.zeros((n_outputs, n_inputs)))
    Q = _noise_matrix(process_noise, n_states, "process_noise")
    R = _noise_matrix(measurement_noise, n_outputs, "measurement_noise")
    # Stationary state covariance, inputs included: P = A P A^T + Q + input_scale^2 B B^T.
    P0 = linalg.solve_discrete_lyapunov(A, Q + input_scale**2 * B @ B.T)
    P0 = 0.5 * (P0 + P0.T)
    m0 = np.zeros(n_states)

    X = input_scale * rng.standard_normal((n_samples, n_inputs))
    W = _gaussian(rng, Q, n_samples)
    V = _gaussian(rng, R, n_samples)
    S = np.empty((n_samples, n_states))
    start = 0
    for n in lengths:
        S[start] = m0 + _gaussian(rng, P0, 1)[0]
        for t in range(start + 1, start + n):
            S[t] = A @ S[t - 1] + B @ X[t] + W[t]
        start += n
    Y = S @ C.T + X @ D.T + V
    y = Y[:, 0] if n_outputs == 1 else Y

    params = dict(zip(_PARAM_NAMES, (A, B, C, D, Q, R, m0, P0), strict=True))
    system_bunch = Bunch(
        **params, params=params, states=S, eigenvalues=np.linalg.eigvals(A),
        lengths=lengths, name=name,
        description=_SYSTEMS[name]["description"] if name in _SYSTEMS else
        f"random stable system with {n_states} states",
    )
    return X, y, system_bunch


def lagged_targets(y, lengths=None, n_lags=1):
    """Build the forecasting set-up: inputs ``X_t = (y_{t-1}, ..., y_{t-n_lags})``.

    The first ``n_lags`` rows of every sequence have no complete past and are dropped, so
    the returned ``lengths`` are each ``n_lags`` shorter. Columns of ``X`` hold lag 1 of
    every target, then lag 2, and so on: column ``k`` is target ``k`` one step back, which
    is what ``DynamicsRecovery(feedback_columns=range(n_targets))`` declares.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Fully observed measurements (NaN would become a NaN input).
    lengths : array-like of int, default=None
    n_lags : int, default=1

    Returns
    -------
    X : ndarray of shape (n_samples - n_sequences * n_lags, n_targets * n_lags)
    y : ndarray, the targets of the kept rows (same dimensionality as the input ``y``)
    lengths : ndarray of shape (n_sequences,)

    Examples
    --------
    >>> import numpy as np
    >>> X, y, lengths = lagged_targets(np.arange(6.0), lengths=[3, 3])
    >>> X.ravel(), y, lengths
    (array([0., 1., 3., 4.]), array([1., 2., 4., 5.]), array([2, 2]))
    """
    y = np.asarray(y, dtype=float)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}.")
    if not isinstance(n_lags, numbers.Integral) or n_lags < 1:
        raise ValueError(f"n_lags must be a positive integer, got {n_lags!r}.")
    if np.isnan(y).any():
        raise ValueError("y contains NaN; lagged targets need every measurement (a NaN "
                         "would become a NaN input).")
    Y = y.reshape(y.shape[0], -1)
    lengths = check_lengths(lengths, Y.shape[0], min_length=n_lags + 1)
    X_parts, y_parts, start = [], [], 0
    for n in lengths:
        seq = Y[start:start + n]
        X_parts.append(np.hstack([seq[n_lags - k:n - k] for k in range(1, n_lags + 1)]))
        y_parts.append(seq[n_lags:])
        start += n
    X, Yt = np.vstack(X_parts), np.vstack(y_parts)
    return X, (Yt[:, 0] if y.ndim == 1 else Yt), lengths - n_lags
