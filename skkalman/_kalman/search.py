"""Quasi-Newton maximization of the exact log-likelihood.

EM climbs fast at first and then crawls: its rate is the fraction of information the
latent states hide, close to one along weakly identified directions (typically the split
of the noise between ``Q`` and ``R``). This module finishes the climb with a quasi-Newton
search on the exact log-likelihood, its gradient from the E-step by Fisher's identity.

Two things make that search well posed:

* **Coordinates.** Covariances enter through log-Cholesky factors (positive definite by
  construction, no bounds); the data are standardized by the estimator.
* **No similarity ridge.** ``(A, B, C, Q, prior)`` and ``(T A T^-1, T B, C T^-1, T Q T^T,
  ...)`` have the same likelihood for every invertible ``T``: an ``n_states^2``-dimensional
  ridge on which the Hessian is singular and quasi-Newton updates lose their way. The
  search moves only orthogonally to the ridge's tangent space at its starting point (data
  driven local coordinates, McKelvey, Helmersson & Ribarits 2004), re-centred whenever a
  run of the optimizer ends.

The search stops on a certificate, never on a stall: a point is certified when the gain a
Newton step would still bring is below the tolerance, first as the search's own curvature
model predicts it and then as the Hessian (central differences of the exact gradient)
confirms it (see :func:`quasi_newton`).
"""

import functools
from typing import NamedTuple

import numpy as np
from scipy import linalg

from .._linalg import cho_factor_psd, symmetrize
from .em import PARAM_NAMES, e_step, expected_gradient
from .filter import kalman_filter

__all__ = ["ObservedInformation", "Parametrization", "StationaryPriorError", "quasi_newton",
           "stationary_prior", "transform"]


@functools.lru_cache(maxsize=64)
def _tril_indices(n):
    """``np.tril_indices(n)``, computed once per size (the search asks thousands of times)."""
    rows, columns = np.tril_indices(n)
    rows.flags.writeable = columns.flags.writeable = False
    return rows, columns

_COVARIANCES = ("Q", "R", "initial_state_covariance")


class StationaryPriorError(ValueError):
    """The transition matrix has no stationary distribution (spectral radius >= 1)."""


def stationary_prior(A, B, Q, input_mean, input_covariance):
    """Mean and covariance of the stationary state: ``m = A m + B mu``, ``P = A P A^T + W``.

    ``W = Q + B Sigma_x B^T`` counts the inputs' variation. Raises
    :class:`StationaryPriorError` when ``A`` has an eigenvalue on or outside the unit circle.
    """
    n = A.shape[0]
    if n and np.max(np.abs(np.linalg.eigvals(A))) >= 1.0 - 1e-9:
        raise StationaryPriorError("spectral radius >= 1")
    m0 = np.linalg.solve(np.eye(n) - A, B @ input_mean) if n else np.zeros(0)
    W = symmetrize(Q + B @ input_covariance @ B.T)
    P0 = symmetrize(discrete_lyapunov(A, W))
    if not np.all(np.isfinite(P0)):
        raise StationaryPriorError("no finite stationary covariance")
    return m0, P0


def discrete_lyapunov(A, W):
    """``P`` with ``P = A P A^T + W``, by one dense solve (the matrices here are small).

    The Kronecker form ``(I - A kron A) vec(P) = vec(W)``: for a dozen states a solve of
    a few hundred unknowns, cheaper than a Schur-based solver's set-up.
    """
    n = A.shape[0]
    if n > 12:
        return linalg.solve_discrete_lyapunov(A, W)
    P = np.linalg.solve(np.eye(n * n) - np.kron(A, A), W.reshape(-1))
    return P.reshape(n, n)


class Parametrization:
    """Free parameters <-> one vector ``theta``, covariances as log-Cholesky factors.

    Parameters
    ----------
    params : StateSpaceParams
        Values of everything held (and the template of every shape).
    free : set of str
        Free matrices among ``A, C, Q, R, initial_state_mean, initial_state_covariance``
        (``B`` and ``D`` are free column by column, see below).
    b_columns, d_columns : ndarray of bool of shape (n_features,)
        Free columns of ``B`` and of ``D``; the others keep their values.
    stationary_prior : bool, default=False
        Whether ``initial_state_mean`` and ``initial_state_covariance`` follow ``A, B, Q``
        as the stationary distribution of the state (:func:`stationary_prior`) instead of
        being held or free.
    input_mean, input_covariance : ndarray, default=None
        Moments of the inputs, for the stationary prior.
    plain : set of str, default=()
        Covariances whose Cholesky diagonal is a coordinate itself rather than its log:
        the factor may then reach a singular covariance (and its sign is free).
    """

    def __init__(self, params, free, b_columns, d_columns, *, stationary_prior=False,
                 input_mean=None, input_covariance=None, plain=()):
        self.base = params
        self.plain = frozenset(plain)
        self.free = [name for name in PARAM_NAMES if name in free and name not in ("B", "D")]
        self.b_columns = np.asarray(b_columns, dtype=bool)
        self.d_columns = np.asarray(d_columns, dtype=bool)
        self.stationary = stationary_prior
        p = params.n_features
        self.input_mean = np.zeros(p) if input_mean is None else input_mean
        self.input_covariance = np.zeros((p, p)) if input_covariance is None else input_covariance
        self._blocks = []  # (name, slice)
        i = 0
        for name in PARAM_NAMES:
            size = self._size(name)
            if size:
                self._blocks.append((name, slice(i, i + size)))
                i += size
        self.size = i

    def at(self, params, plain=()):
        """The same coordinates around ``params``, with ``plain`` covariances' Cholesky
        diagonals in plain (not log) coordinates."""
        return Parametrization(params, self.free, self.b_columns, self.d_columns,
                               stationary_prior=self.stationary, input_mean=self.input_mean,
                               input_covariance=self.input_covariance, plain=plain)

    def _size(self, name):
        template = getattr(self.base, name)
        if name == "B":
            return template.shape[0] * int(self.b_columns.sum())
        if name == "D":
            return template.shape[0] * int(self.d_columns.sum())
        if name not in self.free:
            return 0
        if name in _COVARIANCES:
            n = template.shape[0]
            return n * (n + 1) // 2
        return template.size

    def pack(self, params):
        theta = np.empty(self.size)
        for name, rows in self._blocks:
            value = getattr(params, name)
            if name in _COVARIANCES:
                L = cho_factor_psd(value)
                if name not in self.plain:
                    L = _log_diagonal(L)
                theta[rows] = L[_tril_indices(L.shape[0])]
            elif name == "B":
                theta[rows] = value[:, self.b_columns].ravel()
            elif name == "D":
                theta[rows] = value[:, self.d_columns].ravel()
            else:
                theta[rows] = np.ravel(value)
        return theta

    def unpack(self, theta):
        """The parameters at ``theta``; raises StationaryPriorError where none exist."""
        changes = {}
        for name, rows in self._blocks:
            template = getattr(self.base, name)
            if name in _COVARIANCES:
                n = template.shape[0]
                L = np.zeros((n, n))
                L[_tril_indices(n)] = theta[rows]
                if name not in self.plain:
                    L[np.diag_indices(n)] = np.exp(np.diag(L))
                changes[name] = symmetrize(L @ L.T)
            elif name in ("B", "D"):
                columns = self.b_columns if name == "B" else self.d_columns
                value = template.copy()
                value[:, columns] = theta[rows].reshape(value.shape[0], -1)
                changes[name] = value
            else:
                changes[name] = theta[rows].reshape(template.shape)
        params = self.base.replace(**changes)
        if self.stationary:
            m0, P0 = stationary_prior(params.A, params.B, params.Q, self.input_mean,
                                      self.input_covariance)
            params = params.replace(initial_state_mean=m0, initial_state_covariance=P0)
        return params

    def gradient(self, grads, params, theta=None):
        """``d log p / d theta`` from the matrix gradients of :func:`expected_gradient`.

        ``theta``: the point itself, needed where a ``plain`` covariance's Cholesky
        diagonal may be negative (``params`` alone gives the factor with a positive one).
        """
        if self.stationary:
            grads = self._through_stationary_prior(grads, params)
        g = np.empty(self.size)
        for name, rows in self._blocks:
            G = grads[name]
            if name in _COVARIANCES:
                if name in self.plain and theta is not None:
                    n = G.shape[0]
                    L = np.zeros((n, n))
                    L[_tril_indices(n)] = theta[rows]
                else:
                    L = cho_factor_psd(getattr(params, name))
                dL = 2.0 * G @ L  # d log p / dL for Sigma = L L^T, G symmetric
                if name not in self.plain:
                    dL[np.diag_indices_from(dL)] *= np.diag(L)  # through L_ii = exp(l_ii)
                g[rows] = dL[_tril_indices(L.shape[0])]
            elif name == "B":
                g[rows] = G[:, self.b_columns].ravel()
            elif name == "D":
                g[rows] = G[:, self.d_columns].ravel()
            else:
                g[rows] = np.ravel(G)
        return g

    def _through_stationary_prior(self, grads, params):
        """Add the prior's dependence on ``A, B, Q`` to their gradients (adjoint method)."""
        A, B = params.A, params.B
        m0, P0 = params.initial_state_mean, params.initial_state_covariance
        n = A.shape[0]
        grads = dict(grads)
        # m0 = (I - A)^-1 B mu:  d m0 = (I - A)^-1 (dA m0 + dB mu).
        v = np.linalg.solve((np.eye(n) - A).T, grads["initial_state_mean"])
        # P0 = A P0 A^T + Q + B Sigma B^T:  tr(G dP0) = tr(X (dA P0 A^T + A P0 dA^T + dQ
        # + dB Sigma B^T + B Sigma dB^T)) with X = A^T X A + G.
        X = symmetrize(discrete_lyapunov(A.T, grads["initial_state_covariance"]))
        grads["A"] = grads["A"] + np.outer(v, m0) + 2.0 * X @ A @ P0
        grads["B"] = (grads["B"] + np.outer(v, self.input_mean)
                      + 2.0 * X @ B @ self.input_covariance)
        grads["Q"] = grads["Q"] + X
        return grads

    def similarity_directions(self, params):
        """Tangent directions of the similarity orbit at ``params``, columns of a matrix.

        ``d theta / d T`` at ``T = I`` for the change of basis ``s -> T s``, one column per
        entry of ``T``, by central differences of :meth:`pack` (exact enough to define the
        subspace the search leaves out). Empty when a held parameter pins the basis.
        """
        n = params.n_states
        pinned = {"A", "C", "Q"} - set(self.free)
        if pinned or (not self.stationary and {"initial_state_mean",
                                              "initial_state_covariance"} - set(self.free)):
            return np.zeros((self.size, 0))
        if np.any(params.B[:, ~self.b_columns] != 0):
            return np.zeros((self.size, 0))
        eps = 1e-6
        columns = []
        for i in range(n):
            for j in range(n):
                E = np.zeros((n, n))
                E[i, j] = eps
                plus = self.pack(transform(params, np.eye(n) + E))
                minus = self.pack(transform(params, np.eye(n) - E))
                columns.append((plus - minus) / (2 * eps))
        return np.column_stack(columns)


def _log_diagonal(L):
    L = L.copy()
    L[np.diag_indices_from(L)] = np.log(np.diag(L))
    return L


def transform(params, T):
    """The same model in the state basis ``s' = T s``."""
    T_inv = np.linalg.inv(T)
    return params.replace(
        A=T @ params.A @ T_inv, B=T @ params.B, C=params.C @ T_inv,
        Q=symmetrize(T @ params.Q @ T.T), initial_state_mean=T @ params.initial_state_mean,
        initial_state_covariance=symmetrize(T @ params.initial_state_covariance @ T.T),
    )


class _Objective:
    """``-log p(y) / n_observed`` and its gradient in reduced coordinates, cached."""

    def __init__(self, parametrization, sequences, n_observed, theta0, basis):
        self.par = parametrization
        self.sequences = sequences
        self.n_observed = n_observed
        self.theta0 = theta0
        self.basis = basis
        self._key = None
        self._value = None
        self._filtered = (None, None)  # (key, filter results) of the last value()

    def theta(self, eta):
        return self.theta0 + self.basis @ eta

    def evaluate(self, eta):
        key = eta.tobytes()
        if key != self._key:
            ll, grad, params = -np.inf, np.zeros(self.par.size), None
            self.stats = None
            try:
                theta = self.theta(eta)
                params = self.par.unpack(theta)
                filtered = self._filtered[1] if self._filtered[0] == key else None
                self._filtered = (None, None)  # (used once: no second copy held)
                stats, ll = e_step(params, self.sequences, filtered)
                self.stats = stats
                grad = self.par.gradient(expected_gradient(stats, params), params, theta)
            except (linalg.LinAlgError, ValueError, FloatingPointError):
                ll = -np.inf
            if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
                ll, grad = -np.inf, np.zeros(self.par.size)
            self._key, self._value = key, (ll, grad, params)
        return self._value

    def __call__(self, eta):
        ll, grad, _ = self.evaluate(eta)
        if not np.isfinite(ll):
            return np.inf, np.zeros(eta.size)
        return -ll / self.n_observed, -(self.basis.T @ grad) / self.n_observed

    def value(self, eta):
        """The objective alone, from the filter (no smoother, no gradient): the same
        number as ``self(eta)[0]`` wherever that is finite, for a fraction of its cost.
        The filter's results are kept, so that ``self(eta)`` next only adds the rest."""
        self._filtered = (None, None)
        try:
            params = self.par.unpack(self.theta(eta))
            filtered = [kalman_filter(params, X, y) for X, y in self.sequences]
        except (linalg.LinAlgError, ValueError, FloatingPointError):
            return np.inf
        ll = sum(result.log_likelihood for result in filtered)  # (as em.log_likelihood)
        if not np.isfinite(ll):
            return np.inf
        self._filtered = (eta.tobytes(), filtered)
        return -ll / self.n_observed


class SearchResult(NamedTuple):
    """Outcome of :func:`quasi_newton`."""

    params: object  # StateSpaceParams, the best point found
    log_likelihood: float
    certified: bool
    reason: str
    expected_gain: float  # the gain (nats) a Newton step would still bring, at the end
    information: object  # ObservedInformation at a certified point, else None


class ObservedInformation(NamedTuple):
    """The observed information at the maximum, in the search's reduced coordinates.

    ``theta = theta0 + basis @ eta`` (``eta = 0`` is the maximum); ``hessian`` is that of
    ``-log p`` with respect to ``eta`` (positive definite), so ``inv(hessian)`` is the
    asymptotic covariance of ``eta`` and, through ``parametrization.unpack``, of any
    function of the parameters (the delta method).
    """

    parametrization: object
    theta0: np.ndarray
    basis: np.ndarray
    hessian: np.ndarray


# Armijo's sufficient-decrease constant and the most step halvings per line search.
_ARMIJO = 1e-4
_MAX_HALVINGS = 40
# The curvature model is rebuilt, in coordinates centred afresh, after this many
# iterations per free coordinate.
_CYCLE = 4
# Most checks of the quasi-Newton model against the Hessian before giving up.
_MAX_HESSIAN_CHECKS = 8


def quasi_newton(params, log_likelihood, sequences, parametrization, monitor, *, tol,
                 n_observed, certify=True):
    """Maximize the exact log-likelihood from ``params``, to a certified stationary point.

    BFGS on ``-log p / n_observed`` in the reduced coordinates (the similarity ridge left
    out), its curvature model started from the expected complete-data information (EM's
    own metric), steps chosen by backtracking (the objective is infinite where the
    parameters leave their domain, e.g. a stationary prior with an unstable ``A``).

    When the model predicts that a Newton step would gain less than ``tol``, the claim is
    checked against the Hessian itself (central differences of the exact gradient). A
    positive-definite Hessian whose Newton decrement is below ``tol`` certifies a local
    maximum; directions of negative curvature are probed, and those along which no point
    climbs count as flat. Otherwise the search goes on with a model calibrated on that
    Hessian (a Newton step first); once such a model, updated by the step, predicts less
    than ``tol``, the point is certified too. A gradient criterion alone would not do:
    near a slow mode the curvature is large, and a gradient far above any fixed threshold
    means a gain far below a millionth of a nat.

    Parameters
    ----------
    params : StateSpaceParams
        The start (held values included).
    log_likelihood : float
        Its log-likelihood.
    sequences : list of (X, y) pairs
    parametrization : Parametrization
    monitor : ConvergenceMonitor
        Every iteration is reported to it; the search stops when its budget is spent.
    tol : float
        Certify when a Newton step would raise the log-likelihood by less than ``tol``
        (nats).
    n_observed : int
        Observed values in ``sequences``.
    certify : bool, default=True
        False stops where the quasi-Newton model first predicts less than ``tol``,
        without the Hessian's check (a cheap heat of a race between starts).

    Returns
    -------
    result : SearchResult
    """
    state = _SearchState(params, log_likelihood, monitor)
    target = tol / n_observed  # in the objective's units (per observed value)
    checks = 0
    expected_gain = np.inf
    while monitor.budget > 0:
        theta0 = parametrization.pack(state.best_params)
        basis = _reduced_basis(parametrization, state.best_params)
        objective = _Objective(parametrization, sequences, n_observed, theta0, basis)
        k = basis.shape[1]
        x = np.zeros(k)
        f, g = objective(x)
        if not np.isfinite(f):
            return state.result(False, "the log-likelihood is not finite at the search's "
                                "start", np.inf)
        metric = _complete_data_inverse_hessian(parametrization, objective.stats, theta0,
                                                basis, n_observed)
        H, n_updates = None, 0
        for _ in range(_CYCLE * max(k, 5)):
            if H is not None:
                direction = -H @ g
            elif metric is not None:
                direction = -metric @ g
            else:
                direction = -g * (0.1 / max(float(np.max(np.abs(g))), 1e-300))
            if not g @ direction < 0:  # the model lost positive definiteness
                H, n_updates, direction = None, 0, -g
            expected_gain = 0.5 * float(-g @ direction)
            # The model's promise is checked on the Hessian once the model has learned
            # some curvature, or at once when it promises far less than needed.
            if expected_gain <= target and (n_updates >= min(k, 10)
                                            or expected_gain <= 0.01 * target):
                if not certify:
                    return state.result(False, "the quasi-Newton model predicts less than "
                                        "tol (not checked)", expected_gain * n_observed)
                hessian = _hessian(objective, x, g)
                checks += 1
                if hessian is None:
                    return state.result(
                        False, "the likelihood keeps rising towards the edge of the model's "
                        "domain, where it is not defined (e.g. an eigenvalue of A on the "
                        "unit circle under the stationary prior: hold the prior with "
                        "fixed=, or give more sequences than states)", np.inf)
                decrement = _newton_decrement(hessian, g)
                probed = False
                if decrement is None and _newton_decrement(hessian, g, probed=True) <= target:
                    # Stationary along every direction the Hessian resolves: look along
                    # the others. A point that climbs is where the search goes on; if
                    # none does, they hold nothing within reach.
                    escape = _probe_unresolved(objective, x, f, hessian, target)
                    if escape is not None:
                        x, f, g = escape
                        state.report(objective, x, "search")
                        H, n_updates = _positive_inverse(hessian), 0
                        continue
                    decrement = _newton_decrement(hessian, g, probed=True)
                    probed = True
                if decrement is not None and decrement <= target:
                    # Certified. The Newton step from the checked Hessian costs one more
                    # evaluation and, near a maximum, squares the remaining error.
                    step = -_positive_inverse(hessian) @ g
                    f_newton, _ = objective(x + step)
                    if np.isfinite(f_newton) and f_newton < f and monitor.budget > 0:
                        x = x + step
                        state.report(objective, x, "newton")
                    reason = ("a Newton step would gain less than tol (checked on the "
                              "Hessian" + (", the directions it leaves flat probed: no gain "
                                           "within a unit step)" if probed else ")"))
                    return state.result(True, reason, decrement * n_observed,
                                        ObservedInformation(parametrization,
                                                            objective.theta(x), basis,
                                                            hessian * n_observed))
                if checks >= _MAX_HESSIAN_CHECKS:
                    return state.result(
                        False, "the Hessian check failed repeatedly (the likelihood is flat "
                        "or curved beyond its quadratic model near this point)",
                        np.inf if decrement is None else decrement * n_observed)
                if hessian is not None:
                    # Go on from the Hessian itself: the next step is Newton's.
                    H, n_updates = _positive_inverse(hessian), 0
                    direction = -H @ g
                    expected_gain = 0.5 * float(-g @ direction)
            if monitor.budget == 0:
                break
            step = direction
            length = float(np.linalg.norm(step))
            if length > 1.0:  # at most a unit step in the standardized coordinates
                step = step / length
            alpha, f_new, g_new = _backtrack(objective, x, f, g, step)
            if alpha is None:
                if H is None and metric is None:
                    return state.result(
                        False, "no step along the gradient increases the log-likelihood "
                        "(round-off level) before a certified maximum",
                        expected_gain * n_observed)
                # The model's direction failed: fall back to the plain gradient.
                H, metric, n_updates = None, None, 0
                continue
            s_k, y_k = alpha * step, g_new - g
            x, f, g = x + s_k, f_new, g_new
            state.report(objective, x, "search")
            sy = float(s_k @ y_k)
            if sy > 1e-12 * np.linalg.norm(s_k) * np.linalg.norm(y_k):
                if H is None:
                    H0 = np.eye(k) if metric is None else metric
                    H = H0 * (sy / float(y_k @ H0 @ y_k))  # Shanno-Phua scaling
                rho = 1.0 / sy
                Hy = H @ y_k
                H = (H - rho * (np.outer(s_k, Hy) + np.outer(Hy, s_k))
                     + (rho * rho * float(y_k @ Hy) + rho) * np.outer(s_k, s_k))
                n_updates += 1
        # The cycle ended (or the budget did): re-centre the coordinates at the best point.
    return state.result(False, "the iteration budget ran out", expected_gain * n_observed)


class _SearchState:
    """The best point so far; reports every accepted step to the monitor."""

    def __init__(self, params, log_likelihood, monitor):
        self.best_params, self.best_ll = params, log_likelihood
        self.monitor = monitor

    def report(self, objective, x, stage):
        ll, _, params = objective.evaluate(x)
        self.monitor.report(ll, stage)
        if ll > self.best_ll:
            self.best_params, self.best_ll = params, ll

    def result(self, certified, reason, expected_gain, information=None):
        return SearchResult(self.best_params, self.best_ll, certified, reason,
                            expected_gain, information)


def _hessian(objective, x, g, h=1e-4):
    """Hessian of the objective at ``x``: central differences of its exact gradient.

    (Error of order ``h^2``: fine enough to tell a flat direction from a negative one.)
    """
    k = x.size
    columns = []
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        f_plus, g_plus = objective(x + e)
        f_minus, g_minus = objective(x - e)
        if not (np.isfinite(f_plus) and np.isfinite(f_minus)):
            return None
        columns.append((g_plus - g_minus) / (2 * h))
    H = np.column_stack(columns)
    return 0.5 * (H + H.T)


# Curvatures below this fraction of the largest count as flat (a direction the data do
# not identify, or a variance at its boundary, where the maximum lies at infinity in
# log-Cholesky coordinates): the central differences cannot resolve them (their error is
# about 1e-8 of the largest curvature).
_FLAT = 1e-7


def _newton_decrement(hessian, g, probed=False):
    """The gain still within reach, ``g^T H^-1 g / 2`` over the resolved directions;
    None where it cannot be told from the Hessian alone.

    Directions whose curvature is below ``_FLAT`` times the largest (flat, or negative)
    are not resolved by the Hessian: with ``probed=False`` their presence gives None
    (they must be probed); with ``probed=True`` (probes along them found no gain) they
    count for nothing.
    """
    if hessian is None or not np.all(np.isfinite(hessian)):
        return None
    w, V = np.linalg.eigh(hessian)
    resolved = w > _FLAT * max(float(w.max()), 1e-300)
    if not probed and not resolved.all():
        return None
    z = V.T @ g
    return 0.5 * float(np.sum(z[resolved] ** 2 / w[resolved]))


# Step lengths (standardized coordinates) tried along an unresolved direction.
_PROBES = (0.01, 0.03, 0.1, 0.3, 1.0)
_MAX_PROBED_DIRECTIONS = 8


def _probe_unresolved(objective, x, f, hessian, target):
    """The best point along the directions the Hessian does not resolve, if it climbs.

    Flat or negative curvature (below ``_FLAT`` of the largest): the quadratic model says
    nothing there, so the objective itself is evaluated at steps of 0.01 to 1 each way.
    Returns ``(x, f, g)`` of the best probe when it lowers the objective by more than
    ``target``, else None.
    """
    w, V = np.linalg.eigh(hessian)
    floor = _FLAT * max(float(w.max()), 1e-300)
    climbs = []
    for j in np.flatnonzero(w <= floor)[:_MAX_PROBED_DIRECTIONS]:
        for length in _PROBES:
            for sign in (1.0, -1.0):
                candidate = x + sign * length * V[:, j]
                f_c = objective.value(candidate)  # (the filter alone: probes are many)
                if f_c < f - target:
                    climbs.append((f_c, len(climbs), candidate))
    # The best probe whose gradient can be had too (where the smoother fails, the next).
    for _, _, candidate in sorted(climbs, key=lambda climb: climb[:2]):
        f_c, g_c = objective(candidate)
        if np.isfinite(f_c):
            return candidate, f_c, g_c
    return None


def _positive_inverse(hessian):
    """Inverse of ``hessian`` with its eigenvalues reflected and floored (a descent model)."""
    w, V = np.linalg.eigh(hessian)
    w = np.maximum(np.abs(w), _FLAT * max(np.abs(w).max(), 1e-300))
    return (V / w) @ V.T


def _backtrack(objective, x, f, g, step):
    """Largest ``alpha = 2^-j`` with Armijo's decrease along ``step``; None if none.

    Each trial is scored by the filter alone; the smoother and the gradient are added
    only where Armijo's test passes (a rejected trial costs a fraction of an iterate).
    """
    slope = float(g @ step)
    alpha = 1.0
    for _ in range(_MAX_HALVINGS):
        candidate = x + alpha * step
        if objective.value(candidate) <= f + _ARMIJO * alpha * slope:
            f_new, g_new = objective(candidate)
            if np.isfinite(f_new):  # (infinite where the smoother fails: a rejection)
                return alpha, f_new, g_new
        alpha *= 0.5
    return None, f, g


def _complete_data_inverse_hessian(parametrization, stats, theta, basis, n_observed):
    """Inverse Hessian of the expected complete-data log-likelihood, per observed value.

    The curvature EM itself steps with: a quasi-Newton model started from it takes EM's
    step first and only has to learn the curvature the missing states take away
    (Jamshidian & Jennrich, 1997). It needs no filtering: the gradient of the expected
    complete-data log-likelihood at fixed statistics, differenced along each coordinate.
    Negative curvature (possible away from the M-step's maximum in log-Cholesky
    coordinates) is reflected, so the model stays positive definite. None on failure.
    """
    if stats is None:
        return None
    h = 1e-5

    def gradient(t):
        params = parametrization.unpack(t)
        return basis.T @ parametrization.gradient(expected_gradient(stats, params), params, t)

    try:
        columns = [(gradient(theta + h * b) - gradient(theta - h * b)) / (2 * h)
                   for b in basis.T]
        H = -np.column_stack(columns) / n_observed
        w, V = np.linalg.eigh(0.5 * (H + H.T))
    except (linalg.LinAlgError, ValueError, FloatingPointError):
        return None
    if not np.all(np.isfinite(w)) or w.size == 0:
        return None
    w = np.maximum(np.abs(w), 1e-8 * np.abs(w).max())
    return (V / w) @ V.T


def _reduced_basis(parametrization, params):
    """Orthonormal basis of the directions orthogonal to the similarity orbit."""
    tangent = parametrization.similarity_directions(params)
    if tangent.shape[1] == 0:
        return np.eye(parametrization.size)
    U, s, _ = np.linalg.svd(tangent, full_matrices=True)
    rank = int(np.sum(s > 1e-8 * max(s.max(initial=0.0), 1e-300)))
    return U[:, rank:]
