"""The Elman recurrent network as a scikit-learn regressor, trained through skorch."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score

from ._sequences import restore_y_shape, validate_sequences
from ._sklearn_compat import Interval, StrOptions, check_is_fitted

__all__ = ["ElmanRNNRegressor"]

_ROWS_ARE_TIME_STEPS = "rows are time steps: an output depends on the rows before it"


class ElmanRNNRegressor(RegressorMixin, BaseEstimator):
    """Elman recurrent neural network regressor over sequences, trained through skorch.

    The hidden state runs through each sequence; every row's prediction is read from it::

        h_t = σ(W_hh h_{t-1} + W_xh x_t + b_h),   h_0 = 0
        y_t = W_hy h_t + b_y

    with ``σ`` = ``nonlinearity``. With ``nonlinearity="linear"`` this is the mean equation
    of :class:`~skkalman.KalmanFilterRegressor`'s state-space model (``A = W_hh``,
    ``B = W_xh``, ``C = W_hy``), which is what makes the two comparable.

    Training cuts each sequence into windows of ``bptt`` steps, each preceded by ``warm_up``
    steps whose loss is not counted, and minimizes the mean squared error over the
    observed targets (NaN in ``y`` is a missing measurement, masked out of the loss). The
    last ``validation_fraction`` of every sequence, in time order, is held out to choose
    among the ``n_init`` restarts and for skorch's ``valid_loss``.

    Parameters
    ----------
    hidden_size : int, default=8
        Number of hidden units (the state dimension).
    nonlinearity : {"tanh", "relu", "linear"}, default="tanh"
        The activation ``σ``.
    max_epochs : int, default=150
        Passes over the training windows (per restart).
    lr : float, default=0.02
        Learning rate of the optimizer.
    batch_size : int, default=16
        Windows per gradient step.
    bptt : int, default=50
        Steps per training window whose loss counts (truncated backpropagation through
        time: gradients flow back at most ``warm_up + bptt`` steps).
    warm_up : int, default=20
        Steps run before each window, outside its loss, so that windows start from a
        state carried from the past instead of zero (a sequence's first window starts
        from zero, as ``predict`` does).
    n_init : int, default=1
        Training runs from different random initializations; the one with the lowest
        validation loss is kept (as in :class:`~sklearn.cluster.KMeans`); worth raising
        for ``tanh``/``relu``, which can settle in a poor local optimum.
    optimizer : {"adam", "adamw", "rmsprop", "sgd"} or torch optimizer class, default="adam"
    lr_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"`` anneals the learning rate from ``lr`` towards 0 over ``max_epochs``
        (skorch's ``LRScheduler`` with ``CosineAnnealingLR``): the late small steps
        settle the weights instead of leaving them jittering around the optimum.
    callbacks : list of skorch callbacks, default=None
        Passed to skorch (copied for each fit and restart), e.g.
        ``skorch.callbacks.EarlyStopping`` or ``skorch.callbacks.LRScheduler``.
    validation_fraction : float in [0, 1), default=0.2
        Fraction of every sequence, at its end, held out for validation. 0 trains on
        everything and chooses among restarts by the training loss.
    net_params : dict, default=None
        Further keyword arguments of :class:`skorch.NeuralNetRegressor`, such as
        ``{"optimizer__weight_decay": 1e-4}``.
    device : str, default="cpu"
        Torch device to train and predict on, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initializations and the shuffling. The global random states of torch
        and NumPy are left untouched.
    verbose : int, default=0
        0 is silent; above 0 prints skorch's table of losses per epoch.

    Attributes
    ----------
    net_ : skorch.NeuralNetRegressor
        The trained net (of the best restart). Its module standardizes inputs and targets
        with buffers; the weights below are those of the same network on raw data.
    history_ : skorch.History
        ``net_.history``: losses (on standardized targets) and timings per epoch.
    W_hh_ : ndarray of shape (hidden_size, hidden_size)
    W_xh_ : ndarray of shape (hidden_size, n_features)
    b_h_ : ndarray of shape (hidden_size,)
    W_hy_ : ndarray of shape (n_targets, hidden_size)
    b_y_ : ndarray of shape (n_targets,)
    loss_ : float
        Validation loss of the kept restart (training loss when nothing is held out).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when ``X`` has string column names.

    See Also
    --------
    skkalman.KalmanFilterRegressor : the linear-Gaussian state-space model.
    skkalman.DynamicsRecovery : reads the learned transition matrix out of either.

    Notes
    -----
    ``tanh`` and ``relu`` run on torch's fused RNN kernels. ``linear`` has none; it
    computes chunks of about ``sqrt(T)`` steps at once from powers of ``W_hh`` and loops
    only over the chunks. On the CPU, networks with ``hidden_size <= 64`` train and
    predict on one torch thread (restored afterwards): their matrices are too small to
    share out, and idle worker threads slow every small op on a busy machine.

    Inputs and targets are standardized inside the module (so one ``lr`` suits data of
    any scale); the fitted ``W_xh_, b_h_, W_hy_, b_y_`` fold that scaling back in.
    ``W_hh_`` is unaffected.

    With the defaults, on 10,000 steps of a 4-state system (``benchmarks/bench_rnn.py``),
    a ``linear`` network with ``hidden_size=4`` forecasts within 0.2% of the Kalman
    filter with the true parameters, and ``tanh`` within about 1.5%.

    Examples
    --------
    >>> from skkalman import ElmanRNNRegressor
    >>> from skkalman.datasets import lagged_targets, make_lds
    >>> _, y, _ = make_lds(system="oscillator", n_samples=300, random_state=0)
    >>> X, y, lengths = lagged_targets(y)
    >>> rnn = ElmanRNNRegressor(hidden_size=2, nonlinearity="linear", max_epochs=5,
    ...                         random_state=0).fit(X, y)
    >>> rnn.predict(X).shape, rnn.W_hh_.shape
    ((299,), (2, 2))
    """

    _parameter_constraints = {
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "nonlinearity": [StrOptions({"tanh", "relu", "linear"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "bptt": [Interval(Integral, 1, None, closed="left")],
        "warm_up": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions({"adam", "adamw", "rmsprop", "sgd"}), callable],
        "lr_schedule": [StrOptions({"cosine", "constant"})],
        "callbacks": [list, None],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "net_params": [dict, None],
        "device": "no_validation",
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _expected_failed_checks = {
        "check_methods_subset_invariance": _ROWS_ARE_TIME_STEPS + ", so a subset of rows "
        "is a different sequence.",
        "check_methods_sample_order_invariance": _ROWS_ARE_TIME_STEPS + ", so shuffled "
        "rows are a different sequence.",
        # Not about time steps: the shared data convention (skkalman._sequences).
        "check_estimators_empty_data_messages": "X of shape (n_samples, 0) is valid: a "
        "model without inputs, as DESIGN's data convention allows.",
    }

    def __init__(
        self, hidden_size=8, *, nonlinearity="tanh", max_epochs=150, lr=0.02, batch_size=16,
        bptt=50, warm_up=20, n_init=1, optimizer="adam", lr_schedule="cosine", callbacks=None,
        validation_fraction=0.2, net_params=None, device="cpu", random_state=None,
        verbose=0,
    ):
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.bptt = bptt
        self.warm_up = warm_up
        self.n_init = n_init
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.callbacks = callbacks
        self.validation_fraction = validation_fraction
        self.net_params = net_params
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        # A handful of epochs in the common checks cannot reach their score thresholds.
        tags.regressor_tags.poor_score = True
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def fit(self, X, y, lengths=None):
        """Train the network on sequences.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs; rows are time steps, sequences concatenated.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; NaN marks a missing value, left out of the loss.
        lengths : array-like of int, default=None
            Length of each sequence; None means one sequence.

        Returns
        -------
        self : ElmanRNNRegressor
            The fitted estimator.
        """
        self._validate_params()
        # validate_data records n_features_in_ at once; undo that if training then fails.
        before = {k: vars(self)[k] for k in ("n_features_in_", "feature_names_in_")
                  if k in vars(self)}
        try:
            data = validate_sequences(self, X, y, lengths, reset=True, y_required=True)
            fitted = self._train(data)
        except BaseException:
            for k in ("n_features_in_", "feature_names_in_"):
                vars(self).pop(k, None)
            vars(self).update(before)
            raise
        self._set_fitted(**fitted)
        return self

    def _train(self, data):
        from ._rnn.data import make_windows, split_rows
        from ._rnn.module import raw_weights
        from ._rnn.training import Diverged, fit_restarts, small_model_threads

        X, y, lengths = data.X, data.y, data.lengths
        n_train = split_rows(lengths, self.validation_fraction)
        windows = dict(bptt=self.bptt, warm_up=self.warm_up)
        train = make_windows(X, y, lengths, np.zeros_like(lengths), n_train, **windows)
        valid = make_windows(X, y, lengths, n_train, lengths, **windows)
        if not np.isfinite(train[1]).any():
            raise ValueError(
                "the training part of y (all but the last validation_fraction="
                f"{self.validation_fraction} of each sequence) has no observed value; "
                "lower validation_fraction."
            )
        if not np.isfinite(valid[1]).any():
            valid = None

        module_params = dict(
            n_features=X.shape[1], n_targets=y.shape[1], hidden_size=self.hidden_size,
            nonlinearity=self.nonlinearity, **_standardization(X, y),
        )
        seeds = _seeds(self.random_state, self.n_init)
        try:
            with small_model_threads(self.hidden_size, self.device):
                net, loss = fit_restarts(
                    seeds, train=train, valid=valid, module_params=module_params,
                    y_scale=module_params["y_scale"], optimizer=self.optimizer, lr=self.lr,
                    lr_schedule=self.lr_schedule,
                    max_epochs=self.max_epochs, batch_size=self.batch_size,
                    callbacks=self.callbacks, net_params=self.net_params,
                    device=self.device, verbose=self.verbose,
                )
        except Diverged as exc:
            raise ValueError(
                f"training diverged: the {exc.name} became NaN or infinite at epoch "
                f"{exc.epoch}. Lower the learning rate (lr={self.lr}), or shorten bptt."
            ) from None
        net.module_.eval()
        return dict(net=net, loss=loss, y_ndim=data.y_ndim, **raw_weights(net.module_))

    def _set_fitted(self, *, net, loss, y_ndim, W_hh, W_xh, b_h, W_hy, b_y):
        self.net_ = net
        self.history_ = net.history
        self.loss_ = loss
        self.W_hh_, self.W_xh_, self.b_h_ = W_hh, W_xh, b_h
        self.W_hy_, self.b_y_ = W_hy, b_y
        self._y_ndim = y_ndim

    def _run(self, X, lengths):
        """Outputs and hidden states of every row, each sequence run once from zero."""
        import torch

        from ._rnn.training import small_model_threads

        check_is_fitted(self)
        data = validate_sequences(self, X, lengths=lengths, reset=False)
        module, device = self.net_.module_, self.net_.device
        Y = np.empty((data.X.shape[0], self.W_hy_.shape[0]))
        H = np.empty((data.X.shape[0], self.W_hh_.shape[0]))
        X32 = torch.from_numpy(data.X.astype(np.float32))
        with torch.no_grad(), small_model_threads(self.hidden_size, device):
            for rows in data.slices:
                y, h = module.run(X32[rows][None].to(device))
                Y[rows], H[rows] = y[0].cpu().numpy(), h[0].cpu().numpy()
        return Y, H

    def predict(self, X, lengths=None):
        """Predict the targets of every row from the inputs up to it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Shaped like ``y`` at fit.
        """
        return restore_y_shape(self._run(X, lengths)[0], self._y_ndim)

    def hidden_states(self, X, lengths=None):
        """The hidden state ``h_t`` of every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None

        Returns
        -------
        h : ndarray of shape (n_samples, hidden_size)
        """
        return self._run(X, lengths)[1]

    def score(self, X, y, lengths=None, sample_weight=None):
        """Coefficient of determination R² of :meth:`predict` on the observed rows.

        Rows of ``y`` with any NaN are left out.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        lengths : array-like of int, default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        data = validate_sequences(self, X, y, lengths, reset=False,
                                  n_targets=self.W_hy_.shape[0])
        y_pred = self._run(X, lengths)[0]
        observed = ~np.isnan(data.y).any(axis=1)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)[observed]
        return r2_score(data.y[observed], y_pred[observed], sample_weight=sample_weight)

    # -- protocol used by DynamicsRecovery -------------------------------------------------

    def _state_space(self, X=None, lengths=None, *, linearization="trajectory"):
        """``(A, B, C, D)`` of the network's (linearized) state-space form.

        ``s_t = A s_{t-1} + B x_t``, ``y_t = C s_t + D x_t`` in hidden-state coordinates:
        ``C = W_hy_``, ``D = 0``. Linear: ``A = W_hh_``, ``B = W_xh_`` exactly. Otherwise
        the Jacobians ``diag(σ'(pre_t)) W_hh_`` and ``diag(σ'(pre_t)) W_xh_`` averaged
        over the hidden trajectory on ``X`` (``"trajectory"``) or taken at the fixed point
        of the mean input (``"fixed_point"``).
        """
        check_is_fitted(self)
        C = self.W_hy_
        D = np.zeros((C.shape[0], self.W_xh_.shape[1]))
        if self.nonlinearity == "linear":
            return self.W_hh_, self.W_xh_, C, D
        if linearization == "trajectory":
            if X is None:
                raise ValueError(
                    "linearization='trajectory' averages the Jacobian over the hidden "
                    f"trajectory on X, so X is needed for a {self.nonlinearity} network; "
                    "pass X or use linearization='fixed_point'."
                )
            gain = self._activation_slope(X, lengths).mean(axis=0)
        elif linearization == "fixed_point":
            gain = self._fixed_point_slope(X)
        else:
            raise ValueError(f"linearization must be 'trajectory' or 'fixed_point', got "
                             f"{linearization!r}.")
        return gain[:, None] * self.W_hh_, gain[:, None] * self.W_xh_, C, D

    def _latent_states(self, X, lengths=None):
        """The hidden states ``h_t`` driven by ``X``, ndarray (n_samples, hidden_size)."""
        return self.hidden_states(X, lengths)

    def _activation_slope(self, X, lengths):
        """``σ'(pre_t)`` for every row of the trajectory on ``X``."""
        H = self.hidden_states(X, lengths)
        if self.nonlinearity == "tanh":
            return 1.0 - H**2
        data = validate_sequences(self, X, lengths=lengths, reset=False)
        previous = np.zeros_like(H)
        for rows in data.slices:
            previous[rows][1:] = H[rows][:-1]
        pre = previous @ self.W_hh_.T + data.X @ self.W_xh_.T + self.b_h_
        return (pre > 0).astype(float)

    def _fixed_point_slope(self, X):
        """``σ'`` at the fixed point ``h* = σ(W_hh h* + W_xh x̄ + b_h)``."""
        from scipy.optimize import root

        if X is None:
            x_bar = np.zeros(self.n_features_in_)
        else:
            x_bar = validate_sequences(self, X, reset=False).X.mean(axis=0)
        drive = self.W_xh_ @ x_bar + self.b_h_
        W = self.W_hh_
        if self.nonlinearity == "tanh":
            def sigma(z):
                return np.tanh(z)

            def slope(z):
                return 1.0 - np.tanh(z) ** 2
        else:
            def sigma(z):
                return np.maximum(z, 0.0)

            def slope(z):
                return (z > 0).astype(float)

        def residual(h):
            return h - sigma(W @ h + drive)

        def jacobian(h):
            return np.eye(h.size) - slope(W @ h + drive)[:, None] * W

        solution = root(residual, np.zeros(W.shape[0]), jac=jacobian)
        if not solution.success or np.max(np.abs(residual(solution.x))) > 1e-8:
            raise ValueError(
                "no fixed point h* = σ(W_hh h* + W_xh x̄ + b_h) was found for the fitted "
                f"{self.nonlinearity} network ({solution.message}); use "
                "linearization='trajectory'."
            )
        return slope(W @ solution.x + drive)


def _standardization(X, y):
    """Means and scales of inputs and observed targets (scale 1 where constant)."""

    def scale(values):
        values = np.where(np.isfinite(values) & (values > 0), values, 1.0)
        return values

    observed = ~np.isnan(y)
    counts = observed.sum(axis=0)
    y_mean = np.where(observed, y, 0.0).sum(axis=0) / counts
    y_var = np.where(observed, (y - y_mean) ** 2, 0.0).sum(axis=0) / counts
    return dict(
        x_mean=X.mean(axis=0) if X.shape[0] else np.zeros(X.shape[1]),
        x_scale=scale(X.std(axis=0)),
        y_mean=y_mean,
        y_scale=scale(np.sqrt(y_var)),
    )


def _seeds(random_state, n_init):
    """One torch seed per restart, drawn without touching NumPy's global random state."""
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(2**31 - 1, size=n_init)]
    rng = np.random.default_rng(random_state)
    return [int(s) for s in rng.integers(2**31 - 1, size=n_init)]
