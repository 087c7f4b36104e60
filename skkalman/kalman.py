"""The linear-Gaussian state-space model as a scikit-learn regressor."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state

from ._kalman import StateSpaceParams, kalman_filter, rts_smoother
from ._kalman.em import PARAM_NAMES, e_step, m_step, polish
from ._kalman.simulate import gaussian_draws, simulate_states
from ._kalman.subspace import (
    lagged_target_columns,
    predictor_identification,
    subspace_identification,
)
from ._linalg import nearest_psd
from ._sequences import restore_y_shape, validate_sequences
from ._sklearn_compat import Interval, StrOptions, check_is_fitted

__all__ = ["KalmanFilterRegressor"]

_COVARIANCE_NAMES = ("Q", "R", "initial_state_covariance")
# Most quasi-Newton iterations after EM: enough to finish a slow tail (a handful is typical),
# bounded so that a flat likelihood (e.g. a model with many redundant states) stays cheap.
_MAX_POLISH_ITER = 30


def _power_of_two(values):
    """Nearest powers of two of positive ``values`` (1 where a value is 0 or not finite).

    Scaling by a power of two is exact in floating point, so fixed parameters survive the
    round trip to the internal units bit for bit.
    """
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (values > 0)
    out = np.ones_like(values)
    out[ok] = np.exp2(np.round(np.log2(values[ok])))
    return out


def _rescale(params, y_scale, x_scale, *, inverse=False):
    """The model for ``y / y_scale`` and ``x / x_scale`` (or back, when ``inverse``)."""
    sy, sx = (1.0 / y_scale, 1.0 / x_scale) if inverse else (y_scale, x_scale)
    return params.replace(
        B=params.B * sx[None, :],
        C=params.C / sy[:, None],
        D=params.D * sx[None, :] / sy[:, None],
        R=params.R / np.outer(sy, sy),
    )


def _check_matrix(name, value, shape, covariance=False):
    """A float copy of ``value`` with the given shape, finite (and PSD for a covariance)."""
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from None
    if array.shape != shape:
        if array.size == 1 and int(np.prod(shape)) == 1:
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
    }


def _in_slow_tail(gains, n_recent=3, ratio=0.7):
    """Whether EM has entered its linear tail: each recent gain above ``ratio`` of the last.

    There EM would need many more iterations for each digit; the quasi-Newton polish
    converges superlinearly from here.
    """
    if len(gains) < n_recent + 2:
        return False
    recent = np.asarray(gains[-n_recent - 1:])
    return bool(np.all(recent[1:] > ratio * recent[:-1]))


class KalmanFilterRegressor(RegressorMixin, BaseEstimator):
    """Linear-Gaussian state-space model (Kalman filter) learned by EM.

    ``X`` holds known inputs and ``y`` the measurements (NaN = missing); rows are time
    steps, several sequences are concatenated and described by ``lengths``. The model is
    fitted by maximum likelihood: a subspace-identification estimate, expectation-
    maximization with closed-form M-steps, and a few quasi-Newton steps on the exact
    log-likelihood to finish EM's slow tail.

    Parameters
    ----------
    n_states : int, default=2
        Dimension of the state ``s_t``.
    n_iter : int, default=200
        Most iterations, EM and polish together.
    tol : float, default=1e-5
        EM stops when an iteration raises the log-likelihood by less than ``tol`` per
        observed measurement, or earlier when its gains shrink only linearly (its slow
        tail); a quasi-Newton polish on the exact log-likelihood then finishes (at most
        30 iterations within the ``n_iter`` budget, stopping at gains below ``1e-4 * tol``
        per measurement). When ``n_iter`` runs out
        before EM reaches ``tol``, a :class:`~sklearn.exceptions.ConvergenceWarning` is
        raised and the model is EM's last iterate.
    init : {"subspace", "random"}, default="subspace"
        Starting point of EM: a predictor-based subspace identification (causal ARX
        regression, then an SVD of the past-to-future map), or random matrices drawn with
        ``random_state``. When ``A`` or ``C`` is fixed, the state's basis is given and
        the free parameters start from plain moment guesses instead.
    fixed : dict, default=None
        Parameters held at given values, keyed by ``"A", "B", "C", "D", "Q", "R",
        "initial_state_mean", "initial_state_covariance"``. They are returned bit for bit.
    random_state : int, RandomState instance or None, default=None
        Seeds ``init="random"``.
    verbose : int, default=0
        When positive, print one line per iteration.

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
    initial_state_mean_ : ndarray of shape (n_states,)
        Prior mean of the state at the first row of each sequence. Learned by EM when
        there are more training sequences than states; with fewer, their starts cannot
        identify it (maximum likelihood would collapse the prior onto them, wrong for any
        new sequence), so it is held at the mean of the starting estimate's states.
    initial_state_covariance_ : ndarray of shape (n_states, n_states)
        Prior covariance of that state; learned or held alike (held: the spread of the
        starting estimate's states).
    log_likelihoods_ : ndarray of shape (n_iter + 1,)
        ``log p(y | X)`` at the start and after each EM iteration and each polishing step;
        never decreasing.
    n_iter_ : int
        Iterations run (EM plus polishing).
    converged_ : bool
        Whether EM reached ``tol`` (then polished) before ``n_iter`` ran out.
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

        s_t = A s_{t-1} + B x_t + w_t,   w_t ~ N(0, Q)
        y_t = C s_t     + D x_t + v_t,   v_t ~ N(0, R)

    and ``s_1 ~ N(initial_state_mean, initial_state_covariance)`` at the first row of every
    sequence, before its measurement update. Internally each target and input is scaled by
    a power of two (exact in floating point), so data in any units fit alike.

    As a forecasting baseline (``X_t = y_{t-1}``, see
    :func:`skkalman.datasets.lagged_targets`) the likelihood cannot tell a model that
    carries the past through ``B`` (with ``Q`` near zero: the Kalman predictor's own form)
    from one that carries it through the filter (``B`` near zero), nor from one that
    carries it through a near-direct path (a large ``D`` cancelled by the state), which
    forecasts well inside a sequence but badly at a new one's start. So when every
    target's previous value is an input (detected exactly, up to a change of units), the
    subspace start is the steady-state Kalman predictor of a subspace fit of ``y``:
    ``A (I - K C)``, ``B = A K`` on the lag columns, ``D = 0`` there, ``R`` the innovation
    covariance, a small ``Q``; EM and the polish refine it. ``predict(X)`` is then the
    one-step forecast, within 1% of the optimum from the first row of a new sequence
    (``tests/test_kalman.py``). No user declaration is needed.

    Examples
    --------
    >>> from skkalman import KalmanFilterRegressor
    >>> from skkalman.datasets import make_lds
    >>> X, y, system = make_lds(system="oscillator", n_samples=300, random_state=0)
    >>> model = KalmanFilterRegressor(n_states=2).fit(X, y)
    >>> model.A_.shape, model.predict(X).shape
    ((2, 2), (300,))
    >>> model.log_likelihoods_.size == model.n_iter_ + 1
    True
    """

    _parameter_constraints = {
        "n_states": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "init": [StrOptions({"subspace", "random"})],
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

    def __init__(self, n_states=2, *, n_iter=200, tol=1e-5, init="subspace", fixed=None,
                 random_state=None, verbose=0):
        self.n_states = n_states
        self.n_iter = n_iter
        self.tol = tol
        self.init = init
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
        unknown = sorted(set(fixed) - set(PARAM_NAMES))
        if unknown:
            raise ValueError(
                f"fixed has unknown key(s) {unknown}; the keys are {list(PARAM_NAMES)}."
            )
        shapes = _expected_shapes(self.n_states, n_features, n_targets)
        return {name: _check_matrix(f"fixed[{name!r}]", value, shapes[name],
                                    covariance=name in _COVARIANCE_NAMES)
                for name, value in fixed.items()}

    def _initial_params(self, sequences, n_states, active, fixed_scaled):
        n_features = sequences[0][0].shape[1]
        n_targets = sequences[0][1].shape[1]
        basis_given = "A" in fixed_scaled or "C" in fixed_scaled
        if self.init == "subspace" and not basis_given:
            lagged = lagged_target_columns(sequences)
            params = None
            if len(lagged) == n_targets:
                params = predictor_identification(sequences, n_states, active, lagged)
            if params is None:
                params = subspace_identification(sequences, n_states, active)
            if params is not None:
                return params
        y = np.vstack([y for _, y in sequences])
        variance = np.nanvar(y, axis=0)
        variance = np.where(np.isfinite(variance) & (variance > 0), variance, 1.0)
        if self.init == "random" and not basis_given:
            rng = check_random_state(self.random_state)
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
        C = fixed_scaled.get("C", C)
        # Noise guesses in the state's own units (a fixed C sets them): half the variance
        # of the state's steps, read off y by least squares.
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
        return StateSpaceParams(
            A=A, B=np.zeros((n_states, n_features)), C=C,
            D=np.zeros((n_targets, n_features)), Q=Q, R=np.diag(0.5 * variance),
            initial_state_mean=S.mean(axis=0), initial_state_covariance=P0,
        )

    def fit(self, X, y, lengths=None):
        """Fit the model by maximum likelihood (subspace start, EM, quasi-Newton polish).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Known inputs; ``n_features`` may be 0.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Measurements; NaN marks a missing entry.
        lengths : array-like of int, default=None
            Lengths of the concatenated sequences; None means one sequence.

        Returns
        -------
        self : KalmanFilterRegressor
            The fitted model.
        """
        self._validate_params()
        data = validate_sequences(self, X, y, lengths, reset=True, y_required=True)
        n_features, n_targets = data.X.shape[1], data.y.shape[1]
        fixed = self._check_fixed(n_features, n_targets)

        # Work in units where every target and input has a spread of order one.
        y_scale = _power_of_two(np.nanstd(data.y, axis=0))
        x_scale = _power_of_two(np.std(data.X, axis=0))
        sequences = [(data.X[s] / x_scale, data.y[s] / y_scale) for s in data.slices]
        n_observed = np.sum(~np.isnan(data.y), axis=0)
        ll_offset = -float(np.sum(n_observed * np.log(y_scale)))
        active = np.any(data.X != 0.0, axis=0)

        shapes = _expected_shapes(self.n_states, n_features, n_targets)
        template = StateSpaceParams(**{name: np.zeros(shape) for name, shape in shapes.items()})
        fixed_scaled = _rescale(template.replace(**fixed), y_scale, x_scale)
        fixed_scaled = {name: getattr(fixed_scaled, name) for name in fixed}
        params = self._initial_params(sequences, self.n_states, active, fixed_scaled)
        params = params.replace(**fixed_scaled)

        held = set(fixed)
        if data.n_sequences <= self.n_states:
            # A few sequence starts cannot identify a prior over n_states dimensions: maximum
            # likelihood collapses it onto the training starts, a prior that is wrong for
            # every new sequence. It stays at the starting estimate's spread of the states.
            held |= {"initial_state_mean", "initial_state_covariance"}
        params, lls, n_iter, converged = self._maximize(params, sequences, held, active,
                                                        ll_offset, int(n_observed.sum()))
        params = _rescale(params, y_scale, x_scale, inverse=True).replace(**fixed)
        self._set_fitted(params, log_likelihoods=np.asarray(lls), n_iter=n_iter,
                         converged=converged, y_ndim=data.y_ndim)
        return self

    def _maximize(self, params, sequences, fixed, active, ll_offset, n_observed):
        """EM until ``tol``, then polish; returns params, log-likelihoods, n_iter, flag."""
        stats, ll = e_step(params, sequences)
        lls = [ll + ll_offset]
        self._report(0, lls)
        if set(PARAM_NAMES) <= fixed:
            return params, lls, 0, True
        converged = False
        gains = []
        for _ in range(self.n_iter):
            candidate = m_step(stats, params, fixed, active)
            candidate_stats, candidate_ll = e_step(candidate, sequences)
            # EM cannot decrease the likelihood; if round-off or a covariance floor makes
            # it do so, the previous iterate is the maximum within reach.
            if not candidate_ll >= ll:
                converged = True
                break
            gain = candidate_ll - ll
            params, stats, ll = candidate, candidate_stats, candidate_ll
            lls.append(ll + ll_offset)
            self._report(len(lls) - 1, lls)
            gains.append(gain)
            if gain < self.tol * n_observed or _in_slow_tail(gains):
                converged = True
                break
        if not converged:
            last_gain = lls[-1] - lls[-2] if len(lls) > 1 else float("nan")
            warnings.warn(
                f"EM did not converge in n_iter={self.n_iter} iterations (the last one "
                f"gained {last_gain:.3g} in log-likelihood); increase n_iter or tol.",
                ConvergenceWarning, stacklevel=3,
            )
            return params, lls, len(lls) - 1, False

        def record(value):
            # (The polish starts from EM's answer re-parametrized, equal up to round-off:
            # only iterates above EM's last value enter the history.)
            if value + ll_offset > lls[-1]:
                lls.append(value + ll_offset)
                self._report(len(lls) - 1, lls, stage="polish")

        # The polish shares the iteration budget: n_iter caps EM and polish together.
        budget = min(self.n_iter - (len(lls) - 1), _MAX_POLISH_ITER)
        if budget <= 0:
            return params, lls, len(lls) - 1, True
        polished, polished_ll, _, _ = polish(params, sequences, fixed, active,
                                             max_iter=budget, tol=1e-4 * self.tol,
                                             callback=record)
        if polished_ll > ll:
            params = polished
        return params, lls, len(lls) - 1, True

    def _report(self, iteration, lls, stage="EM"):
        if self.verbose > 0:
            gain = lls[-1] - lls[-2] if len(lls) > 1 else float("nan")
            print(f"[KalmanFilterRegressor] {stage} iteration {iteration:4d}  "
                  f"log-likelihood {lls[-1]:.8g}  gain {gain:.3g}", flush=True)

    @classmethod
    def from_params(cls, A, C, Q, R, B=None, D=None, initial_state_mean=None,
                    initial_state_covariance=None):
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
        ...                                           R=[[0.1]])
        >>> model.predict(np.zeros((3, 0))).shape
        (3,)
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
        )
        shapes = _expected_shapes(n, p, m)
        checked = {name: _check_matrix(name, value, shapes[name],
                                       covariance=name in _COVARIANCE_NAMES)
                   for name, value in values.items()}
        model = cls(n_states=n)
        model._set_fitted(StateSpaceParams(**checked), log_likelihoods=np.zeros(0), n_iter=0,
                          converged=True, y_ndim=1 if m == 1 else 2)
        return model

    def _set_fitted(self, params, *, log_likelihoods, n_iter, converged, y_ndim):
        """The one place that writes the fitted attributes (``fit`` and ``from_params``)."""
        for name in PARAM_NAMES:
            setattr(self, f"{name}_", getattr(params, name))
        self.log_likelihoods_ = log_likelihoods
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        self.n_features_in_ = params.n_features
        self._y_ndim = y_ndim

    # --- inference -----------------------------------------------------------------------

    def _params(self):
        return StateSpaceParams(**{name: getattr(self, f"{name}_") for name in PARAM_NAMES})

    def _validate(self, X, y=None, lengths=None):
        check_is_fitted(self)
        return validate_sequences(self, X, y, lengths, reset=False,
                                  n_targets=None if y is None else self.C_.shape[0])

    def _filter_each(self, data, y=None):
        """Filter results per sequence (no measurements when ``y`` is None)."""
        params = self._params()
        if y is None:
            y = np.full((data.X.shape[0], params.n_targets), np.nan)
        return [kalman_filter(params, data.X[s], y[s]) for s in data.slices]

    def _output_moments(self, X, means, covariances, return_std):
        mean = means @ self.C_.T + X @ self.D_.T
        mean = restore_y_shape(mean, self._y_ndim)
        if not return_std:
            return mean
        var = np.einsum("ij,tjk,ik->ti", self.C_, covariances, self.C_) + np.diag(self.R_)
        return mean, restore_y_shape(np.sqrt(np.clip(var, 0.0, None)), self._y_ndim)

    def predict(self, X, lengths=None, return_std=False):
        """``E[y_t | x_1..t]``: the model's regression of ``y`` on the inputs alone.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None
        return_std : bool, default=False
            Also return the standard deviation of ``y_t`` given ``x_1..t``.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        y_std : ndarray of the same shape
            Only when ``return_std`` is True.
        """
        data = self._validate(X, lengths=lengths)
        results = self._filter_each(data)
        means = np.vstack([r.predicted_means for r in results])
        covs = np.concatenate([r.predicted_covariances for r in results])
        return self._output_moments(data.X, means, covs, return_std)

    def forecast(self, X, y, lengths=None, return_std=False):
        """One-step-ahead predictions ``E[y_t | x_1..t, y_1..t-1]``.

        Rows whose ``y`` is NaN get no measurement update, so NaN rows at the end of a
        sequence give multi-step forecasts.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        return_std : bool, default=False

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        y_std : ndarray of the same shape
            Only when ``return_std`` is True.
        """
        data = self._validate(X, y, lengths)
        results = self._filter_each(data, data.y)
        means = np.vstack([r.predicted_means for r in results])
        covs = np.concatenate([r.predicted_covariances for r in results])
        return self._output_moments(data.X, means, covs, return_std)

    def filter(self, X, y, lengths=None):
        """Moments of ``p(s_t | x_1..t, y_1..t)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None

        Returns
        -------
        means : ndarray of shape (n_samples, n_states)
        covariances : ndarray of shape (n_samples, n_states, n_states)
        """
        data = self._validate(X, y, lengths)
        results = self._filter_each(data, data.y)
        return (np.vstack([r.filtered_means for r in results]),
                np.concatenate([r.filtered_covariances for r in results]))

    def smooth(self, X, y, lengths=None):
        """Moments of ``p(s_t | x_1..T, y_1..T)`` within each sequence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None

        Returns
        -------
        means : ndarray of shape (n_samples, n_states)
        covariances : ndarray of shape (n_samples, n_states, n_states)
        """
        data = self._validate(X, y, lengths)
        params = self._params()
        results = [rts_smoother(params, r) for r in self._filter_each(data, data.y)]
        return (np.vstack([r.smoothed_means for r in results]),
                np.concatenate([r.smoothed_covariances for r in results]))

    def log_likelihood(self, X, y, lengths=None):
        """``log p(y | X)`` over the observed entries, summed over sequences.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None

        Returns
        -------
        log_likelihood : float
        """
        data = self._validate(X, y, lengths)
        return float(sum(r.log_likelihood for r in self._filter_each(data, data.y)))

    def sample(self, X, lengths=None, random_state=None):
        """Draw measurements and states from the model, driven by the inputs ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None
        random_state : int, RandomState instance or None, default=None

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Sampled measurements, shaped like ``y`` at fit.
        states : ndarray of shape (n_samples, n_states)
            The sampled state trajectory.
        """
        data = self._validate(X, lengths=lengths)
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
        y = states @ self.C_.T + data.X @ self.D_.T + V
        return restore_y_shape(y, self._y_ndim), states

    def score(self, X, y, lengths=None, sample_weight=None):
        """R² of :meth:`predict` (no measurements used) against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Must be fully observed.
        lengths : array-like of int, default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        data = self._validate(X, y, lengths)
        if np.isnan(data.y).any():
            raise ValueError("score needs every measurement; y contains NaN.")
        y_pred = self.predict(X, lengths)
        return float(r2_score(restore_y_shape(data.y, data.y_ndim), y_pred,
                              sample_weight=sample_weight))

    # --- protocol used by DynamicsRecovery -----------------------------------------------

    def _state_space(self, X=None, lengths=None, *, linearization="trajectory"):
        """``(A, B, C, D)`` of the fitted model (``X`` and ``linearization`` unused)."""
        check_is_fitted(self)
        return self.A_.copy(), self.B_.copy(), self.C_.copy(), self.D_.copy()

    def _latent_states(self, X, lengths=None):
        """``E[s_t | x_1..t]`` of shape ``(n_samples, n_states)``."""
        data = self._validate(X, lengths=lengths)
        return np.vstack([r.predicted_means for r in self._filter_each(data)])
