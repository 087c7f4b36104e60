"""Data sampled from known state-space systems: linear-Gaussian ones and a pendulum.

The model, in skkalman's timing (the input acts on the state in the same step)::

    s_t = A s_{t-1} + B x_t + w_t,   w_t ~ N(0, Q)
    y_t = C s_t     + D x_t + v_t,   v_t ~ N(0, R)

with ``s_1 ~ N(initial_state_mean, initial_state_covariance)`` at the first row of every
sequence. scipy and nfoursid write ``s_{t+1} = A s_t + B u_t`` instead: their ``B`` is
``A @ B`` and their ``D`` is ``D + C @ B`` in this timing.

:func:`make_pendulum` is nonlinear: a damped pendulum observed with noise, with a known
fixed point and the Jacobian of its transition there, for the question what an RNN's
activations add to the linear analogy.
"""

import numbers

import numpy as np
from scipy import linalg
from sklearn.utils import Bunch, check_random_state

from ._kalman.simulate import gaussian_draws, simulate_states
from ._sequences import check_lengths

__all__ = ["RANDOM_SYSTEM_RANGES", "SYSTEMS", "lagged_targets", "make_lds", "make_pendulum"]


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


RANDOM_SYSTEM_RANGES = {
    "n_states": (1, 6),
    "n_outputs": (1, 3),
    "n_inputs": (0, 2),
    "distance_to_unit_circle": (0.01, 0.7),
    "noise_ratio": (1e-3, 1e2),
    "measurement_noise": 0.1,
}
"""Ranges of the ``system="random"`` distribution (see :func:`make_lds`, Notes)."""


def _log_uniform(rng, low, high, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size=size))


def _random_system_spectrum(n_states, rng):
    """Eigenvalues for ``system="random"``: moduli near the unit circle, complex pairs."""
    values = []
    while len(values) < n_states:
        modulus = 1.0 - _log_uniform(rng, *RANDOM_SYSTEM_RANGES["distance_to_unit_circle"])
        if n_states - len(values) >= 2 and rng.random() < 0.5:
            pair = modulus * np.exp(1j * rng.uniform(0.05, np.pi - 0.05))
            values += [pair, np.conj(pair)]
        else:
            values.append(modulus if rng.random() < 0.75 else -modulus)
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


def make_lds(
    n_states=None, n_inputs=None, n_outputs=None, n_samples=1000, *, lengths=None,
    eigenvalues=None, system=None, process_noise=None, measurement_noise=None,
    input_scale=1.0, direct_feedthrough=None, random_state=None,
):
    """Sample inputs, measurements and states from a linear-Gaussian state-space system.

    The system is one of the embedded :data:`SYSTEMS` (``system="two_rotations"``), a
    random stable one drawn from a documented distribution (``system="random"``), or,
    with ``system=None``, a random stable one of the given sizes (``eigenvalues`` sets its
    spectrum). Inputs are white Gaussian noise; each sequence starts from the stationary
    distribution of the state.

    Parameters
    ----------
    n_states : int, default=None
        State dimension of a random system (2 when None and ``system=None``; drawn when
        ``system="random"``). Fixed by a named ``system``.
    n_inputs : int, default=None
        Number of input columns in ``X`` (0 when None, drawn when ``system="random"``);
        0 gives ``X`` of shape ``(n_samples, 0)``.
    n_outputs : int, default=None
        Number of measured outputs of a random system (1 when None and ``system=None``;
        drawn when ``system="random"``).
    n_samples : int, default=1000
        Total number of time steps over all sequences.
    lengths : array-like of int, default=None
        Split the samples into independent sequences of these lengths.
    eigenvalues : array-like of complex, default=None
        Eigenvalues of ``A`` for a random system (complex ones in conjugate pairs).
    system : str, default=None
        ``"random"`` or the name of an embedded system, one of :data:`SYSTEMS`.
    process_noise, measurement_noise : float or ndarray, default=None
        ``Q`` and ``R``: a variance (times the identity) or a full covariance matrix; 0.1
        when None, except that ``system="random"`` draws the process noise.
    input_scale : float, default=1.0
        Standard deviation of the white-noise inputs.
    direct_feedthrough : bool, default=None
        Whether the inputs reach the outputs directly (a non-zero ``D``). False when None,
        drawn (probability 1/2) when ``system="random"``.
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
        ``name``, ``description``, and ``params`` (a dict of the eight matrices, ready for
        ``KalmanFilterRegressor.from_params(**system.params)``).

    Notes
    -----
    ``system="random"`` draws, for every size not given: ``n_states`` uniformly in 1..6,
    ``n_outputs`` in 1..3, ``n_inputs`` in 0..2 (the ranges are in
    :data:`RANDOM_SYSTEM_RANGES`). The spectrum is built mode by mode: each mode's
    distance ``1 - |lambda|`` to the unit circle is log-uniform in [0.01, 0.7] (moduli
    0.3 to 0.99, slow modes as common as fast ones); with probability 1/2 (while two
    states remain) the mode is a complex pair with angle uniform in [0.05, pi - 0.05],
    otherwise a real eigenvalue, negative with probability 1/4. ``A`` is that modal
    matrix in a random orthonormal basis; ``C`` has i.i.d. ``N(0, 1/n_states)`` entries,
    ``B`` and ``D`` ``N(0, 1/n_inputs)``, ``D`` non-zero with probability 1/2.
    ``R = 0.1 I`` and ``Q = 0.1 rho I``, with the process-to-measurement noise ratio
    ``rho`` log-uniform in [1e-3, 1e2]. Every draw comes from ``random_state``.

    Examples
    --------
    >>> X, y, system = make_lds(system="two_rotations", n_samples=500, random_state=0)
    >>> X.shape, y.shape, system.A.shape
    ((500, 0), (500, 2), (4, 4))
    >>> X, y, system = make_lds(n_states=3, n_inputs=2, n_samples=100, random_state=0)
    >>> X.shape, y.shape, system.B.shape
    ((100, 2), (100,), (3, 2))
    >>> X, y, system = make_lds(system="random", n_samples=100, random_state=4)
    >>> system.name, bool(max(abs(system.eigenvalues)) < 1)
    ('random', True)
    """
    rng = check_random_state(random_state)
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    if not np.isfinite(input_scale) or input_scale < 0:
        raise ValueError(f"input_scale must be a non-negative number, got {input_scale}.")
    lengths = check_lengths(lengths, n_samples)

    drawn = system == "random"
    if drawn:
        ranges = RANDOM_SYSTEM_RANGES
        if n_states is None:
            n_states = int(rng.randint(ranges["n_states"][0], ranges["n_states"][1] + 1))
        if n_outputs is None:
            n_outputs = int(rng.randint(ranges["n_outputs"][0], ranges["n_outputs"][1] + 1))
        if n_inputs is None:
            n_inputs = int(rng.randint(ranges["n_inputs"][0], ranges["n_inputs"][1] + 1))
        if direct_feedthrough is None:
            direct_feedthrough = bool(rng.random() < 0.5)
        if measurement_noise is None:
            measurement_noise = ranges["measurement_noise"]
        ratio = _log_uniform(rng, *ranges["noise_ratio"])
        if process_noise is None:
            process_noise = float(ratio * ranges["measurement_noise"])
    n_inputs = 0 if n_inputs is None else n_inputs
    direct_feedthrough = bool(direct_feedthrough)
    process_noise = 0.1 if process_noise is None else process_noise
    measurement_noise = 0.1 if measurement_noise is None else measurement_noise
    if not isinstance(n_inputs, numbers.Integral) or n_inputs < 0:
        raise ValueError(f"n_inputs must be a non-negative integer, got {n_inputs!r}.")

    if system is not None and not drawn:
        if system not in _SYSTEMS:
            raise ValueError(f"unknown system {system!r}; choose 'random' or one of "
                             f"{SYSTEMS}.")
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
            eigenvalues = (_random_system_spectrum(n_states, rng) if drawn
                           else _random_eigenvalues(n_states, rng))
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
    W = gaussian_draws(rng, Q, n_samples)
    V = gaussian_draws(rng, R, n_samples)
    S = np.empty((n_samples, n_states))
    start = 0
    U_in = X @ B.T + W
    for n in lengths:
        first_state = m0 + gaussian_draws(rng, P0, 1)[0]
        S[start:start + n] = simulate_states(A, first_state, U_in[start:start + n])
        start += n
    Y = S @ C.T + X @ D.T + V
    y = Y[:, 0] if n_outputs == 1 else Y

    params = dict(zip(_PARAM_NAMES, (A, B, C, D, Q, R, m0, P0), strict=True))
    if name in _SYSTEMS:
        description = _SYSTEMS[name]["description"]
    else:
        description = (f"random stable system with {n_states} states, {n_outputs} outputs, "
                       f"{n_inputs} inputs, eigenvalue moduli "
                       f"{np.round(np.sort(np.abs(np.linalg.eigvals(A)))[::-1], 3).tolist()}, "
                       f"process/measurement noise {np.trace(Q) / n_states:.3g}/"
                       f"{np.trace(R) / n_outputs:.3g}")
    system_bunch = Bunch(
        **params, params=params, states=S, eigenvalues=np.linalg.eigvals(A),
        lengths=lengths, name=name, description=description,
    )
    return X, y, system_bunch


def _check_positive(value, name, *, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} finite number, got {value!r}.")
    return float(value)


def make_pendulum(n_samples=1000, *, lengths=None, dt=0.3, damping=0.3, process_noise=0.02,
                  measurement_noise=0.01, random_state=None):
    """Sample a damped pendulum whose angle is measured with noise (a nonlinear system).

    The state ``s_t = (theta_t, omega_t)`` (angle in radians, angular velocity) follows a
    semi-implicit Euler step of ``theta'' = -sin(theta) - damping * theta'`` with random
    kicks to the velocity, and the angle is measured::

        omega_t = omega_{t-1} - dt * (sin(theta_{t-1}) + damping * omega_{t-1}) + e_t
        theta_t = theta_{t-1} + dt * omega_t
        y_t     = theta_t + v_t,    e_t ~ N(0, process_noise),  v_t ~ N(0, measurement_noise)

    The fixed point is the pendulum at rest, ``s* = (0, 0)``; near it the step is the linear
    system ``s_t = J s_{t-1}`` with the Jacobian
    ``J = [[1 - dt**2, dt (1 - damping dt)], [-dt, 1 - damping dt]]`` (``det J = 1 - damping
    dt``). Far from it ``sin(theta) < theta``: large swings are slower than the linear
    model says, which no single linear model captures.

    Parameters
    ----------
    n_samples : int, default=1000
        Total number of time steps over all sequences.
    lengths : array-like of int, default=None
        Split the samples into independent sequences of these lengths.
    dt : float, default=0.3
        Time step, in units of the small-swing period over ``2 pi``.
    damping : float, default=0.3
        Friction coefficient; ``damping * dt`` must be below 1.
    process_noise : float, default=0.02
        Variance of the velocity kicks ``e_t``. The default swings up to about 1.8 rad
        (``sin`` is then 45% below the linear term) and very rarely over the top; much
        larger values make the pendulum rotate, and the angle (not wrapped) then settles
        near another rest point ``2 pi k``.
    measurement_noise : float, default=0.01
        Variance of the measurement noise ``v_t``.
    random_state : int, RandomState instance or None, default=None
        Seeds every draw.

    Returns
    -------
    X : ndarray of shape (n_samples, 0)
        No inputs (the pendulum is driven by its kicks alone).
    y : ndarray of shape (n_samples,)
        The measured angle.
    system : :class:`~sklearn.utils.Bunch`
        The truth: ``states`` of shape ``(n_samples, 2)``, ``fixed_point``, ``jacobian``
        (the transition's Jacobian at the fixed point), ``eigenvalues`` (of ``jacobian``),
        ``C`` (the measurement map, ``[[1, 0]]``), ``Q`` (the covariance of the state
        noise ``(dt e_t, e_t)``), ``R``, ``dt``, ``damping``, ``lengths``, ``name``
        (``"pendulum"``) and ``description``.

    Notes
    -----
    Each sequence starts from a draw of the stationary distribution of the linearization
    at the fixed point (the solution ``P`` of ``P = J P J^T + Q``), which is close to the
    pendulum's own for small kicks.

    Examples
    --------
    >>> import numpy as np
    >>> X, y, system = make_pendulum(n_samples=500, random_state=0)
    >>> X.shape, y.shape, system.states.shape
    ((500, 0), (500,), (500, 2))
    >>> system.fixed_point
    array([0., 0.])
    >>> np.abs(system.eigenvalues).round(4)  # sqrt(1 - damping * dt)
    array([0.9539, 0.9539])
    """
    rng = check_random_state(random_state)
    if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    dt = _check_positive(dt, "dt")
    damping = _check_positive(damping, "damping", allow_zero=True)
    if damping * dt >= 1:
        raise ValueError(f"damping * dt must be below 1 (a stable step), got {damping} * {dt}"
                         f" = {damping * dt:.4g}.")
    process_noise = _check_positive(process_noise, "process_noise", allow_zero=True)
    measurement_noise = _check_positive(measurement_noise, "measurement_noise",
                                        allow_zero=True)
    lengths = check_lengths(lengths, n_samples)

    J = np.array([[1.0 - dt**2, dt * (1.0 - damping * dt)], [-dt, 1.0 - damping * dt]])
    Q = process_noise * np.array([[dt**2, dt], [dt, 1.0]])
    P0 = linalg.solve_discrete_lyapunov(J, Q)
    kicks = np.sqrt(process_noise) * rng.standard_normal(n_samples)
    states = np.empty((n_samples, 2))
    start = 0
    for n in lengths:
        theta, omega = gaussian_draws(rng, P0, 1)[0]
        states[start] = theta, omega
        for t in range(start + 1, start + n):
            omega = omega - dt * (np.sin(theta) + damping * omega) + kicks[t]
            theta = theta + dt * omega
            states[t] = theta, omega
        start += n
    y = states[:, 0] + np.sqrt(measurement_noise) * rng.standard_normal(n_samples)
    eigenvalues = np.linalg.eigvals(J)
    # Positive imaginary part first, as DynamicsRecovery sorts a pair.
    eigenvalues = eigenvalues[np.argsort(-eigenvalues.imag, kind="stable")]
    system = Bunch(
        states=states, fixed_point=np.zeros(2), jacobian=J, eigenvalues=eigenvalues,
        C=np.array([[1.0, 0.0]]), Q=Q, R=np.array([[measurement_noise]]), dt=dt,
        damping=damping, lengths=lengths, name="pendulum",
        description=(f"damped pendulum (dt={dt:g}, damping={damping:g}), angle measured "
                     f"with noise variance {measurement_noise:g}, velocity kicks of "
                     f"variance {process_noise:g}; Jacobian at rest has eigenvalues "
                     f"{np.abs(eigenvalues[0]):.3f} exp(+-{abs(np.angle(eigenvalues[0])):.3f}i)"),
    )
    return np.zeros((n_samples, 0)), y, system


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
