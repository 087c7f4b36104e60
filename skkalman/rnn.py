"""The Elman recurrent network as a scikit-learn regressor, trained through skorch."""

import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from scipy import signal
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ._atomic import atomic_fit
from ._kalman.subspace import _autocovariances
from ._rnn.activations import ACTIVATIONS
from ._rnn.data import split_rows
from ._sequences import restore_y_shape, validate_sequences
from ._sklearn_compat import Interval, StrOptions, check_is_fitted
from .metrics import _observed_r2_score

__all__ = ["ElmanRNNRegressor"]

_ROWS_ARE_TIME_STEPS = "rows are time steps: an output depends on the rows before it"
# Window length for tanh/relu networks when bptt=None. Their recurrence runs one step at a
# time, so a training pass costs its number of steps; the windows of a sequence run side by
# side, each from its predecessor's end state (measured on one CPU thread, hidden sizes 3
# to 12: a forward and backward pass over 64 windows of 125 steps is 60 to 75 times
# faster than over one sequence of 8,000).
_NONLINEAR_WINDOW = 128
# n_init="auto" for linear networks: at most this many starts, ended early once two agree
# (_AGREE). Measured on random input-driven systems (10,000 steps, hidden size = the true
# order): one start lands within 1% of the optimal MSE in 8 of 10, four starts chosen on
# the validation loss in 19 of 20, at a median of 6 s a fit.
_LINEAR_RESTARTS = 4
# Two validation losses this close (relative) come from the same optimum or equally good
# ones (measured on 20 random systems' four starts: losses that agree to 0.1% give held-out
# MSEs that agree to 0.1%), so n_init="auto" stops there.
_AGREE = 1e-3
# Starts of the linear network that a tanh network's linear start comes from: a start that
# lands a little off the linear optimum costs the tanh network no more than that, and the
# tanh fit pays for each (measured on 10 random input-driven systems, 10,000 steps: the
# best of two starts' validation loss was within 0.01% of the best of four in all 10).
_LINEAR_START_RESTARTS = 2
# The Gauss-Newton covariance holds the Jacobian of every prediction in every weight
# (float64): 25 million entries, 200 MB, e.g. 20,000 rows, 3 targets and 16 hidden units.
_MAX_JACOBIAN_ENTRIES = 25_000_000


class ElmanRNNRegressor(RegressorMixin, BaseEstimator):
    """Elman recurrent neural network regressor over sequences, trained through skorch.

    The hidden state runs through each sequence; every row's prediction is read from it::

        h_t = σ(W_hh h_{t-1} + W_xh x_t + b_h),   h_0 = 0
        y_t = W_hy h_t + b_y

    with ``σ`` = ``nonlinearity``. With ``nonlinearity="linear"`` this is the mean equation
    of :class:`~skkalman.KalmanFilterRegressor`'s state-space model (``A = W_hh``,
    ``B = W_xh``, ``C = W_hy``), which is what makes the two comparable.

    Training minimizes the mean squared error over the observed targets (NaN in ``y`` is
    a missing measurement, masked out of the loss) of the first ``1 -
    validation_fraction`` of every sequence; the rest, in time order, is held out. By
    default the whole training part is one batch and the optimizer is L-BFGS, so training
    goes to the optimum of the loss rather than near it; see Notes.

    Parameters
    ----------
    hidden_size : int, default=8
        Number of hidden units (the state dimension).
    nonlinearity : {"tanh", "relu", "linear"}, default="tanh"
        The activation ``σ``.
    max_epochs : int, default=100
        Most epochs per restart. An epoch is one optimizer step over the batches (with
        L-BFGS: ``optimizer__max_iter``, 10 by default, quasi-Newton iterations) followed
        by a validation pass.
    tol : float, default=1e-5
        Training ends when the validation loss has not fallen below ``(1 - tol)`` times
        its best value for ``n_iter_no_change`` consecutive epochs (a plateau).
    n_iter_no_change : int, default=10
        See ``tol``.
    optimizer : {"lbfgs", "adam", "adamw", "rmsprop", "sgd"} or torch optimizer class, \
            default="lbfgs"
        ``"lbfgs"`` is :class:`torch.optim.LBFGS` with a strong-Wolfe line search (a
        closure optimizer, which skorch's ``train_step`` drives). Its settings are
        reached through skorch's routing, e.g. ``net_params={"optimizer__max_iter": 20}``.
    lr : float, default=None
        Learning rate: 1 for L-BFGS (a full quasi-Newton step, scaled by its line
        search), 0.01 for the others.
    batch_size : int, default=None
        Windows per optimizer step; None takes all of them at once (full batch, as
        L-BFGS needs). Worth setting, e.g. to 16, with a first-order optimizer.
    bptt : int, default=None
        Length of the training windows: gradients flow back at most this many steps, and
        each window starts from the state its predecessor ended in, refreshed every epoch.
        None: whole sequences for ``linear`` networks (their recurrence runs in parallel
        over time), 128 steps for ``tanh`` and ``relu``.
    n_init : int or "auto", default="auto"
        Training runs from different initializations; the one with the lowest
        validation loss is kept (as in :class:`~sklearn.cluster.KMeans`). ``"auto"``: for
        ``linear`` networks, whose whole-sequence training is cheap and whose loss has
        local optima (modes that settle in the wrong place), up to 4, ending as soon as
        two validation losses agree to 0.1% (two starts then found the same optimum); 1
        for ``tanh`` and ``relu``, whose every restart costs a full training of the
        sequential recurrence.
    init : {"auto", "linear", "random"}, default="auto"
        Where training starts. ``"random"``: random weights (see Notes). ``"linear"``
        (``tanh`` networks only): the first start is a linear network of the same size,
        trained first (the better of two starts, with this estimator's ``max_epochs``,
        ``tol``, ``n_iter_no_change`` and ``validation_fraction``), and carried into
        tanh's linear range (see Notes); further starts (``n_init > 1``) are random.
        ``"auto"``: ``"linear"`` for ``tanh``, ``"random"`` otherwise.
    callbacks : list of skorch callbacks, default=None
        Passed to skorch (copied for each fit and restart), e.g.
        ``skorch.callbacks.EarlyStopping`` or ``skorch.callbacks.LRScheduler``.
    validation_fraction : float in [0, 1), default=0.2
        Fraction of every sequence, at its end, held out for validation. 0 trains on
        everything; the plateau and the choice among restarts then read the training loss.
    net_params : dict, default=None
        Further keyword arguments of the :class:`skorch.NeuralNetRegressor`, routed as
        skorch routes them: ``module__spectral_radius``, ``optimizer__history_size``,
        ``optimizer__weight_decay``, ... They override the defaults above.
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
        The trained net (of the best restart). It works on standardized data (see
        Notes); the weights below are on raw data.
    history_ : skorch.History
        ``net_.history``: losses (on standardized targets) and timings per epoch.
    W_hh_ : ndarray of shape (hidden_size, hidden_size)
    W_xh_ : ndarray of shape (hidden_size, n_features)
    b_h_ : ndarray of shape (hidden_size,)
    W_hy_ : ndarray of shape (n_targets, hidden_size)
    b_y_ : ndarray of shape (n_targets,)
    loss_ : float
        Validation loss of the kept weights, read from the history (on standardized
        targets).
    converged_ : bool
        Whether the kept restart's training ended on a plateau of the validation loss
        (see ``tol``). When it did not (``max_epochs`` reached, or a callback stopped it
        earlier), a :class:`~sklearn.exceptions.ConvergenceWarning` says so.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when ``X`` has string column names.

    See Also
    --------
    skkalman.KalmanFilterRegressor : the linear-Gaussian state-space model.
    skkalman.DynamicsRecovery : reads the learned transition matrix out of either.

    Notes
    -----
    **Units.** Inputs and targets are standardized in float64 (mean and standard
    deviation of each column, over its observed entries) before they reach the network
    (float64 on the CPU, float32 on other devices), so levels and scales far beyond
    float32's resolution (``y + 1e8``) cost nothing; the fitted ``W_xh_, b_h_, W_hy_,
    b_y_`` fold the standardization back in. ``W_hh_`` is unaffected. ``linear`` and
    ``tanh`` networks hold ``b_h`` at zero on the standardized inputs (so ``b_h_ = -W_xh_
    x̄``, with ``x̄`` the inputs' mean): the zero state that every sequence starts from is
    then the network's resting state, and a new sequence starts without a transient (see
    :data:`~skkalman._rnn.activations.ACTIVATIONS`); ``relu`` networks train it.

    **Starts.** Random weights: ``W_hh`` is a random orthogonal matrix times 0.9
    (``module__spectral_radius``), stable and slow. The linear start of a ``tanh``
    network: tanh is the identity near zero, so a linear network with state ``h`` is the
    limit of the tanh network with state ``g = S h`` for a small diagonal ``S``
    (``W_hh -> S W_hh S⁻¹``, ``W_xh -> S W_xh``, ``W_hy -> W_hy S⁻¹``, same eigenvalues).
    ``S`` is chosen as large as it can be while the tanh network's training loss stays
    within 0.1% of the linear network's (each unit's pre-activations then have a root mean
    square between 0.001 and 0.5), and training goes on from there with the tanh
    network's own loss: it keeps what the linear network found, and moves into the
    curvature where that pays. From random weights, a tanh network trained on a nearly
    linear system stops on a plateau far from its optimum, because it must learn to stay
    linear to a fraction of its signal (measured on 8 random input-driven systems,
    10,000 steps, hidden size = the order: held-out MSE up to 1.94 times the optimum and
    above 1.05 on 3 of 8, against at most 1.021 from the linear start).

    **Training.** Each epoch refreshes the start states
    of the training windows (each window starts where its predecessor ended, with the
    current weights), takes one optimizer step, and runs every sequence whole from its
    first row, from the zero state as :meth:`predict` does, to score the held-out rows.
    ``linear`` networks train on whole sequences: the exact gradient of the loss.
    ``tanh`` and ``relu`` networks train on windows of ``bptt`` steps, whose start states
    are held fixed within an epoch; at the optimum of the forecast the remaining error is
    uncorrelated with any past state, so cutting the gradient at window starts does not
    move the optimum.

    **Stopping.** Training ends when the validation loss is on a plateau (``tol``,
    ``n_iter_no_change``). The weights kept are the last epoch's, the optimum of the
    training loss that the optimizer converged to, unless their validation loss exceeds
    the lowest by more than 1% (then training has overfit, and the best epoch's weights
    are restored): picking the lowest validation loss every time would pick by the noise
    of the held-out rows (measured on ``two_rotations``, 10,000 steps, four hidden units:
    two seeds kept earlier epochs with eigenvalue errors 0.056 and 0.069, where their
    converged weights agree, at 0.009). For ``linear`` networks the history also records
    whether ``W_hh`` is ``stable`` (every eigenvalue inside the unit circle), and stable
    weights (epoch and restart) are preferred to unstable ones whatever their losses: an
    unstable network's forecasts drift away on sequences longer than the validation rows,
    however well it scores on them (measured: a random system's restart with spectral
    radius 1.0006 had the lowest validation loss and a held-out MSE 12% above a stable
    one's).
    ``converged_`` records whether training ended on the plateau, and a
    :class:`~sklearn.exceptions.ConvergenceWarning` says when it did not.

    ``tanh`` and ``relu`` run on torch's fused RNN kernels. ``linear`` has none; it
    computes chunks of steps at once from powers of ``W_hh``, and the chunks' end states
    the same way, recursively (:func:`~skkalman._rnn.module.linear_scan`). On the CPU,
    networks with ``hidden_size <= 64`` train and predict on one torch thread (restored
    afterwards): their matrices are too small to share out, and idle worker threads slow
    every small op on a busy machine.

    ``benchmarks/bench_rnn_robustness.py`` measures the defaults on 20 random systems
    (10,000 training steps, 5,000 held out, hidden size = the true order and twice it)
    against the true model's optimal predictions: linear networks within 1% of the
    optimal held-out MSE in 78 of 80 cases (median 1.0017; the two others, 1.015, are one
    system whose four starts all agree: the least-squares optimum of its training rows);
    tanh networks within 3% in all 40 forecasting cases and within 5% in 39 of 40
    input-driven ones (worst 1.072).

    Examples
    --------
    >>> from skkalman import ElmanRNNRegressor
    >>> from skkalman.datasets import lagged_targets, make_lds
    >>> _, y, _ = make_lds(system="oscillator", n_samples=300, random_state=0)
    >>> X, y, lengths = lagged_targets(y)
    >>> rnn = ElmanRNNRegressor(hidden_size=2, nonlinearity="linear", random_state=0)
    >>> rnn.fit(X, y).predict(X).shape, rnn.W_hh_.shape
    ((299,), (2, 2))
    """

    _parameter_constraints = {
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "nonlinearity": [StrOptions(set(ACTIVATIONS))],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions({"lbfgs", "adam", "adamw", "rmsprop", "sgd"}), callable],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "bptt": [Interval(Integral, 1, None, closed="left"), None],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "init": [StrOptions({"auto", "linear", "random"})],
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
        self, hidden_size=8, *, nonlinearity="tanh", max_epochs=100, tol=1e-5,
        n_iter_no_change=10, optimizer="lbfgs", lr=None, batch_size=None, bptt=None,
        n_init="auto", init="auto", callbacks=None, validation_fraction=0.2, net_params=None,
        device="cpu", random_state=None, verbose=0,
    ):
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.max_epochs = max_epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.bptt = bptt
        self.n_init = n_init
        self.init = init
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

    @atomic_fit
    def fit(self, X, y, lengths=None, *, groups=None):
        """Train the network on sequences.

        A fit that raises leaves the estimator as it was (a fitted model stays fitted).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs; rows are time steps, sequences concatenated.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; NaN marks a missing value, left out of the loss.
        lengths : array-like of int, default=None
            Length of each sequence; None means one sequence.
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        self : ElmanRNNRegressor
            The fitted estimator.
        """
        self._validate_params()
        if self.init == "linear" and self.nonlinearity == "relu":
            raise ValueError(
                "init='linear' starts a tanh network from a trained linear one, in tanh's "
                "linear range near zero; relu has no such range around its resting state. "
                "Use init='random' (or 'auto') with nonlinearity='relu'."
            )
        device = _check_device(self.device)
        data = validate_sequences(self, X, y, lengths, groups=groups, reset=True,
                                  y_required=True)
        self._set_fitted(**self._train(data, device))
        if not self.converged_:
            warnings.warn(
                f"{type(self).__name__} stopped after {len(self.history_)} epochs before "
                "its validation loss reached a plateau (no relative improvement above "
                f"tol={self.tol} for n_iter_no_change={self.n_iter_no_change} epochs); "
                "raise max_epochs, or check the callbacks that stop training.",
                ConvergenceWarning, stacklevel=2,
            )
        return self

    def _train(self, data, device):
        import torch
        from skorch.dataset import Dataset

        from ._rnn.data import make_windows, split_rows, whole_sequences
        from ._rnn.module import ElmanRNN, MaskedMSELoss, raw_weights
        from ._rnn.training import (
            Diverged,
            WindowBatches,
            fit_restarts,
            into_linear_range,
            optimizer_params,
            small_model_threads,
        )

        lengths = data.lengths
        scaling = _standardization(data.X, data.y)
        X = (data.X - scaling["x_mean"]) / scaling["x_scale"]
        y = (data.y - scaling["y_mean"]) / scaling["y_scale"]
        n_train = split_rows(lengths, self.validation_fraction)
        offsets = np.cumsum(lengths) - lengths
        train_rows = np.concatenate([o + np.arange(n) for o, n in zip(offsets, n_train,
                                                                      strict=True)])
        if not np.isfinite(y[train_rows]).any():
            raise ValueError(
                "the training part of y (all but the last validation_fraction="
                f"{self.validation_fraction} of each sequence) has no observed value; "
                "lower validation_fraction."
            )
        # Nothing observed to hold out: validation then scores the training rows.
        held_out = np.setdiff1d(np.arange(len(y)), train_rows)
        counted_from = n_train if np.isfinite(y[held_out]).any() else np.zeros_like(n_train)

        bptt = self.bptt
        if bptt is None and self.nonlinearity != "linear":
            bptt = _NONLINEAR_WINDOW
        windows = make_windows(X, y, lengths, n_train, bptt)
        X_valid, y_valid = whole_sequences(X, y, lengths, counted_from)

        # float64 on the CPU, where it costs small networks next to nothing: L-BFGS's
        # curvature pairs and line search stay exact, and a trial step into unstable
        # weights overflows only far beyond float32's range. float32 on accelerators.
        dtype = torch.float64 if device.type == "cpu" else torch.float32

        def tensor(a):
            return torch.as_tensor(a, dtype=dtype, device=device)

        train = ({"X": tensor(windows.X),
                  "h0": torch.zeros(len(windows.X), self.hidden_size, dtype=dtype,
                                    device=device)},
                 tensor(windows.y))
        valid = Dataset({"X": tensor(X_valid)}, tensor(y_valid))
        carry = (windows.previous, windows.last) if len(windows.X) > len(lengths) else None
        net_params = dict(
            module=ElmanRNN,
            module__n_features=X.shape[1],
            module__n_targets=y.shape[1],
            module__hidden_size=self.hidden_size,
            module__nonlinearity=self.nonlinearity,
            module__dtype=dtype,
            criterion=MaskedMSELoss,
            max_epochs=self.max_epochs,
            batch_size=-1 if self.batch_size is None else self.batch_size,
            iterator_train=WindowBatches,
            iterator_train__shuffle=True,
            iterator_valid=WindowBatches,
            # Validation needs no gradient: one batch of all sequences is the cheapest pass.
            iterator_valid__batch_size=-1,
            **optimizer_params(self.optimizer, self.lr),
        )
        # The user's routed settings override the defaults above.
        net_params.update(self.net_params or {})
        n_init = self.n_init
        if n_init == "auto":
            n_init = _LINEAR_RESTARTS if self.nonlinearity == "linear" else 1
        seeds = _seeds(self.random_state, n_init)
        starts = None
        if self.nonlinearity == "tanh" and self.init in ("auto", "linear"):
            linear = ElmanRNNRegressor(
                self.hidden_size, nonlinearity="linear", n_init=_LINEAR_START_RESTARTS,
                max_epochs=self.max_epochs,
                tol=self.tol, n_iter_no_change=self.n_iter_no_change,
                validation_fraction=self.validation_fraction, device=self.device,
                random_state=seeds[0],
            )._train(data, device)["net"]
            whole = make_windows(X, y, lengths, n_train)
            with small_model_threads(self.hidden_size, device):
                start = into_linear_range(linear.module_, "tanh", tensor(whole.X),
                                          tensor(whole.y))
            starts = [start, *[None] * (n_init - 1)]
        try:
            with small_model_threads(self.hidden_size, device):
                net, loss, converged = fit_restarts(
                    seeds, train=train, valid=valid, net_params=net_params, carry=carry,
                    callbacks=self.callbacks, tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change,
                    check_stability=self.nonlinearity == "linear", device=device,
                    verbose=self.verbose, starts=starts,
                    agree=_AGREE if self.n_init == "auto" else None,
                )
        except Diverged as exc:
            raise ValueError(
                f"training diverged: the {exc.name} became NaN or infinite at epoch "
                f"{exc.epoch}. Lower the learning rate (lr={self.lr}), or shorten bptt."
            ) from None
        net.module_.eval()
        return dict(net=net, loss=loss, converged=converged, y_ndim=data.y_ndim,
                    scaling=scaling, **raw_weights(net.module_, **scaling))

    def _set_fitted(self, *, net, loss, converged, y_ndim, scaling, W_hh, W_xh, b_h, W_hy,
                    b_y):
        self.net_ = net
        self.history_ = net.history
        self.loss_ = loss
        self.converged_ = converged
        self.W_hh_, self.W_xh_, self.b_h_ = W_hh, W_xh, b_h
        self.W_hy_, self.b_y_ = W_hy, b_y
        self._y_ndim = y_ndim
        self._scaling = scaling

    def _run(self, X, lengths, groups=None):
        """Outputs and hidden states of every row, each sequence run once from zero."""
        import torch

        from ._rnn.training import small_model_threads

        check_is_fitted(self)
        data = validate_sequences(self, X, lengths=lengths, groups=groups, reset=False)
        module, device = self.net_.module_, self.net_.device
        dtype = next(module.parameters()).dtype
        with np.errstate(over="ignore"):
            Xs = (data.X - self._scaling["x_mean"]) / self._scaling["x_scale"]
        # Beyond the network's floating-point range it would see infinities: say so instead.
        largest = np.abs(Xs).max(initial=0.0)
        if not largest <= torch.finfo(dtype).max:
            raise ValueError(
                "X, standardized with the mean and scale of the training inputs, has "
                f"values up to {largest:.3g}, beyond the {dtype} range the network computes "
                "in: these inputs lie far outside the data it was fitted on."
            )
        Y = np.empty((data.X.shape[0], self.W_hy_.shape[0]))
        H = np.empty((data.X.shape[0], self.W_hh_.shape[0]))
        X_net = torch.from_numpy(Xs).to(dtype)
        with torch.no_grad(), small_model_threads(self.hidden_size, device):
            for rows in data.slices:
                y, h = module.run(X_net[rows][None].to(device))
                Y[rows], H[rows] = y[0].cpu().double().numpy(), h[0].cpu().double().numpy()
        Y = self._scaling["y_mean"] + self._scaling["y_scale"] * Y
        return Y, H

    def predict(self, X, lengths=None, *, groups=None):
        """Predict the targets of every row from the inputs up to it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Shaped like ``y`` at fit.
        """
        return restore_y_shape(self._run(X, lengths, groups)[0], self._y_ndim)

    def hidden_states(self, X, lengths=None, *, groups=None):
        """The hidden state ``h_t`` of every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, default=None
        groups : array-like of shape (n_samples,), default=None
            Sequence label of each row, instead of ``lengths``: contiguous rows with the
            same label are one sequence (for cross-validation by whole sequences).

        Returns
        -------
        h : ndarray of shape (n_samples, hidden_size)
        """
        return self._run(X, lengths, groups)[1]

    def score(self, X, y, lengths=None, sample_weight=None, *, groups=None):
        """Coefficient of determination R² of :meth:`predict` on the observed targets.

        Each target's R² is taken over the rows where it is observed (NaN in ``y`` is a
        missing measurement), and the targets' R² are averaged
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
        check_is_fitted(self)
        data = validate_sequences(self, X, y, lengths, groups=groups, reset=False,
                                  n_targets=self.W_hy_.shape[0])
        y_pred = self._run(X, data.lengths)[0]
        return _observed_r2_score(data.y, y_pred, sample_weight=sample_weight)

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

    def _simulate(self, X, lengths=None, feedback_columns=None, random_state=None, *, y):
        """A data set ``(X, y)`` like the one given, for the bootstrap (a residual bootstrap).

        The network has no noise model to draw from, so its errors on ``(X, y)``,
        ``r_t = y_t - predict(X)_t``, are resampled. Without ``feedback_columns`` (known
        inputs) they are serially correlated (the process noise filtered by the system):
        a sieve bootstrap fits them a vector autoregression (order by AIC, pooled over the
        sequences) and draws new errors from it with resampled innovations, ``y* =
        predict(X) + r*``, ``X`` unchanged. With ``feedback_columns`` the errors of the
        forecast are the innovations: the network runs in closed loop, ``X[t,
        feedback_columns[k]]`` the drawn target ``k`` at ``t - 1`` (the first row of each
        sequence keeps the given values), and each step adds a resampled error row.
        """
        check_is_fitted(self)
        data = validate_sequences(self, X, y, lengths, reset=False,
                                  n_targets=self.W_hy_.shape[0])
        rng = check_random_state(random_state)
        predictions = np.asarray(self.predict(data.X, data.lengths), dtype=float).reshape(
            data.y.shape)
        residuals = data.y - predictions
        if feedback_columns is None:
            drawn = _sieve_draw(residuals, data.slices, rng)
            return data.X, restore_y_shape(predictions + drawn, self._y_ndim)
        innovations = residuals[~np.isnan(residuals).any(axis=1)]
        if not len(innovations):
            raise ValueError("no row of y has every target observed: no error to resample.")
        innovations = innovations - innovations.mean(axis=0)
        activation = ACTIVATIONS[self.nonlinearity]
        Xs = data.X.copy()
        drawn = np.empty_like(predictions)
        picks = innovations[rng.randint(len(innovations), size=len(Xs))]
        for rows in data.slices:
            h = np.zeros(self.W_hh_.shape[0])
            for t in range(rows.start, rows.stop):
                if t > rows.start:
                    Xs[t, feedback_columns] = drawn[t - 1]
                h = activation.function(self.W_hh_ @ h + self.W_xh_ @ Xs[t] + self.b_h_, np)
                drawn[t] = self.W_hy_ @ h + self.b_y_ + picks[t]
        return Xs, restore_y_shape(drawn, self._y_ndim)

    def _latent_states(self, X, lengths=None):
        """The hidden states ``h_t`` driven by ``X``, ndarray (n_samples, hidden_size)."""
        return self.hidden_states(X, lengths)

    def _activation_slope(self, X, lengths):
        """``σ'(pre_t)`` for every row of the trajectory on ``X``."""
        H = self.hidden_states(X, lengths)
        data = validate_sequences(self, X, lengths=lengths, reset=False)
        previous = np.zeros_like(H)
        for rows in data.slices:
            previous[rows][1:] = H[rows][:-1]
        pre = previous @ self.W_hh_.T + data.X @ self.W_xh_.T + self.b_h_
        return ACTIVATIONS[self.nonlinearity].slope(pre, np)

    def _fixed_point_slope(self, X):
        """``σ'`` at the fixed point ``h* = σ(W_hh h* + W_xh x̄ + b_h)``."""
        return ACTIVATIONS[self.nonlinearity].slope(self._fixed_point(X), np)

    def _fixed_point(self, X):
        """The pre-activation ``W_hh h* + W_xh x̄ + b_h`` at the fixed point of the mean input."""
        from scipy.optimize import root

        if X is None:
            x_bar = np.zeros(self.n_features_in_)
        else:
            x_bar = validate_sequences(self, X, reset=False).X.mean(axis=0)
        drive = self.W_xh_ @ x_bar + self.b_h_
        W = self.W_hh_
        activation = ACTIVATIONS[self.nonlinearity]

        def residual(h):
            return h - activation.function(W @ h + drive, np)

        def jacobian(h):
            return np.eye(h.size) - activation.slope(W @ h + drive, np)[:, None] * W

        h = np.zeros(W.shape[0])
        # At the inputs' mean a tanh network rests at h* = 0 (b_h is zero on standardized
        # inputs); MINPACK's relative step test never accepts a root at exactly 0.
        if np.max(np.abs(residual(h))) > 1e-12:
            solution = root(residual, h, jac=jacobian)
            if not solution.success or np.max(np.abs(residual(solution.x))) > 1e-8:
                raise ValueError(
                    "no fixed point h* = σ(W_hh h* + W_xh x̄ + b_h) was found for the "
                    f"fitted {self.nonlinearity} network ({solution.message}); use "
                    "linearization='trajectory'."
                )
            h = solution.x
        return W @ h + drive

    # The size that DynamicsRecovery(order="auto") chooses.
    _size_parameter = "hidden_size"

    def _bic(self, X, y, lengths=None):
        """BIC of the one-step predictions as a Gaussian model with white residuals.

        ``n log det(2 pi e S) + k log n`` over the ``n`` rows with every target observed
        (``S`` their residual covariance): the likelihood of the innovations form when
        the residuals are the innovations (the forecasting set-up), a quasi-likelihood
        otherwise. ``k`` counts the trained weights less those the predictions do not
        depend on: a linear network's change of hidden basis (``hidden_size^2``), a
        relu unit's scale (``hidden_size``).
        """
        data = validate_sequences(self, X, y, lengths, reset=False,
                                  n_targets=self.W_hy_.shape[0])
        residuals = data.y - self._run(X, data.lengths)[0]
        residuals = residuals[~np.isnan(residuals).any(axis=1)]
        n, m = residuals.shape
        if n <= m:
            raise ValueError(f"the BIC needs more rows with every target observed ({n}) "
                             f"than targets ({m}).")
        _, logdet = np.linalg.slogdet(residuals.T @ residuals / n)
        H = self.hidden_size
        activation = ACTIVATIONS[self.nonlinearity]
        k = H * H + H * self.n_features_in_ + m * H + m
        k += H if activation.hidden_bias else 0
        k -= {"linear": H * H, "relu": H}.get(self.nonlinearity, 0)
        return float(n * (logdet + m * np.log(2 * np.pi) + m) + k * np.log(n))

    def _delta_covariance(self, statistic, X=None, y=None, lengths=None, *,
                          linearization="trajectory", exogenous=False, step=1e-5):
        """Asymptotic covariance of ``statistic(A, B, C, D)`` from the Gauss-Newton sandwich.

        The weights ``w`` (on standardized data, as trained) minimize the squared error of
        the one-step predictions over the training rows of ``(X, y)`` (all but the last
        ``validation_fraction`` of each sequence, the observed targets). With ``J_t`` the
        Jacobian of row ``t``'s predictions in every trained weight (forward sensitivities
        of the recurrence, exact), ``r_t`` the residuals and ``u_t = J_t^T r_t`` the
        scores, the least-squares estimator's covariance is the sandwich ``G^+ M G^+``:
        ``G = sum_t J_t^T J_t`` (Gauss-Newton) and ``M = Var(sum_t u_t)``. An input-driven
        network's residuals carry the process noise filtered by the system, serially
        correlated, which ``G^-1``-type formulas would ignore. With ``exogenous`` (the
        inputs independent of the noise: ``DynamicsRecovery`` without
        ``feedback_columns``) ``M = sum_{t,s} J_t^T Cov(r_t, r_s) J_s`` from the residuals'
        autocovariances (:func:`_exogenous_score_covariance`); otherwise (the inputs may be
        past targets) a Bartlett kernel on the scores (Newey-West, by overlapping batch
        means; Andrews' bandwidth from the residuals' autocorrelation): in the forecasting
        set-up the residuals of the optimal predictor are white and ``M`` is White's
        ``sum_t u_t u_t^T``. The sandwich also
        holds for unequal or correlated noise in several targets, which the unweighted
        loss does not model. The pseudo-inverse leaves out the directions the
        predictions do not depend on (a linear network's change of hidden basis, a relu
        unit's scale): a statistic invariant along them, as eigenvalues are, is
        unaffected. The delta method then carries it through ``(A, B, C, D)`` of
        ``_state_space`` (the slopes of a ``tanh``/``relu`` linearization differentiated
        with the weights, the data held fixed), by central differences of ``statistic``
        in the weights. Returns None without ``y``, and when the Jacobian would exceed
        ``_MAX_JACOBIAN_ENTRIES`` (rows x targets x weights). Not covered: the optimizer's own
        error (training that stops before the optimum, restarts in other optima).
        """
        check_is_fitted(self)
        if X is None or y is None:
            return None
        data = validate_sequences(self, X, y, lengths, reset=False,
                                  n_targets=self.W_hy_.shape[0])
        scaling = self._scaling
        Xs = (data.X - scaling["x_mean"]) / scaling["x_scale"]
        ys = (data.y - scaling["y_mean"]) / scaling["y_scale"]
        module = self.net_.module_
        w = {name: getattr(module, name).detach().cpu().double().numpy()
             for name in ("W_hh", "W_xh", "b_h", "W_hy", "b_y")}
        activation = ACTIVATIONS[self.nonlinearity]
        if ys.size * _pack_weights(w, activation).size > _MAX_JACOBIAN_ENTRIES:
            return None
        sensitivity = _forward_sensitivities(w, Xs, data.slices, activation)

        n_train = split_rows(data.lengths, self.validation_fraction)
        train = np.zeros(len(ys), bool)
        for rows, n in zip(data.slices, n_train, strict=True):
            train[rows.start:rows.start + n] = True
        observed = np.isfinite(ys) & train[:, None]
        residuals = np.where(observed, ys - sensitivity.predictions, 0.0)
        J = sensitivity.jacobian * observed[:, :, None]
        G = np.einsum("tip,tiq->pq", J, J)
        scores = np.einsum("tip,ti->tp", J, residuals)
        segments = [slice(rows.start, rows.start + n)
                    for rows, n in zip(data.slices, n_train, strict=True)]
        if exogenous and data.X.shape[1]:
            M = _exogenous_score_covariance([J[s] for s in segments],
                                            [residuals[s] for s in segments])
        else:
            M = _long_run_covariance([scores[s] for s in segments],
                                     _bartlett_bandwidth([residuals[s] for s in segments]))
        eigval, eigvec = np.linalg.eigh(G)
        # Directions with curvature ~ rounding (1e-10 of the largest) are exact
        # invariances of the predictions (the Jacobian is exact, not differenced).
        keep = eigval > 1e-10 * eigval.max()
        G_plus = (eigvec[:, keep] / eigval[keep]) @ eigvec[:, keep].T
        covariance_w = G_plus @ M @ G_plus

        if self.nonlinearity == "linear":
            gain, gain_jacobian = np.ones(w["W_hh"].shape[0]), None
        elif linearization == "trajectory":
            gain, gain_jacobian = sensitivity.mean_slope, sensitivity.mean_slope_jacobian
        else:
            gain, gain_jacobian = _fixed_point_gain(
                w, self._fixed_point(X), (np.mean(data.X, axis=0) - scaling["x_mean"])
                / scaling["x_scale"], activation)
        theta0 = _pack_weights(w, activation)

        def value(theta):
            v = _unpack_weights(theta, w, activation)
            g = gain if gain_jacobian is None else gain + gain_jacobian @ (theta - theta0)[
                :gain_jacobian.shape[1]]
            A = g[:, None] * v["W_hh"]
            B = g[:, None] * v["W_xh"] / scaling["x_scale"]
            C = scaling["y_scale"][:, None] * v["W_hy"]
            D = np.zeros((C.shape[0], B.shape[1]))
            return np.asarray(statistic(A, B, C, D), dtype=float)

        identity = np.eye(theta0.size)
        jacobian = np.column_stack([
            (value(theta0 + step * e) - value(theta0 - step * e)) / (2 * step)
            for e in identity])
        return jacobian @ covariance_w @ jacobian.T


def _sieve_draw(residuals, slices, rng):
    """Errors drawn like ``residuals`` (rows x targets, NaN = missing; each sequence at
    ``slices``) by a sieve bootstrap (Bühlmann 1997).

    A vector autoregression ``r_t = sum_k Φ_k r_{t-k} + e_t`` is fitted by least squares
    to the rows whose window is complete, pooled over the sequences, its order ``p`` the
    AIC's among ``0..min(10 log10 n, n / 10)`` (the next best by AIC while the fit is not
    stable). Each sequence's errors are drawn from it, the innovations resampled
    from the fit's (centred, whole rows, so the targets keep their correlation), after
    a burn-in long enough for the start to be forgotten. Missing entries of
    ``residuals`` stay to the caller: every row is drawn.
    """
    n, m = residuals.shape
    complete = ~np.isnan(residuals).any(axis=1)
    if complete.sum() < 2:
        raise ValueError("fewer than two rows of y have every target observed: no error "
                         "to resample.")
    max_order = int(max(0, min(10 * np.log10(n), complete.sum() / 10 - 1)))
    # The same rows for every order (those with max_order complete lags), so the AIC compares.
    design, target = _lagged_design(residuals, slices, max_order)
    while len(target) <= m * max_order + 1 and max_order > 0:
        max_order -= 1
        design, target = _lagged_design(residuals, slices, max_order)
    fits = []
    for p in range(max_order + 1):
        coefficients = (np.linalg.lstsq(design[:, :m * p], target, rcond=None)[0] if p
                        else np.zeros((0, m)))
        innovations = target - design[:, :m * p] @ coefficients
        _, logdet = np.linalg.slogdet(np.atleast_2d(np.cov(innovations, rowvar=False)))
        fits.append((logdet + 2 * m * m * p / len(target), p, coefficients, innovations))
    # The best order whose fit is stable (order 0 always is).
    for fit in sorted(fits, key=lambda fit: fit[:2]):
        _, p, coefficients, innovations = fit
        radius = np.max(np.abs(np.linalg.eigvals(_companion(coefficients, m, p)))) if p else 0.0
        if radius < 1:
            break
    innovations = innovations - innovations.mean(axis=0)
    burn_in = int(min(10_000, np.ceil(10 / (1 - radius))))
    drawn = np.empty((n, m))
    for rows in slices:
        T = rows.stop - rows.start
        e = innovations[rng.randint(len(innovations), size=burn_in + T)]
        r = np.zeros((burn_in + T + p, m))
        for t in range(burn_in + T):
            past = r[t:t + p][::-1].ravel()  # r_{t-1}, ..., r_{t-p}
            r[t + p] = past @ coefficients + e[t] if p else e[t]
        drawn[rows] = r[p + burn_in:]
    return drawn


def _lagged_design(residuals, slices, p):
    """Rows ``[r_{t-1}, ..., r_{t-p}]`` and targets ``r_t`` of every complete window."""
    design, target = [], []
    for rows in slices:
        r = residuals[rows]
        for t in range(p, len(r)):
            window = r[t - p:t + 1]
            if np.isnan(window).any():
                continue
            design.append(window[:-1][::-1].ravel())
            target.append(window[-1])
    m = residuals.shape[1]
    return np.array(design).reshape(-1, m * p), np.array(target).reshape(-1, m)


def _companion(coefficients, m, p):
    """The companion matrix of ``r_t = sum_k Φ_k r_{t-k}`` (``coefficients``: (m p, m))."""
    top = coefficients.T  # (m, m p): [Φ_1, ..., Φ_p]
    return np.vstack([top, np.eye(m * (p - 1), m * p)]) if p > 1 else top


def _location_scale(values):
    """Mean and standard deviation of each column over its non-NaN entries, in float64.

    Computed on the columns divided by their largest magnitude, so that neither the sum
    nor the squares overflow for values near float64's limits; a constant column gets
    scale 1 (it is then centred to zero, and its weights stay where they are).
    """
    magnitude = np.nanmax(np.abs(values), axis=0, initial=0.0)
    magnitude = np.where(magnitude > 0, magnitude, 1.0)
    unit = values / magnitude
    mean = magnitude * np.nanmean(unit, axis=0)
    scale = magnitude * np.nanstd(unit, axis=0)
    return mean, np.where(scale > 0, scale, 1.0)


def _standardization(X, y):
    """Means and scales of the inputs and of the observed targets."""
    if X.shape[1]:
        x_mean, x_scale = _location_scale(X)
    else:
        x_mean, x_scale = np.zeros(0), np.ones(0)
    y_mean, y_scale = _location_scale(y)
    return dict(x_mean=x_mean, x_scale=x_scale, y_mean=y_mean, y_scale=y_scale)


def _check_device(device):
    """``device`` as a torch device that works here, or a ValueError that says why not."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device={device!r} is not a torch device; use e.g. 'cpu', 'cuda' or 'cuda:0'."
        ) from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} asks for CUDA, but this torch build or machine has no CUDA "
            "device; use device='cpu'."
        )
    try:
        torch.empty(1, device=parsed)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"device={device!r} cannot be used here: {exc}") from None
    return parsed


def _seeds(random_state, n_init):
    """One torch seed per restart, drawn without touching NumPy's global random state."""
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(2**31 - 1, size=n_init)]
    rng = np.random.default_rng(random_state)
    return [int(s) for s in rng.integers(2**31 - 1, size=n_init)]


class _Sensitivities(NamedTuple):
    predictions: np.ndarray  # (n_samples, n_targets), standardized
    jacobian: np.ndarray  # (n_samples, n_targets, n_weights)
    mean_slope: np.ndarray  # (hidden_size,): σ'(pre_t) averaged over the rows
    mean_slope_jacobian: np.ndarray  # (hidden_size, n_recurrent_weights)


def _recurrent_sizes(w, activation):
    H, n_features = w["W_xh"].shape
    return H * H, H * n_features, H if activation.hidden_bias else 0


def _pack_weights(w, activation):
    """The trained weights as one vector: ``W_hh, W_xh, (b_h), W_hy, b_y``, row-major."""
    parts = [w["W_hh"], w["W_xh"]] + ([w["b_h"]] if activation.hidden_bias else [])
    return np.concatenate([p.ravel() for p in parts + [w["W_hy"], w["b_y"]]])


def _unpack_weights(theta, w, activation):
    """Inverse of :func:`_pack_weights` (shapes and a held ``b_h`` from ``w``)."""
    out, start = dict(w), 0
    for name in ("W_hh", "W_xh", "b_h", "W_hy", "b_y"):
        if name == "b_h" and not activation.hidden_bias:
            continue
        size = w[name].size
        out[name] = theta[start:start + size].reshape(w[name].shape)
        start += size
    return out


def _slope_derivative(activation, pre):
    """``σ''(pre)``: ``-2 tanh (1 - tanh^2)`` for tanh, 0 for the piecewise-linear ones."""
    if activation.fused == "rnn_tanh":
        t = np.tanh(pre)
        return -2.0 * t * (1.0 - t * t)
    return np.zeros_like(pre)


def _forcing_index(w, activation):
    """Rows and columns of ``∂pre/∂(W_hh, W_xh, b_h)`` at fixed ``h_{t-1}`` (the forcing)."""
    H, n_features = w["W_xh"].shape
    n_hh, n_xh, n_b = _recurrent_sizes(w, activation)
    rows = np.concatenate([np.repeat(np.arange(H), H), np.repeat(np.arange(H), n_features),
                           np.arange(n_b)])
    return rows, np.arange(n_hh + n_xh + n_b)


def _forcing(h_previous, x, H, n_b):
    """Values at :func:`_forcing_index`: ``h_{t-1}`` for ``W_hh[i, :]``, ``x_t``, 1."""
    return np.concatenate([np.tile(h_previous, H), np.tile(x, H), np.ones(n_b)])


def _forward_sensitivities(w, X, slices, activation):
    """Predictions and their exact Jacobian in the weights, by forward sensitivities.

    ``S_t = ∂h_t/∂w`` follows the recurrence's tangent: ``S_t = diag(σ'(pre_t)) (W_hh
    S_{t-1} + F_t)``, ``F_t`` the explicit derivative of ``pre_t`` (``h_{t-1}`` for the row
    ``i`` of ``W_hh``, ``x_t`` for that of ``W_xh``, 1 for ``b_h``), from ``S = 0`` at
    each sequence's start, as the network runs. One pass, all weights at once.
    """
    W_hh, W_xh, b_h, W_hy = w["W_hh"], w["W_xh"], w["b_h"], w["W_hy"]
    H, m = W_hh.shape[0], W_hy.shape[0]
    n_hh, n_xh, n_b = _recurrent_sizes(w, activation)
    n_r = n_hh + n_xh + n_b
    rows, cols = _forcing_index(w, activation)
    n = X.shape[0]
    hidden = np.empty((n, H))
    recurrent = np.empty((n, m, n_r))
    slope_sum, slope_jacobian_sum = np.zeros(H), np.zeros((H, n_r))
    for s in slices:
        h, S = np.zeros(H), np.zeros((H, n_r))
        for t in range(s.start, s.stop):
            pre = W_hh @ h + W_xh @ X[t] + b_h
            dpre = W_hh @ S
            dpre[rows, cols] += _forcing(h, X[t], H, n_b)
            slope = activation.slope(pre, np)
            S = slope[:, None] * dpre
            h = activation.function(pre, np)
            hidden[t], recurrent[t] = h, W_hy @ S
            slope_sum += slope
            slope_jacobian_sum += _slope_derivative(activation, pre)[:, None] * dpre
    # The output layer: y_t[a] = W_hy[a] h_t + b_y[a].
    readout = np.zeros((n, m, m * H + m))
    for a in range(m):
        readout[:, a, a * H:(a + 1) * H] = hidden
        readout[:, a, m * H + a] = 1.0
    return _Sensitivities(
        predictions=hidden @ W_hy.T + w["b_y"],
        jacobian=np.concatenate([recurrent, readout], axis=2),
        mean_slope=slope_sum / max(n, 1),
        mean_slope_jacobian=slope_jacobian_sum / max(n, 1),
    )


def _arma11_reading(segments):
    """``(γ_0, γ_1, ρ)`` of each serially correlated target of ``segments`` (each
    sequence's residuals), for :func:`_bartlett_bandwidth` and :func:`_residual_memory`.

    Each target's own autocovariances at lags 0, 1, 2 (zero where no segment is longer),
    read as ARMA(1, 1): ``ρ = γ_2 / γ_1``, held within ±0.97. A target whose lag-1
    autocovariance is within two standard errors of zero counts as white and is left
    out; with none left, the arrays are empty.
    """
    n = sum(len(u) for u in segments)
    g0, g1, g2 = np.diagonal(_autocovariances(segments, 2), axis1=1, axis2=2)
    live = (g0 > 0) & (np.abs(g1) > 2 * g0 / np.sqrt(n))
    g0, g1, g2 = g0[live], g1[live], g2[live]
    return g0, g1, np.clip(g2 / g1, -0.97, 0.97)


def _bartlett_bandwidth(segments):
    """Andrews' (1991) plug-in bandwidth of the Bartlett kernel, from an ARMA(1, 1) fit.

    Read from the residuals (``segments``: each sequence's training rows), whose serial
    correlation the scores inherit, and which, unlike the scores, do not depend on the
    weights' coordinates. An input-driven network's residuals are the process noise
    filtered by the system plus white measurement noise: their autocovariances decay
    geometrically from lag 1 on, ``γ_k = γ_1 ρ^(k-1)``, while the white part adds to
    ``γ_0`` alone. So ``ρ = γ_2 / γ_1`` (an AR(1) fit, ``ρ = γ_1 / γ_0``, reads the white
    part as a faster decay and halves the bandwidth: measured, 95% regions of a linear
    network's eigenvalues then cover 86% instead of 90%). With each target's
    ``S_0 = γ_0 + 2 γ_1 / (1 - ρ)`` (the long-run variance) and ``S_1 = 2 γ_1 / (1 - ρ)²``
    (``sum_k |k| γ_k``), ``alpha = sum S_1² / sum S_0²`` and ``L = 1.1447 (alpha n)^(1/3)``,
    at most an eighth of the shortest segment. A target whose lag-1 autocovariance is
    within two standard errors of zero counts as white (``S_1 = 0``): white scores give
    ``L = 1``.
    """
    n = sum(len(u) for u in segments)
    g0, g1, rho = _arma11_reading(segments)
    if not g0.size:
        return 1
    # (A long-run variance is positive; strongly negative correlation is held off zero.)
    s0 = np.maximum(g0 + 2 * g1 / (1 - rho), 0.03 * g0)
    s1 = 2 * g1 / (1 - rho) ** 2
    alpha = np.sum(s1**2) / np.sum(s0**2)
    shortest = min(len(u) for u in segments)
    return int(np.clip(np.ceil(1.1447 * (alpha * n) ** (1 / 3)), 1, max(shortest // 8, 1)))


def _residual_memory(segments):
    """Lags over which the residuals' autocovariances matter: ``20 / (1 - |ρ|)``, with
    ``ρ`` the slowest decay of the targets' ARMA(1, 1) reading (``ρ = γ_2 / γ_1``, as in
    :func:`_bartlett_bandwidth`), at most the shortest segment; 1 for white residuals.

    A Bartlett taper over that many lags shrinks an autocovariance that decays as
    ``ρ^k`` by about ``(1 - |ρ|) / 20`` on average: the long-run variance it gives is
    about 5% low, the standard deviations 2.5%.
    """
    rho = _arma11_reading(segments)[2]
    if not rho.size:
        return 1
    shortest = min(len(u) for u in segments)
    return int(min(np.ceil(20 / (1 - np.max(np.abs(rho)))), max(shortest, 1)))


def _exogenous_score_covariance(jacobians, residuals):
    """``Var(sum_t J_t^T r_t)`` where the residuals are independent of the inputs.

    Then ``Cov(u_t, u_s) = J_t^T Cov(r_t, r_s) J_s`` with ``J`` fixed by the inputs, and
    ``M = sum_{t,s} J_t^T Cov(r_t, r_s) J_s`` needs only the residuals' autocovariances
    ``Λ_k = Cov(r_{t+k}, r_t)``: the Jacobians' own serial correlation enters exactly,
    not through a kernel on the scores. (A kernel on the scores spans the lags of their
    product, the slower of the two, with a bandwidth read from the residuals alone;
    measured on an input-driven system with modes at -0.94 ± 0.21i, it gave standard
    deviations half the spread of the estimates, this one the spread.) ``Λ_k`` are the
    biased sample autocovariances (sums over each segment divided by all rows) under a
    Bartlett taper of :func:`_residual_memory` lags: a positive semi-definite sequence,
    so ``M`` is one.
    ``jacobians`` (rows, targets, weights) and ``residuals`` (rows, targets): each
    sequence's training rows.
    """
    n = sum(len(r) for r in residuals)
    K = _residual_memory(residuals)
    m, n_weights = jacobians[0].shape[1:]
    # Λ_k = E[r_{t+k} r_t^T], tapered; kernel[K - 1 + d] = Cov(r_{s+d}, r_s), d = 1-K..K-1.
    taper = 1.0 - np.arange(K) / K
    lags = _lagged_covariances(residuals, K, n) * taper[:, None, None]
    kernel = np.concatenate([np.transpose(lags[:0:-1], (0, 2, 1)), lags])
    M = np.zeros((n_weights, n_weights))
    for J in jacobians:
        T = len(J)
        for j in range(m):
            # (kernel_ij * J_j)(t) = sum_s Cov(r_t, r_s)_ij J_s[j] for every i at once.
            smoothed = signal.fftconvolve(J[:, None, j, :], kernel[:, :, j, None], axes=0)
            M += np.einsum("tip,tiq->pq", J, smoothed[K - 1:K - 1 + T])
    return 0.5 * (M + M.T)


def _lagged_covariances(segments, K, n):
    """``Γ(k) = sum_t x_{t+k} x_t^T / n`` within each segment, ``k = 0..K-1``, by FFT."""
    m = segments[0].shape[1]
    gamma = np.zeros((K, m, m))
    for x in segments:
        T = len(x)
        if not T:
            continue
        size = 1 << int(np.ceil(np.log2(2 * T)))
        F = np.fft.rfft(x, n=size, axis=0)
        cross = np.fft.irfft(F[:, :, None] * np.conj(F[:, None, :]), n=size, axis=0)
        k = min(K, T)
        gamma[:k] += cross[:k]
    return gamma / n


def _long_run_covariance(segments, L):
    """``Var(sum_t u_t)`` of serially correlated scores, by overlapping batch means.

    The sums ``b_j`` of the scores over every window of ``L`` consecutive rows of a
    segment (a sequence's training rows) give ``M = n / (L n_windows) sum_j b_j b_j^T``,
    the Bartlett-kernel (Newey-West) estimate: ``L = 1`` is White's ``sum_t u_t u_t^T``.
    """
    n = sum(len(u) for u in segments)
    total, n_windows = 0.0, 0
    for u in segments:
        if len(u) < L:
            continue
        cumulative = np.vstack([np.zeros((1, u.shape[1])), np.cumsum(u, axis=0)])
        windows = cumulative[L:] - cumulative[:-L]
        total = total + windows.T @ windows
        n_windows += len(windows)
    return n / (L * max(n_windows, 1)) * total


def _fixed_point_gain(w, pre, x_bar, activation):
    """``σ'(pre*)`` at the fixed point and its derivative in the recurrent weights.

    Implicit differentiation of ``pre* = W_hh σ(pre*) + W_xh x̄ + b_h``:
    ``dpre* = (I - W_hh diag(σ'(pre*)))^-1 F``, ``F`` the explicit derivative.
    """
    H = w["W_hh"].shape[0]
    n_b = _recurrent_sizes(w, activation)[2]
    rows, cols = _forcing_index(w, activation)
    slope = activation.slope(pre, np)
    F = np.zeros((H, cols.size))
    F[rows, cols] = _forcing(activation.function(pre, np), x_bar, H, n_b)
    dpre = np.linalg.solve(np.eye(H) - w["W_hh"] * slope[None, :], F)
    return slope, _slope_derivative(activation, pre)[:, None] * dpre
