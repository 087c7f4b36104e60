"""The linear-Gaussian state-space model as a scikit-learn regressor."""

import numbers
import warnings

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ._atomic import atomic_fit
from ._kalman import StateSpaceParams, kalman_filter, rts_smoother
from ._kalman.em import PARAM_NAMES, e_step, m_step
from ._kalman.monitor import ConvergenceMonitor
from ._kalman.search import (
    Parametrization,
    StationaryPriorError,
    quasi_newton,
    stationary_prior,
    transform,
)
from ._kalman.simulate import gaussian_draws, simulate_states
from ._kalman.start import initial_params, split_start
from ._kalman.subspace import lagged_target_columns
from ._linalg import one_blas_thread
from ._sequences import restore_y_shape, validate_sequences
from ._sklearn_compat import Interval, StrOptions, check_is_fitted
from .metrics import _observed_r2_score

__all__ = ["KalmanFilterRegressor"]

_COVARIANCE_NAMES = ("Q", "R", "initial_state_covariance")
FIXED_KEYS = PARAM_NAMES + ("intercept",)
_PRIOR = ("initial_state_mean", "initial_state_covariance")
# Held parameters that tie the state's basis (a start in another basis would break them).
_BASIS_BOUND = ("A", "B", "C", "Q") + _PRIOR
# Starts that race (the likeliest subspace estimates) and the iterations each runs.
_N_STARTS = 3
_RACE = 100
# Iterations the start that splits a merged mode gets to climb above the maximum found
# (on the system that needed it, from either of two maxima of equal likelihood: above
# after 20 from one, after 76 to 100 from the other).
_SPLIT_RACE = 100
# EM hands over to the quasi-Newton search once its gains shrink only linearly (each of the
# last few above this fraction of the one before): its slow tail.
_EM_TAIL_RATIO = 0.7
_EM_TAIL_RUN = 3


# The spread of y must stay within 2**+-500 (about 3e+-151): its square, the scale of the
# noise covariance R_ in the user's units, then stays a normal float64 with room for a
# noise far smaller or larger than the spread.
_Y_SCALE_EXPONENTS = (-500, 500)


def _column_peak(values):
    """Largest magnitude of each column ignoring NaN (1 where it is 0 or not finite)."""
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.abs(values), axis=0, initial=0.0) if values.size else (
            np.zeros(values.shape[1:]))
    return np.where(np.isfinite(peak) & (peak > 0), peak, 1.0)


def _robust_mean(values):
    """Mean of each column ignoring NaN, without overflow for values near float64's limit."""
    values = np.asarray(values, dtype=float)
    peak = _column_peak(values)
    return np.nanmean(values / peak, axis=0) * peak


def _robust_scale(values):
    """Root mean square of each column ignoring NaN, without overflow or underflow."""
    values = np.asarray(values, dtype=float)
    peak = _column_peak(values)
    return np.sqrt(np.nanmean((values / peak) ** 2, axis=0)) * peak


def _power_of_two(values):
    """Nearest powers of two of positive ``values`` (1 where a value is 0 or not finite).

    Scaling by a power of two is exact in floating point, so held parameters survive the
    round trip to the internal units bit for bit. The exponent stays within float64's
    normal range (a spread near 1e308 must not round up to infinity).
    """
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (values > 0)
    out = np.ones_like(values)
    exponents = np.clip(np.round(np.log2(values[ok])), -1022, 1023)
    out[ok] = np.exp2(exponents)
    return out


def _check_not_constant(y):
    """Reject a target whose observed values are all equal: its likelihood is unbounded."""
    for k in range(y.shape[1]):
        observed = y[~np.isnan(y[:, k]), k]
        if np.all(observed == observed[0]):
            raise ValueError(
                f"column {k} of y is constant: its n_samples = {observed.size} observed "
                f"values are all {float(observed[0])!r}. The noise variance R_ would shrink "
                "to zero and the likelihood has no maximum; there are no dynamics to fit."
            )


def _check_matrix(name, value, shape, covariance=False):
    """A float copy of ``value`` with the given shape, finite (and PSD for a covariance)."""
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from None
    if array.shape != shape:
        if array.size == int(np.prod(shape)) and (array.ndim <= 1 or len(shape) == 1):
            array = array.reshape(shape)
        else:
            raise ValueError(f"{name} must have shape {shape}, got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity.")
    if covariance and array.size:
        scale = max(float(np.max(np.abs(array))), np.finfo(float).tiny)
        if not np.allclose(array, array.T, rtol=0.0, atol=1e-10 * scale):
            raise ValueError(f"{name} must be symmetric (a covariance matrix).")
        lowest = float(np.linalg.eigvalsh(0.5 * (array + array.T)).min())
        if lowest < -1e-10 * scale:
            raise ValueError(
                f"{name} must be positive semi-definite (a covariance matrix); its smallest "
                f"eigenvalue is {lowest:.3g}."
            )
    return array


def _expected_shapes(n_states, n_features, n_targets):
    n, p, m = n_states, n_features, n_targets
    return {
        "A": (n, n), "B": (n, p), "C": (m, n), "D": (m, p), "Q": (n, n), "R": (m, m),
        "initial_state_mean": (n,), "initial_state_covariance": (n, n),
        "intercept": (m,),
    }


class _Units:
    """The estimator's internal units, and the exact maps between them and the user's.

    Internally the inputs are centred and scaled, ``x~ = (x - mu_x) / s_x``, the
    measurements too, ``y~ = (y - mu_y) / s_y`` (scales are powers of two, exact in
    floating point), and, with an intercept, a constant column of ones is appended to the
    inputs, whose ``D`` column is the intercept and whose ``B`` column is held at zero.
    Centring the inputs moves the state by the constant ``c = (I - A)^-1 B mu_x``; the
    intercept and the prior mean absorb it, so the model is the same, only better
    conditioned: a level in ``y`` or a mean in ``X`` never costs a state.
    """

    def __init__(self, data, fit_intercept, fixed):
        n_targets = data.y.shape[1]
        self.intercept = fit_intercept
        intercept_free = fit_intercept and "intercept" not in fixed
        # Centring moves the intercept and the prior mean: both must be free to follow.
        center_y = intercept_free
        center_x = (intercept_free and "initial_state_mean" not in fixed
                    and "A" not in fixed)
        _check_not_constant(data.y)
        self.y_mean = _robust_mean(data.y) if center_y else np.zeros(n_targets)
        self.x_mean = np.zeros(data.X.shape[1])
        if center_x:
            # A constant column is centred on its value exactly: a computed mean may be
            # off by a rounding error, a residue that would then pass for its spread.
            constant = np.all(data.X[:1] == data.X, axis=0)
            self.x_mean = np.where(constant, data.X[0], _robust_mean(data.X))
        with np.errstate(over="ignore", invalid="ignore"):
            y_spread = _robust_scale(data.y - self.y_mean)
            x_spread = _robust_scale(data.X - self.x_mean)
        low, high = np.exp2(_Y_SCALE_EXPONENTS)
        outside = np.flatnonzero(~((y_spread >= low) & (y_spread <= high)))
        if outside.size:
            k = outside[0]
            raise ValueError(
                f"column {k} of y spreads {y_spread[k]:.3g} (root mean square) around "
                f"{'its level' if center_y else 'zero'}: its variance, the scale of the "
                "noise covariance R_, does not fit in float64. Rescale y to a spread "
                f"within {low:.1e} .. {high:.1e}."
            )
        if not np.all(np.isfinite(x_spread)):
            j = np.flatnonzero(~np.isfinite(x_spread))[0]
            raise ValueError(f"column {j} of X spreads beyond float64's range around its "
                             "mean; rescale X.")
        self.y_scale = _power_of_two(y_spread)
        self.x_scale = _power_of_two(x_spread)
        # Inputs that repeat a target one step back (the forecasting set-up, detected
        # exactly in the user's units) get that target's centre and scale, so that they
        # stay copies of it inside too: {target: (column, +-1)}.
        # (Its ratios of values near float64's limits may overflow: no copy, no warning.)
        with np.errstate(over="ignore", invalid="ignore"):
            lagged = lagged_target_columns([(data.X[s], data.y[s]) for s in data.slices])
        self.lagged = None
        if lagged and len(lagged) == n_targets:
            self.lagged = {}
            for k, (j, factor) in lagged.items():
                if center_x:
                    self.x_mean[j] = factor * self.y_mean[k]
                self.x_scale[j] = abs(factor) * self.y_scale[k]
                self.lagged[k] = (j, float(np.sign(factor)))

    def sequences(self, data):
        X = (data.X - self.x_mean) / self.x_scale
        if self.intercept:
            X = np.hstack([X, np.ones((X.shape[0], 1))])
        y = (data.y - self.y_mean) / self.y_scale
        return [(X[s], y[s]) for s in data.slices]

    @property
    def log_jacobian(self):
        """``log p(y) - log p(y~)`` per observed value of each target: ``-log s_y``."""
        return -np.log(self.y_scale)

    def to_internal(self, params, intercept):
        """Held values in internal units (only where the maps need no free parameter)."""
        sy, sx = self.y_scale, self.x_scale
        B, D = params.B * sx[None, :], params.D * sx[None, :] / sy[:, None]
        if self.intercept:
            d = (intercept - self.y_mean) / sy
            B = np.hstack([B, np.zeros((B.shape[0], 1))])
            D = np.hstack([D, d[:, None]])
        return params.replace(B=B, C=params.C / sy[:, None], D=D,
                              R=params.R / np.outer(sy, sy))

    def to_user(self, params):
        """The fitted model in the user's units, and its intercept."""
        sy, sx = self.y_scale, self.x_scale
        n_in = sx.size
        B, D = params.B[:, :n_in] / sx[None, :], params.D[:, :n_in] * sy[:, None] / sx[None, :]
        C = params.C * sy[:, None]
        d = params.D[:, n_in] * sy if self.intercept else np.zeros(C.shape[0])
        m0 = params.initial_state_mean
        if np.any(self.x_mean != 0):
            # The constant the centring took off the state: c = A c + B mu_x.
            I_A = np.eye(params.n_states) - params.A
            c = linalg.lstsq(I_A, B @ self.x_mean)[0]
            d = d - C @ c - D @ self.x_mean
            m0 = m0 + c
        if self.intercept:
            d = d + self.y_mean
        return params.replace(B=B, C=C, D=D, R=params.R * np.outer(sy, sy),
                              initial_state_mean=m0), d


def _no_likelihood(fixed, detail):
    """The error of a fit whose start has no finite likelihood (only held values cause it:
    a free start is the data's own estimate)."""
    return ValueError(
        f"the values held in fixed ({sorted(fixed)}) leave the data no finite likelihood "
        f"({detail}): e.g. an unstable A lets the states grow without bound, zero R and Q "
        "leave no noise to explain y, or values far beyond the data's scale."
    )


def _in_slow_tail(gains):
    """Whether EM has entered its linear tail: each recent gain above a fixed fraction of
    the one before. There EM needs many iterations per digit; the search does not."""
    if len(gains) < _EM_TAIL_RUN + 2:
        return False
    recent = np.asarray(gains[-_EM_TAIL_RUN - 1:])
    return bool(np.all(recent[1:] > _EM_TAIL_RATIO * recent[:-1]))


def _normalized_basis(params, stats):
    """The same model in the basis where the states' average second moment is ``I``.

    Puts every free coordinate of the search on the same scale (EM drifts along the
    similarity ridge to arbitrary bases).
    """
    moment = stats.S_ss / stats.n_rows
    try:
        L = np.linalg.cholesky(0.5 * (moment + moment.T))
    except np.linalg.LinAlgError:
        return params
    if not np.all(np.isfinite(L)) or np.linalg.cond(L) > 1e8:
        return params
    return transform(params, np.linalg.inv(L))


def _input_moments(sequences):
    """Mean and covariance of the (internal) inputs over every row."""
    X = np.vstack([X for X, _ in sequences])
    centred = X - X.mean(axis=0)
    return X.mean(axis=0), centred.T @ centred / X.shape[0]


# A certified maximum whose process noise covariance has an eigenvalue below this fraction
# of its largest is searched again with Q's Cholesky diagonal in plain coordinates, after
# a cheap look (uncertified, to this fraction of tol) has seen more than tol to gain.
_NEARLY_SINGULAR = 1e-2
_MAX_SINGULAR_ROUNDS = 3
_LOOK_TOL = 1e-2


def _towards_singular_process_noise(result, parametrization, sequences, monitor, tol,
                                    n_observed):
    """Climb on from a search's end whose ``Q`` is nearly singular.

    The search's log-Cholesky coordinates keep ``Q`` positive definite by putting a
    singular ``Q`` infinitely far away; where the likelihood rises towards one (a state
    whose process noise is all but zero), its local quadratic model sees a fraction of
    the remaining gain, and the point is certified short of the maximum (measured: 0.19
    nats, with a Newton decrement of 0.0009). In plain Cholesky coordinates (the diagonal
    itself, which may reach zero) the same likelihood is smooth up to the boundary. So:
    a cheap climb in plain coordinates (no Hessian, to see whether there is anything to
    gain), and where it gains more than ``tol``, a certified search in plain coordinates
    from the certified point (continued in the usual coordinates where the checks fail
    at the boundary); repeated while it gains. The result replaces the certified one only
    when it is certified too. A search that ended uncertified (e.g. its Hessian checks
    kept failing while it crawled towards a singular ``Q``: 8 checks, each 1 to 3 times
    ``tol`` short, on a random 4-state system that plain coordinates certified in 40
    iterations, 0.025 nats higher) goes straight to the certified search.
    """
    for _ in range(_MAX_SINGULAR_ROUNDS):
        w = np.linalg.eigvalsh(result.params.Q)
        if not w[0] < _NEARLY_SINGULAR * w[-1] or monitor.budget == 0:
            break
        plain = parametrization.at(result.params, plain={"Q"})
        # A cheap look first (no Hessian): most nearly singular Q have nothing to gain.
        # Its model must promise less than a hundredth of tol before the look concludes
        # so: with tol itself it stopped 0.0008 nats up a 0.14-nat climb (seed 9 of the
        # robustness benchmark, where the model's curvature was far off). Its iterates
        # count, but are not recorded: the search goes on from the certified point.
        if result.certified:
            look = monitor.trial()
            climb = quasi_newton(result.params, result.log_likelihood, sequences, plain,
                                 look, tol=tol * _LOOK_TOL, n_observed=n_observed,
                                 certify=False)
            monitor.absorb(look, adopt=False)
            if not climb.log_likelihood > result.log_likelihood + tol:
                break
        # From the certified point again, not from the climb's end: measured on the system
        # that needed this (see the tests), the Hessian checks failed from the climb's end
        # in both coordinates and certified from the certified point.
        trial = monitor.trial()
        climb = quasi_newton(result.params, result.log_likelihood, sequences, plain,
                             trial, tol=tol, n_observed=n_observed)
        if not climb.certified:
            # (e.g. curvature the checks cannot resolve at the boundary): certify where it
            # got in the usual coordinates.
            climb = quasi_newton(climb.params, climb.log_likelihood, sequences,
                                 parametrization.at(climb.params), trial, tol=tol,
                                 n_observed=n_observed)
        adopt = climb.certified and climb.log_likelihood >= result.log_likelihood
        monitor.absorb(trial, adopt)
        if not adopt:
            break
        result = climb
    return result


class KalmanFilterRegressor(RegressorMixin, BaseEstimator):
    """Linear-Gaussian state-space model (Kalman filter) learned by maximum likelihood.

    ``X`` holds known inputs and ``y`` the measurements (NaN = missing); rows are time
    steps, several sequences are concatenated and described by ``lengths``. The model is
    fitted by maximum likelihood: a subspace-identification start, a few EM iterations
    (closed-form M-steps), then a quasi-Newton search on the exact log-likelihood run
    until a Newton step, checked on the Hessian, would gain less than ``tol``.

    Parameters
    ----------
    n_states : int, default=2
        Dimension of the state ``s_t``.
    fit_intercept : bool, default=True
        Learn the level ``d`` of the measurements (``intercept_``), so that a level in
        ``y`` or a mean in ``X`` never costs a state. False: ``d = 0``.
    n_iter : int, default=1000
        Most iterations, EM and search together (each costs one filter + smoother pass).
    tol : float, default=1e-3
        The fit is certified (``converged_``) when a Newton step would raise the
        log-likelihood by less than ``tol`` nats, a claim checked on the Hessian (central
        differences of the exact gradient); see Notes. Otherwise a
        :class:`~sklearn.exceptions.ConvergenceWarning` says what stopped the search.
    init : {"subspace", "random"}, default="subspace"
        Starting point: a predictor-based subspace identification (causal ARX regression,
        then an SVD of the past-to-future map, on interpolated measurements where some
        are missing), or random matrices drawn with ``random_state``. When ``A`` or ``C``
        is fixed, the state's basis is given and the free parameters start from plain
        moment guesses instead.
    n_init : int, default=1
        Number of maximizations, each to its certified maximum; the one with the highest
        likelihood is kept (as in :class:`~sklearn.mixture.GaussianMixture`). With
        ``init="subspace"`` they start from the ``n_init`` leaders of the race between
        subspace starts (see Notes), then from random starts once those run out; with
        ``init="random"``, from random starts. Raise it when local maxima matter (see
        Notes): ``n_init=3`` takes about twice the time.
    fixed : dict, default=None
        Parameters held at given values, keyed by ``"A", "B", "C", "D", "Q", "R",
        "initial_state_mean", "initial_state_covariance", "intercept"``. They are
        returned bit for bit.
    random_state : int, RandomState instance or None, default=None
        Seeds ``init="random"`` and the restarts of ``n_init``.
    verbose : int, default=0
        When positive, print one line per accepted iteration.

    Attributes
    ----------
    A_ : ndarray of shape (n_states, n_states)
        Transition matrix.
    B_ : ndarray of shape (n_states, n_features)
        Input matrix (zero for inputs that never vary).
    C_ : ndarray of shape (n_targets, n_states)
        Measurement matrix.
    D_ : ndarray of shape (n_targets, n_features)
        Feed-through matrix.
    Q_ : ndarray of shape (n_states, n_states)
        Process noise covariance.
    R_ : ndarray of shape (n_targets, n_targets)
        Measurement noise covariance.
    intercept_ : ndarray of shape (n_targets,)
        The level ``d`` of the measurements (zeros when ``fit_intercept=False``).
    initial_state_mean_ : ndarray of shape (n_states,)
        Prior mean of the state at the first row of each sequence. Learned when there
        are more training sequences than states. With fewer, their starts cannot identify
        it (maximum likelihood would collapse the prior onto them, wrong for any new
        sequence): the prior is then the state's stationary distribution under the
        model (``m = A m + B mean(x)``), a function of ``A, B, Q`` throughout the fit.
    initial_state_covariance_ : ndarray of shape (n_states, n_states)
        Prior covariance of that state; learned, or stationary
        (``P = A P A^T + Q + B Cov(x) B^T``) when the sequences are few.
    log_likelihoods_ : ndarray of shape (n_accepted + 1,)
        ``log p(y | X)`` at the start and after every accepted iteration (EM, search);
        never decreasing.
    n_iter_ : int
        Iterations run, accepted or not.
    converged_ : bool
        Whether the fit ended at a certified local maximum (see ``tol``); a stop for
        any other reason (the budget, a likelihood too flat to certify) is not.
    n_features_in_ : int
        Number of input columns seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features,)
        Input names, when ``X`` had string column names.

    See Also
    --------
    skkalman.ElmanRNNRegressor : the nonlinear recurrent counterpart.
    skkalman.DynamicsRecovery : the learned dynamics in canonical coordinates.

    Notes
    -----
    The model, with the input acting on the state in the same step::

        s_t = A s_{t-1} + B x_t + w_t,       w_t ~ N(0, Q)
        y_t = C s_t     + D x_t + d + v_t,   v_t ~ N(0, R)

    and ``s_1 ~ N(initial_state_mean, initial_state_covariance)`` at the first row of every
    sequence, before its measurement update.

    *Units.* Internally inputs and measurements are centred and scaled by powers of two
    (exact in floating point); the centring is absorbed exactly by the intercept and the
    prior mean, so data in any units and with any level fit alike.

    *The search.* EM climbs fast and then crawls along weakly identified directions (its
    rate is the fraction of information the states hide). Once its gains shrink only
    linearly, a BFGS search on the exact log-likelihood takes over: covariances as
    log-Cholesky factors, the similarity ridge (every change of the state's basis gives
    the same likelihood) left out of the coordinates, the curvature model started from
    EM's own metric (the expected complete-data information), the gradient exact (Fisher's
    identity). The search stops on a certificate, not on a stall: when its model predicts
    that a Newton step would gain less than ``tol``, the Hessian is computed by central
    differences of the gradient; a maximum is certified when it is positive definite (up
    to flat directions: curvature below 1e-7 of the largest) and its Newton decrement is
    below ``tol``. Directions of negative curvature are probed (steps of 0.01 to 1 along
    each): one that climbs continues the search, none that does makes them flat. A
    certified point whose ``Q`` is nearly singular is searched again with ``Q``'s Cholesky
    diagonal in plain coordinates, which reach a singular ``Q`` (log-Cholesky ones put it
    infinitely far away, and their local model can miss most of a climb towards it). The
    Hessian at the maximum is the observed information, kept for the uncertainty of what
    :class:`~skkalman.DynamicsRecovery` derives from the fit. On 50 random systems
    (``benchmarks/bench_kalman_robustness.py``) an independent L-BFGS search started
    from the fit finds a median gain of a few thousandths of a nat.

    *Local maxima.* The certificate is local, and the likelihood of a state-space model
    can have several maxima. The subspace step gives one start per length of the past;
    the three likeliest race (each climbs for up to 100 iterations, uncertified) and the
    leader goes on to its certified maximum. A maximum with a fast real mode (modulus
    below 0.6) next to a slow one may have merged two slow modes and spent the freed
    state on noise: a start that splits the slowest real mode in place of the fastest
    climbs for 100 iterations and goes on to its certified maximum only if it is then
    higher (on one of 50 random systems, from 7.3 nats below the true parameters'
    likelihood to 8.7 above). The race's leader does not always own the best basin: on 4
    of 50 random systems another of the three starts, continued, ends higher (by about
    1.7 to 25 nats; the robustness benchmark's ``n_init=3`` columns), with an eigenvalue
    error of ``A_`` below 0.04 on two of them where the default's was 0.44 and 1.9.
    ``n_init=3`` continues all three and keeps the likeliest, for about twice the time
    (median 2.0x); a value below the likelihood of parameters you trust, or restarts
    that end at different values, are the signs that it is needed.

    *Series with a trend.* With no more sequences than states the prior is the
    stationary distribution, which a unit root does not have: a series with a trend or a
    random walk (weekly CO2, a price) is fitted best by a model whose slowest eigenvalue
    approaches 1, where that prior's variance grows without bound, and the search stops at
    the edge of the stationary models with a ConvergenceWarning that says so. Difference
    the series first, give several sequences (the prior is then learned), or hold the
    prior with ``fixed`` (e.g. a wide ``initial_state_covariance``, as Durbin & Koopman's
    Nile model does, ``benchmarks/bench_kalman_fit.py``).

    *Forecasting set-up.* As a baseline with lag features (``X_t = y_{t-1}``, see
    :func:`skkalman.datasets.lagged_targets`) the likelihood cannot tell a model that
    carries the past through ``B`` (with ``Q`` near zero: the Kalman predictor's own form)
    from one that carries it through the filter (``B`` near zero): a flat ridge. When
    every target's previous value is an input (detected exactly, up to a change of
    units), the model is kept the predictor: the start is the steady-state Kalman
    predictor of a subspace fit of ``y`` (``A (I - K C)``, ``B = A K`` on the lag columns,
    ``R`` the innovation covariance), ``Q`` is held at its small starting value and ``D``
    at zero on the lag columns. ``predict(X)`` is then the one-step forecast, within 1%
    of the optimum from the first row of a new sequence (``tests/test_kalman.py``). No
    user declaration is needed; holding ``Q`` or ``D`` yourself turns it off.

    Examples
    --------
    >>> from skkalman import KalmanFilterRegressor
    >>> from skkalman.datasets import make_lds
    >>> X, y, system = make_lds(system="oscillator", n_samples=300, random_state=0)
    >>> model = KalmanFilterRegressor(n_states=2).fit(X, y)
    >>> model.A_.shape, model.predict(X).shape
    ((2, 2), (300,))
    >>> model.converged_, bool(np.all(np.diff(model.log_likelihoods_) >= 0))
    (True, True)
    """

    _parameter_constraints = {
        "n_states": [Interval(numbers.Integral, 1, None, closed="left")],
        "fit_intercept": ["boolean"],
        "n_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "init": [StrOptions({"subspace", "random"})],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "fixed": [dict, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _expected_failed_checks = {
        "check_methods_sample_order_invariance": (
            "rows are time steps: reordering them changes every filtered value"),
        "check_methods_subset_invariance": (
            "rows are time steps: a row's prediction depends on the rows before it"),
        "check_estimators_empty_data_messages": (
            "X with no columns is valid: it is a model without inputs (DESIGN.md)"),
    }

    def __init__(self, n_states=2, *, fit_intercept=True, n_iter=1000, tol=1e-3,
                 init="subspace", n_init=1, fixed=None, random_state=None, verbose=0):
        self.n_states = n_states
        self.fit_intercept = fit_intercept
        self.n_iter = n_iter
        self.tol = tol
        self.init = init
        self.n_init = n_init
        self.fixed = fixed
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # --- fitting -------------------------------------------------------------------------

    def _check_fixed(self, n_features, n_targets):
        fixed = {} if self.fixed is None else self.fixed
        unknown = sorted(set(fixed) - set(FIXED_KEYS))
        if unknown:
            raise ValueError(
                f"fixed has unknown key(s) {unknown}; the keys are {list(FIXED_KEYS)}."
            )
        if "intercept" in fixed and not self.fit_intercept:
            raise ValueError("fixed['intercept'] needs fit_intercept=True (without it the "
                             "intercept is zero).")
        shapes = _expected_shapes(self.n_states, n_features, n_targets)
        return {name: _check_matrix(f"fixed[{name!r}]", value, shapes[name],
                                    covariance=name in _COVARIANCE_NAMES)
                for name, value in fixed.items()}

    @atomic_fit
    def fit(self, X, y, lengths=None, *, groups=None):
        """Fit the model by maximum likelihood (subspace start, EM, quasi-Newton search).

        A fit that raises leaves the estimator as it was (a fitted model stays fitted).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Known inputs; ``n_features`` may be 0.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Measurements; NaN marks a missing entry.
        lengths : array-like of int, default=None
            Lengths of the concatenated sequences; None means one sequence.
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        self : KalmanFilterRegressor
            The fitted model.
        """
        self._validate_params()
        data = validate_sequences(self, X, y, lengths, groups=groups, reset=True,
                                  y_required=True)
        with one_blas_thread():
            try:
                return self._fit(data)
            except linalg.LinAlgError as exc:
                if not self.fixed:
                    raise
                raise _no_likelihood(self.fixed, exc) from exc

    def _fit(self, data):
        n_features, n_targets = data.X.shape[1], data.y.shape[1]
        fixed = self._check_fixed(n_features, n_targets)
        units = _Units(data, self.fit_intercept, fixed)
        sequences = units.sequences(data)
        n_observed = np.sum(~np.isnan(data.y), axis=0)
        ll_offset = float(np.sum(n_observed * units.log_jacobian))
        n_observed = int(n_observed.sum())

        # Free columns of B and D: inputs that vary (the normal equations of the others
        # are singular) and that the user did not hold; the intercept's column is D's only.
        X_all = np.vstack([X_k for X_k, _ in sequences])
        varies = np.ptp(X_all, axis=0) > 0 if X_all.shape[0] else np.zeros(0, bool)
        user = np.arange(X_all.shape[1]) < n_features
        b_columns = varies & user & ("B" not in fixed)
        d_columns = (varies & user & ("D" not in fixed)) | (
            ~user & ("intercept" not in fixed))

        shapes = _expected_shapes(self.n_states, n_features, n_targets)
        template = StateSpaceParams(**{name: np.zeros(shapes[name]) for name in PARAM_NAMES})
        held = units.to_internal(template.replace(**{k: v for k, v in fixed.items()
                                                     if k in PARAM_NAMES}),
                                 fixed.get("intercept", np.zeros(n_targets)))
        held_values = {name: getattr(held, name) for name in fixed if name in PARAM_NAMES}
        if "intercept" in fixed:
            held_values["D"] = held.D  # (its user columns are replaced below when free)
        rng = check_random_state(self.random_state)
        outcomes = []
        held = {name for name in fixed if name in PARAM_NAMES}
        while len(outcomes) < self.n_init:
            init = self.init if not outcomes else "random"
            starts, predictor_lags = initial_params(
                sequences, self.n_states, varies & user, init=init,
                basis_given="A" in fixed or "C" in fixed, C_given=held_values.get("C"),
                lagged=units.lagged, rng=rng, n_starts=max(_N_STARTS, self.n_init))
            run_held, run_d = held, d_columns
            if predictor_lags is not None and not {"Q", "D"} & held:
                # The forecasting set-up: the likelihood is the same whether the past
                # enters through B (the Kalman predictor, Q near zero) or through the
                # filter (B near zero), a flat ridge; the model stays the predictor, whose
                # predict(X) is the one-step forecast: Q held at the start's small value,
                # no direct path from the lags (D = 0 on their columns).
                run_held = held | {"Q"}
                run_d = d_columns.copy()
                run_d[[j for j, _ in predictor_lags.values()]] = False

            def run(start, n_iter, monitor=None, race=False, run_held=run_held, run_d=run_d):
                monitor = monitor or ConvergenceMonitor(
                    n_iter, offset=ll_offset, verbose=self.verbose, name=type(self).__name__)
                start = self._apply_held(start, held_values, fixed, d_columns, n_features)
                return self._maximize(start, sequences, run_held, b_columns, run_d, data,
                                      monitor, n_observed, em=not monitor.history,
                                      certify=not race)

            # The split start works in another basis: not with held values tied to it.
            splits = not set(_BASIS_BOUND) & set(fixed) and "Q" not in run_held
            wanted = self.n_init - len(outcomes)
            if len(starts) > 1 and self.n_iter > _RACE:
                # The likeliest starts race (on random systems the basin of the maximum
                # is not always the likeliest start's): each climbs until its quasi-Newton
                # model sees no more than tol to gain, or for _RACE iterations. The
                # leader (with n_init > 1, the n_init leaders) goes on with the whole
                # budget to its certified maximum.
                heats = [run(start, _RACE, race=True) for start in starts]
                heats.sort(key=lambda heat: -heat[1].best)
                for params, monitor, _ in heats[:wanted]:
                    monitor.n_iter = self.n_iter
                    outcomes.append(self._split_climb(
                        run(params, self.n_iter, monitor=monitor), run, splits))
            else:
                outcomes.extend(self._split_climb(run(start, self.n_iter), run, splits)
                                for start in starts[:wanted])
        params, monitor, information = max(outcomes, key=lambda outcome: outcome[1].best)
        if not np.all(np.isfinite(monitor.history)):
            raise _no_likelihood(fixed, f"log-likelihood {monitor.history[0]} at the start")
        if not monitor.converged:
            warnings.warn(
                f"{type(self).__name__} did not converge: {monitor.reason} after "
                f"{monitor.n_iter_run} iterations (n_iter={self.n_iter}, tol={self.tol}); "
                "raise n_iter, or check the model (e.g. fewer states).",
                ConvergenceWarning, stacklevel=2,
            )
        with np.errstate(over="ignore", invalid="ignore"):
            params, intercept = units.to_user(params)
        params = params.replace(**{k: v for k, v in fixed.items() if k in PARAM_NAMES})
        intercept = fixed.get("intercept", intercept)
        for name, value in [*((n, getattr(params, n)) for n in PARAM_NAMES),
                            ("intercept", intercept)]:
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"the fitted {name}_ does not fit in float64 in the units of X and y "
                    f"(scales of y: {units.y_scale.tolist()}, of X: "
                    f"{units.x_scale.tolist()}); rescale X or y towards unit spread."
                )
        self._set_fitted(params, intercept=intercept,
                         log_likelihoods=np.asarray(monitor.history),
                         n_iter=monitor.n_iter_run, converged=monitor.converged,
                         y_ndim=data.y_ndim)
        self._n_parameters = self._count_parameters(fixed, b_columns, d_columns,
                                                    prior_free=data.n_sequences > self.n_states)
        # The observed information at the maximum (for the uncertainty of what is derived
        # from the fit), with the map from the search's coordinates to the user's units.
        self._information = None if information is None else (information, units)
        return self

    def _split_climb(self, outcome, run, splits):
        """``outcome``, or the higher certified maximum the split start leads to.

        A maximum may have merged two slow modes and spent the freed state on noise
        (:func:`~skkalman._kalman.start.split_start`): the start that splits them climbs
        for ``_SPLIT_RACE`` iterations, and goes on to its certified maximum only if it is
        then above ``outcome``'s.
        """
        params, monitor, _ = outcome
        if not (splits and _SPLIT_RACE and monitor.converged and self.n_iter > _SPLIT_RACE):
            return outcome
        try:
            split = split_start(params)
            if split is None:
                return outcome
            heat = run(split, _SPLIT_RACE, race=True)
            if not heat[1].best > monitor.best + self.tol:
                return outcome
            heat[1].n_iter = self.n_iter
            further = run(heat[0], self.n_iter, monitor=heat[1])
        except (linalg.LinAlgError, ValueError, FloatingPointError):
            return outcome  # (a start the kernels cannot take: the maximum found stands)
        return further if further[1].best > monitor.best else outcome

    @staticmethod
    def _apply_held(params, held_values, fixed, d_columns, n_features):
        """``params`` with the held values in place (the intercept is D's last column)."""
        changes = {k: v for k, v in held_values.items() if k != "D"}
        if "D" in held_values:
            D = params.D.copy()
            if "D" in fixed:
                D[:, :n_features] = held_values["D"][:, :n_features]
            if "intercept" in fixed:
                D[:, n_features:] = held_values["D"][:, n_features:]
            changes["D"] = D
        return params.replace(**changes)

    def _count_parameters(self, fixed, b_columns, d_columns, prior_free):
        """Free parameters, the similarity ridge taken off (for ``aic`` and ``bic``)."""
        n, m = self.n_states, self.C_.shape[0]
        count = {
            "A": n * n, "C": m * n, "Q": n * (n + 1) // 2, "R": m * (m + 1) // 2,
            "initial_state_mean": n * prior_free,
            "initial_state_covariance": n * (n + 1) // 2 * prior_free,
        }
        total = sum(v for k, v in count.items() if k not in fixed)
        total += n * int(b_columns.sum()) + m * int(d_columns.sum())
        if not ({"A", "C", "Q"} & set(fixed)):
            total -= n * n  # a change of basis leaves the likelihood unchanged
        return total

    def _maximize(self, params, sequences, held, b_columns, d_columns, data, monitor,
                  n_observed, em=True, certify=True):
        """EM until its slow tail, then the quasi-Newton search, reporting to ``monitor``.

        ``em=False`` goes straight to the search (a run that continues); ``certify=False``
        ends where the search's model first sees convergence, unchecked (a heat).

        Returns the parameters, the :class:`ConvergenceMonitor` and the observed
        information (None unless certified).
        """
        held = set(held)
        input_mean, input_covariance = _input_moments(sequences)
        stationary = False
        if data.n_sequences <= self.n_states and not (set(_PRIOR) & held):
            # A few sequence starts cannot identify a prior over n_states dimensions
            # (maximum likelihood would collapse it onto them, wrong for every new
            # sequence): the prior is the state's stationary distribution under the model,
            # when it has one, and otherwise stays at the start's.
            try:
                m0, P0 = stationary_prior(params.A, params.B, params.Q, input_mean,
                                          input_covariance)
                params = params.replace(initial_state_mean=m0, initial_state_covariance=P0)
                stationary = True
            except (StationaryPriorError, linalg.LinAlgError, ValueError):
                pass
            held |= set(_PRIOR)
        parametrization = Parametrization(
            params, set(PARAM_NAMES) - held, b_columns, d_columns,
            stationary_prior=stationary, input_mean=input_mean,
            input_covariance=input_covariance)
        if parametrization.size == 0:
            stats, ll = e_step(params, sequences)
            monitor.start(ll)
            monitor.certify("every parameter is held")
            return params, monitor, None

        stats, ll = e_step(params, sequences)
        if not monitor.history:
            monitor.start(ll)
        gains = []
        while em and monitor.budget > 0:
            candidate = m_step(stats, params, held, b_columns, d_columns)
            try:
                if stationary:
                    m0, P0 = stationary_prior(candidate.A, candidate.B, candidate.Q,
                                              input_mean, input_covariance)
                    candidate = candidate.replace(initial_state_mean=m0,
                                                  initial_state_covariance=P0)
                candidate_stats, candidate_ll = e_step(candidate, sequences)
            except (StationaryPriorError, linalg.LinAlgError, ValueError):
                candidate_ll = -np.inf
            if not monitor.report(candidate_ll, "EM") or not candidate_ll >= ll:
                break  # (EM with a stationary prior is not guaranteed to climb)
            gains.append(candidate_ll - ll)
            params, stats, ll = candidate, candidate_stats, candidate_ll
            if _in_slow_tail(gains) or gains[-1] <= self.tol:
                break
        if parametrization.similarity_directions(params).shape[1]:
            params = _normalized_basis(params, stats)
        result = quasi_newton(params, ll, sequences, parametrization, monitor, tol=self.tol,
                              n_observed=n_observed, certify=certify)
        if certify and "Q" in parametrization.free:
            result = _towards_singular_process_noise(result, parametrization, sequences,
                                                     monitor, self.tol, n_observed)
        if result.certified:
            monitor.certify(result.reason)
        else:
            monitor.stop(result.reason)
        return result.params, monitor, result.information

    @classmethod
    def from_params(cls, A, C, Q, R, B=None, D=None, initial_state_mean=None,
                    initial_state_covariance=None, intercept=None):
        """A fitted model from known matrices.

        Parameters
        ----------
        A : array-like of shape (n_states, n_states)
        C : array-like of shape (n_targets, n_states)
        Q : array-like of shape (n_states, n_states)
        R : array-like of shape (n_targets, n_targets)
        B : array-like of shape (n_states, n_features), default=None
            None means no inputs (``n_features = 0``).
        D : array-like of shape (n_targets, n_features), default=None
            None means zeros.
        initial_state_mean : array-like of shape (n_states,), default=None
            None means zeros.
        initial_state_covariance : array-like of shape (n_states, n_states), default=None
            None means the identity.
        intercept : array-like of shape (n_targets,), default=None
            The level ``d`` of the measurements; None means zeros.

        Returns
        -------
        model : KalmanFilterRegressor
            Fitted, with ``n_states`` taken from ``A`` and one-dimensional outputs when
            there is a single target.

        Examples
        --------
        >>> import numpy as np
        >>> from skkalman import KalmanFilterRegressor
        >>> model = KalmanFilterRegressor.from_params(A=[[0.9]], C=[[1.0]], Q=[[0.1]],
        ...                                           R=[[0.1]], intercept=[5.0])
        >>> model.predict(np.zeros((3, 0)))
        array([5., 5., 5.])
        """
        A = np.asarray(A, dtype=float)
        C = np.asarray(C, dtype=float)
        if A.ndim != 2 or C.ndim != 2:
            raise ValueError(f"A and C must be 2-D, got shapes {A.shape} and {C.shape}.")
        n, m = A.shape[0], C.shape[0]
        given = B if B is not None else D
        p = np.shape(given)[1] if given is not None and np.ndim(given) == 2 else 0
        values = dict(
            A=A, B=np.zeros((n, p)) if B is None else B, C=C,
            D=np.zeros((m, p)) if D is None else D, Q=Q, R=R,
            initial_state_mean=np.zeros(n) if initial_state_mean is None
            else initial_state_mean,
            initial_state_covariance=np.eye(n) if initial_state_covariance is None
            else initial_state_covariance,
            intercept=np.zeros(m) if intercept is None else intercept,
        )
        shapes = _expected_shapes(n, p, m)
        checked = {name: _check_matrix(name, value, shapes[name],
                                       covariance=name in _COVARIANCE_NAMES)
                   for name, value in values.items()}
        intercept = checked.pop("intercept")
        model = cls(n_states=n, fit_intercept=bool(np.any(intercept != 0)))
        model._set_fitted(StateSpaceParams(**checked), intercept=intercept,
                          log_likelihoods=np.zeros(0), n_iter=0, converged=True,
                          y_ndim=1 if m == 1 else 2)
        return model

    def _set_fitted(self, params, *, intercept, log_likelihoods, n_iter, converged, y_ndim):
        """The one place that writes the fitted attributes (``fit`` and ``from_params``)."""
        for name in PARAM_NAMES:
            setattr(self, f"{name}_", getattr(params, name))
        self.intercept_ = np.asarray(intercept, dtype=float)
        self.log_likelihoods_ = log_likelihoods
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        self.n_features_in_ = params.n_features
        self._y_ndim = y_ndim

    # --- inference -----------------------------------------------------------------------

    def _params(self):
        return StateSpaceParams(**{name: getattr(self, f"{name}_") for name in PARAM_NAMES})

    def _validate(self, X, y=None, lengths=None, groups=None):
        check_is_fitted(self)
        return validate_sequences(self, X, y, lengths, groups=groups, reset=False,
                                  n_targets=None if y is None else self.C_.shape[0])

    def _filter_each(self, data, y=None):
        """Filter results per sequence (no measurements when ``y`` is None)."""
        params = self._params()
        if y is None:
            y = np.full((data.X.shape[0], params.n_targets), np.nan)
        y = y - self.intercept_  # the level enters the measurements only
        return [kalman_filter(params, data.X[s], y[s]) for s in data.slices]

    def _output_moments(self, X, means, covariances, return_std):
        mean = means @ self.C_.T + X @ self.D_.T + self.intercept_
        mean = restore_y_shape(mean, self._y_ndim)
        if not return_std:
            return mean
        var = np.einsum("ij,tjk,ik->ti", self.C_, covariances, self.C_) + np.diag(self.R_)
        return mean, restore_y_shape(np.sqrt(np.clip(var, 0.0, None)), self._y_ndim)

    def predict(self, X, lengths=None, return_std=False, *, groups=None):
        """``E[y_t | x_1..t]``: the model's regression of ``y`` on the inputs alone.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None
        return_std : bool, default=False
            Also return the standard deviation of ``y_t`` given ``x_1..t``.
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        y_std : ndarray of the same shape
            Only when ``return_std`` is True.
        """
        data = self._validate(X, lengths=lengths, groups=groups)
        results = self._filter_each(data)
        means = np.vstack([r.predicted_means for r in results])
        covs = np.concatenate([r.predicted_covariances for r in results])
        return self._output_moments(data.X, means, covs, return_std)

    def forecast(self, X, y, lengths=None, return_std=False, *, groups=None):
        """One-step-ahead predictions ``E[y_t | x_1..t, y_1..t-1]``.

        Rows whose ``y`` is NaN get no measurement update, so NaN rows at the end of a
        sequence give multi-step forecasts.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        return_std : bool, default=False
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        y_std : ndarray of the same shape
            Only when ``return_std`` is True.
        """
        data = self._validate(X, y, lengths, groups)
        results = self._filter_each(data, data.y)
        means = np.vstack([r.predicted_means for r in results])
        covs = np.concatenate([r.predicted_covariances for r in results])
        return self._output_moments(data.X, means, covs, return_std)

    def filter(self, X, y, lengths=None, *, groups=None):
        """Moments of ``p(s_t | x_1..t, y_1..t)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        means : ndarray of shape (n_samples, n_states)
        covariances : ndarray of shape (n_samples, n_states, n_states)
        """
        data = self._validate(X, y, lengths, groups)
        results = self._filter_each(data, data.y)
        return (np.vstack([r.filtered_means for r in results]),
                np.concatenate([r.filtered_covariances for r in results]))

    def smooth(self, X, y, lengths=None, *, groups=None):
        """Moments of ``p(s_t | x_1..T, y_1..T)`` within each sequence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        means : ndarray of shape (n_samples, n_states)
        covariances : ndarray of shape (n_samples, n_states, n_states)
        """
        data = self._validate(X, y, lengths, groups)
        params = self._params()
        results = [rts_smoother(params, r) for r in self._filter_each(data, data.y)]
        return (np.vstack([r.smoothed_means for r in results]),
                np.concatenate([r.smoothed_covariances for r in results]))

    def log_likelihood(self, X, y, lengths=None, *, groups=None):
        """``log p(y | X)`` over the observed entries, summed over sequences.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        log_likelihood : float
        """
        data = self._validate(X, y, lengths, groups)
        return float(sum(r.log_likelihood for r in self._filter_each(data, data.y)))

    def aic(self, X, y, lengths=None, *, groups=None):
        """Akaike's information criterion of the model on ``(X, y)``; lower is better.

        ``-2 log p(y | X) + 2 k``, with ``k`` the number of free parameters of the fit
        (a change of the state's basis, which leaves the likelihood unchanged, not counted).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        aic : float
        """
        return (-2.0 * self.log_likelihood(X, y, lengths, groups=groups)
                + 2.0 * self._n_free_parameters())

    def bic(self, X, y, lengths=None, *, groups=None):
        """Bayesian information criterion of the model on ``(X, y)``; lower is better.

        ``-2 log p(y | X) + k log(n)``, with ``k`` as in :meth:`aic` and ``n`` the number of
        time steps with at least one observed measurement.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        bic : float

        Examples
        --------
        >>> from skkalman import KalmanFilterRegressor
        >>> from skkalman.datasets import make_lds
        >>> X, y, _ = make_lds(system="oscillator", n_samples=400, random_state=0)
        >>> scores = [KalmanFilterRegressor(n).fit(X, y).bic(X, y) for n in (1, 2, 3)]
        >>> int(np.argmin(scores)) + 1
        2
        """
        data = self._validate(X, y, lengths, groups)
        n = int(np.sum(~np.isnan(data.y).all(axis=1)))
        return (-2.0 * self.log_likelihood(X, y, data.lengths)
                + self._n_free_parameters() * np.log(n))

    def _n_free_parameters(self):
        check_is_fitted(self)
        return getattr(self, "_n_parameters", None) or self._count_parameters(
            set(), np.ones(self.n_features_in_, bool),
            np.r_[np.ones(self.n_features_in_, bool), self.fit_intercept], prior_free=False)

    def sample(self, X, lengths=None, random_state=None, *, groups=None):
        """Draw measurements and states from the model, driven by the inputs ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None
        random_state : int, RandomState instance or None, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Sampled measurements, shaped like ``y`` at fit.
        states : ndarray of shape (n_samples, n_states)
            The sampled state trajectory.
        """
        data = self._validate(X, lengths=lengths, groups=groups)
        rng = check_random_state(random_state)
        n_samples = data.X.shape[0]
        W = gaussian_draws(rng, self.Q_, n_samples)
        V = gaussian_draws(rng, self.R_, n_samples)
        U = data.X @ self.B_.T + W
        states = np.empty((n_samples, self.A_.shape[0]))
        for s in data.slices:
            first_state = (self.initial_state_mean_
                           + gaussian_draws(rng, self.initial_state_covariance_, 1)[0])
            states[s] = simulate_states(self.A_, first_state, U[s])
        y = states @ self.C_.T + data.X @ self.D_.T + self.intercept_ + V
        return restore_y_shape(y, self._y_ndim), states

    def _simulate(self, X, lengths=None, feedback_columns=None, random_state=None, *,
                  y=None):
        """A data set ``(X, y)`` like the one given, drawn from the model (the bootstrap).

        ``y`` (the data's targets) is not used: the model draws its own noise.

        Without ``feedback_columns`` this is :meth:`sample` (``X`` unchanged). With them
        the model runs in closed loop, as the forecasting set-up's data arose:
        ``X[t, feedback_columns[k]]`` is the drawn target ``k`` at ``t - 1``; the first
        row of each sequence keeps the given values (the lag before the sequence).
        """
        if feedback_columns is None:
            return X, self.sample(X, lengths, random_state)[0]
        data = self._validate(X, lengths=lengths)
        rng = check_random_state(random_state)
        Xs = data.X.copy()
        n_samples = Xs.shape[0]
        W = gaussian_draws(rng, self.Q_, n_samples)
        V = gaussian_draws(rng, self.R_, n_samples) + self.intercept_
        y = np.empty((n_samples, self.C_.shape[0]))
        A, B, C, D = self.A_, self.B_, self.C_, self.D_
        for s in data.slices:
            state = (self.initial_state_mean_
                     + gaussian_draws(rng, self.initial_state_covariance_, 1)[0])
            for t in range(s.start, s.stop):
                if t > s.start:
                    Xs[t, feedback_columns] = y[t - 1]
                    state = A @ state + B @ Xs[t] + W[t]
                y[t] = C @ state + D @ Xs[t] + V[t]
        return Xs, restore_y_shape(y, self._y_ndim)

    def score(self, X, y, lengths=None, sample_weight=None, *, groups=None):
        """R² of :meth:`predict` (no measurements used) against the observed ``y``.

        Each target's R² over the rows where it is observed (NaN = missing), averaged
        over the targets: the rule of every skkalman estimator
        (:func:`skkalman.metrics._observed_r2_score`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        sample_weight : array-like of shape (n_samples,), default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        score : float
        """
        data = self._validate(X, y, lengths, groups)
        y_pred = self.predict(X, data.lengths).reshape(data.y.shape)
        return _observed_r2_score(data.y, y_pred, sample_weight=sample_weight)

    # --- protocol used by DynamicsRecovery -----------------------------------------------

    def _state_space(self, X=None, lengths=None, *, linearization="trajectory"):
        """``(A, B, C, D)`` of the fitted model (``X`` and ``linearization`` unused)."""
        check_is_fitted(self)
        return self.A_.copy(), self.B_.copy(), self.C_.copy(), self.D_.copy()

    def _latent_states(self, X, lengths=None):
        """``E[s_t | x_1..t]`` of shape ``(n_samples, n_states)``."""
        data = self._validate(X, lengths=lengths)
        return np.vstack([r.predicted_means for r in self._filter_each(data)])

    def _one_step(self, X, y, lengths=None):
        """``E[s_t | x_1..t, y_1..t-1]`` and the one-step predictions of ``y`` (``forecast``).

        The innovations form: the states the likelihood weighs the data by, driven by the
        inputs and by the past errors both. (``DynamicsRecovery.concentration_`` reads a
        mode's signal from them: a model without inputs learns its modes from the noise's
        autocorrelation, which ``predict(X)``, the mean alone, does not show.)
        """
        data = self._validate(X, y, lengths)
        means = np.vstack([r.predicted_means for r in self._filter_each(data, data.y)])
        return means, self._output_moments(data.X, means, None, return_std=False)

    # The size that DynamicsRecovery(order="auto") chooses, and its criterion.
    _size_parameter = "n_states"

    def _bic(self, X, y, lengths=None):
        return self.bic(X, y, lengths)

    def _delta_covariance(self, statistic, X=None, y=None, lengths=None, *,
                          linearization="trajectory", exogenous=False, step=1e-5):
        """Asymptotic covariance of ``statistic(A, B, C, D)`` from the observed information.

        (``X, y, lengths, linearization, exogenous`` are unused: the information was stored by
        ``fit``; they keep the signature of the protocol shared with the RNN.)

        The delta method: ``J H^-1 J^T`` with ``H`` the Hessian of ``-log p`` at the
        certified maximum (in the search's coordinates, the similarity ridge left out, so
        that it is invertible and every similarity-invariant statistic is covered) and
        ``J`` the statistic's Jacobian there, by central differences. ``statistic`` maps
        the user-unit matrices to a 1-D array. Returns None when the fit was not
        certified (no information at a maximum) or built with ``from_params``.
        """
        check_is_fitted(self)
        stored = getattr(self, "_information", None)
        if stored is None:
            return None
        info, units = stored

        def value(eta):
            params, _ = units.to_user(info.parametrization.unpack(info.theta0 + info.basis @ eta))
            return np.asarray(statistic(params.A, params.B[:, :self.n_features_in_],
                                        params.C, params.D[:, :self.n_features_in_]),
                              dtype=float)

        k = info.basis.shape[1]
        J = np.column_stack([(value(step * e) - value(-step * e)) / (2 * step)
                             for e in np.eye(k)])
        w, V = np.linalg.eigh(0.5 * (info.hessian + info.hessian.T))
        # Flat directions (curvature below 1e-6 of the largest) get the floor: their
        # variance is large, not infinite, and says the data do not pin them down.
        w = np.maximum(w, 1e-6 * max(w.max(), 1e-300))
        covariance_eta = (V / w) @ V.T
        return J @ covariance_eta @ J.T
