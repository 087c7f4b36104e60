"""Training through skorch: carried states, the plateau rule, restarts, local seeding.

Training sees each sequence's training rows as consecutive windows that start from the
state the previous window ended in (:class:`CarryStates`), so no window starts blind and
no warm-up is spent; validation runs every sequence whole, from its first row. The default
optimizer is full-batch L-BFGS with a strong-Wolfe line search, passed to skorch as a
closure optimizer (skorch's ``train_step`` hands it the closure).
"""

import copy
from contextlib import contextmanager

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.callbacks import Callback

__all__ = [
    "OPTIMIZERS",
    "CarryStates",
    "Diverged",
    "PlateauStopping",
    "RecordStability",
    "SequenceNet",
    "StartFrom",
    "StopOnDivergence",
    "WindowBatches",
    "fit_restarts",
    "into_linear_range",
    "local_seed",
    "optimizer_params",
    "small_model_threads",
]

OPTIMIZERS = {
    "lbfgs": torch.optim.LBFGS,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


def optimizer_params(optimizer, lr):
    """skorch's ``optimizer``/``lr``/``optimizer__*`` arguments for a named optimizer.

    L-BFGS takes full steps (``lr=1``) scaled by its strong-Wolfe line search, and runs
    ``max_iter`` iterations per epoch, so each epoch ends with a validation pass and a
    state refresh; the others take ``lr`` (0.01 when None) per batch.

    Examples
    --------
    >>> optimizer_params("lbfgs", None)["optimizer__line_search_fn"]
    'strong_wolfe'
    """
    if not isinstance(optimizer, str):
        return dict(optimizer=optimizer, lr=0.01 if lr is None else lr)
    params = dict(optimizer=OPTIMIZERS[optimizer])
    if optimizer == "lbfgs":
        params.update(lr=1.0 if lr is None else lr, optimizer__line_search_fn="strong_wolfe",
                      optimizer__max_iter=10, optimizer__max_eval=20,
                      optimizer__history_size=20)
    else:
        params.update(lr=0.01 if lr is None else lr)
    return params


class Diverged(Exception):
    """Raised from inside skorch's loop when a loss stops being finite."""

    def __init__(self, epoch, name):
        super().__init__(f"{name} became non-finite at epoch {epoch}")
        self.epoch = epoch
        self.name = name


# Standardized targets put a useless model's loss near 1; L-BFGS's line search reads a loss
# above this (a step into weights whose states overflow) as a wall. A finite wall, because
# its cubic interpolation turns an infinite loss into a NaN step.
_LOSS_WALL = 1e4


class SequenceNet(NeuralNetRegressor):
    """skorch's regressor, made safe for L-BFGS on recurrences.

    With L-BFGS (a closure optimizer whose line search evaluates trial steps):

    - a loss that is not finite or above ``1e4`` (standardized units) is reported as
      ``1e4`` with a zero gradient: a trial step into an unstable region, where a long
      sequence's states overflow, then looks like a wall and the line search backs off,
      instead of reading NaN comparisons as progress;
    - a step that leaves the weights unchanged (its line search found no decrease along
      the direction that a stale curvature memory proposed) clears that memory, so the
      next step starts afresh along the gradient instead of repeating the failed one.

    With a first-order optimizer a non-finite loss is recorded as it is, and
    :class:`StopOnDivergence` ends the fit.
    """

    def _quasi_newton(self):
        return [getattr(self, name + "_") for name in self._optimizers
                if isinstance(getattr(self, name + "_"), torch.optim.LBFGS)]

    def train_step_single(self, batch, **fit_params):
        step = super().train_step_single(batch, **fit_params)
        loss = step["loss"]
        if self._quasi_newton() and not bool(loss <= _LOSS_WALL):
            for param in self.module_.parameters():
                if param.grad is not None:
                    param.grad.zero_()
            step["loss"] = torch.full_like(loss, _LOSS_WALL).detach()
        return step

    def train_step(self, batch, **fit_params):
        quasi_newton = self._quasi_newton()
        if not quasi_newton:
            return super().train_step(batch, **fit_params)
        before = [p.detach().clone() for p in self.module_.parameters()]
        step = super().train_step(batch, **fit_params)
        if all(torch.equal(a, p) for a, p in zip(before, self.module_.parameters(),
                                                 strict=True)):
            for optimizer in quasi_newton:
                optimizer.state.clear()
        return step


class StopOnDivergence(Callback):
    """Stop training at the first epoch whose training or validation loss is NaN or inf."""

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        for name in ("train_loss", "valid_loss"):
            if name in row and not np.isfinite(row[name]):
                raise Diverged(len(net.history), name)


class CarryStates(Callback):
    """Start every training window from the state its predecessor ended in.

    At the beginning of each epoch, every window is run once (one batched pass, no
    gradient) from its current start state, and each window's end state becomes its
    successor's start state. The states are held fixed during the epoch, so the loss that
    the optimizer (and its line search) sees is one fixed function; as the weights settle,
    the start states converge to those of running each sequence through, each epoch
    moving information one window further and shrinking the error of the rest by the
    recurrence's contraction over a window.

    Parameters
    ----------
    previous, last : ndarray of shape (n_windows,)
        See :class:`~skkalman._rnn.data.Windows`.
    """

    def __init__(self, previous, last):
        self.previous = previous
        self.last = last

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        X = dataset_train.X
        module = net.module_
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                _, h = module.run(X["X"], X["h0"])
                ends = h[torch.arange(len(self.last)), torch.as_tensor(self.last)]
                has_previous = torch.as_tensor(self.previous >= 0)
                source = torch.as_tensor(np.maximum(self.previous, 0))
                X["h0"].copy_(torch.where(has_previous[:, None], ends[source], 0.0))
        finally:
            module.train(was_training)


class StartFrom(Callback):
    """Start training from given weights instead of the module's random draw.

    Parameters
    ----------
    weights : dict of str to tensor
        Values of some of the module's parameters, copied in before the first epoch (in
        place, so the optimizer's references stay valid).
    """

    def __init__(self, weights):
        self.weights = weights

    def on_train_begin(self, net, **kwargs):
        with torch.no_grad():
            for name, value in self.weights.items():
                getattr(net.module_, name).copy_(value)


# Scales tried by into_linear_range, largest first: the root mean square of each unit's
# pre-activation at the start.
_LINEAR_RANGE_SCALES = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
# How far above the linear network's loss the scaled nonlinear one may start.
_LINEAR_RANGE_TOLERANCE = 1e-3


def into_linear_range(linear, nonlinearity, X, y):
    """Weights of a ``nonlinearity`` network that computes what a trained linear one does.

    An odd activation with unit slope at zero (tanh) is the identity near zero, so a
    linear network ``h_t = W h_{t-1} + U x_t``, ``y_t = C h_t + b`` is the limit of the
    nonlinear network with state ``g = S h`` for a small diagonal ``S``:
    ``g_t = σ(S W S⁻¹ g_{t-1} + S U x_t)``, ``y_t = C S⁻¹ g_t + b``. ``S`` puts the root
    mean square of each unit's pre-activation at a scale ``q``; the largest ``q`` of
    ``0.5, 0.2, ..., 0.001`` is taken whose network's loss on ``(X, y)`` is within 0.1%
    of the linear network's (the smallest, if none is). A larger ``q`` leaves the
    nonlinearity more room to work from the start; a smaller one is needed where the
    linear fit is so close to the data that a thousandth of curvature shows.
    ``S W S⁻¹`` has ``W``'s eigenvalues: the start has the linear network's dynamics.

    Parameters
    ----------
    linear : ElmanRNN
        A trained network with ``nonlinearity="linear"``.
    nonlinearity : str
        An activation of :data:`~skkalman._rnn.activations.ACTIVATIONS` without a hidden
        bias (``tanh``).
    X, y : tensor of shape (n_sequences, time, n_features / n_targets)
        Whole training sequences from the zero state; NaN targets are not counted.

    Returns
    -------
    weights : dict of str to tensor
        ``W_hh, W_xh, W_hy, b_y`` (see :class:`StartFrom`).
    """
    from .module import MaskedMSELoss

    loss = MaskedMSELoss()
    W, U, C, b = (getattr(linear, name).detach() for name in ("W_hh", "W_xh", "W_hy", "b_y"))
    # The same module with the activation swapped (neither trains b_h): no random draw.
    candidate = copy.deepcopy(linear)
    candidate.nonlinearity = nonlinearity
    with torch.no_grad():
        y_linear, h = linear.run(X)
        reference = float(loss(y_linear, y))
        rms = h.square().mean(dim=(0, 1)).sqrt()
        rms = torch.where(rms > 0, rms, 1.0)
        for q in _LINEAR_RANGE_SCALES:
            s = q / rms
            weights = dict(W_hh=s[:, None] * W / s[None, :], W_xh=s[:, None] * U,
                           W_hy=C / s[None, :], b_y=b.clone())
            for name, value in weights.items():
                getattr(candidate, name).copy_(value)
            if float(loss(candidate(X), y)) <= reference * (1 + _LINEAR_RANGE_TOLERANCE):
                break
    return weights


class RecordStability(Callback):
    """Record in the history whether a linear network's recurrence is stable.

    ``stable``: every eigenvalue of ``W_hh`` lies inside the unit circle. An unstable
    linear network's states grow without bound, so its forecasts drift away on sequences
    longer than the ones it was validated on, however low its validation loss.
    """

    def on_epoch_end(self, net, **kwargs):
        W_hh = net.module_.W_hh.detach().cpu().double().numpy()
        net.history.record("stable", bool(np.max(np.abs(np.linalg.eigvals(W_hh))) < 1))


# How much worse than the lowest validation loss the last epoch's may be and still be kept.
# Beyond it training has overfit (measured: 2 x 160 steps, twice the lowest loss); within
# it, differences between late epochs are the validation rows' noise (measured: a few per
# mille at 2,000 rows), and the last epoch is the optimum of the training loss.
_OVERFIT = 0.01


class PlateauStopping(Callback):
    """Stop when the monitored loss is on a plateau; keep the last or the best weights.

    The loss is on a plateau when ``n_iter_no_change`` consecutive epochs have not
    lowered its best value by more than ``tol`` times that value. At the end of training,
    however it ended, the module keeps the weights of the last epoch, the optimum that
    the optimizer converged to, unless their loss exceeds the lowest by more than 1%:
    then training has overfit, and the weights of the epoch with the lowest loss are
    restored. Choosing the lowest loss every time would choose by the noise of the
    validation rows (two starts that converge to the same optimum of the training loss
    would keep different, earlier weights). Epochs that the history marks ``stable``
    are preferred to the others when there are any (see :class:`RecordStability`).

    Attributes
    ----------
    plateau_ : bool
        Whether training ended because of the plateau.
    kept_loss_ : float
        The loss of the weights kept.
    kept_stable_ : bool
        Whether those weights are stable (True when the history does not say).
    """

    def __init__(self, monitor="valid_loss", tol=1e-4, n_iter_no_change=10, sink=None):
        self.monitor = monitor
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.sink = sink

    def initialize(self):
        self.plateau_ = False
        self.kept_loss_ = np.inf
        self.kept_stable_ = False
        self._best = (False, -np.inf)
        self._best_weights = None
        self._last = (False, -np.inf)
        self._reference = np.inf
        self._misses = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1, self.monitor]
        self._last = (bool(net.history[-1].get("stable", True)), -loss)
        if self._last > self._best:
            self._best = self._last
            self._best_weights = copy.deepcopy(net.module_.state_dict())
        if not np.isfinite(self._reference) or (
                loss < self._reference - self.tol * abs(self._reference)):
            self._reference, self._misses = loss, 0
        else:
            self._misses += 1
        if self._misses >= self.n_iter_no_change:
            self.plateau_ = True
            if self.sink is not None:
                self.sink(f"Stopping: {self.monitor} has not improved by more than "
                          f"tol={self.tol} (relative) in {self.n_iter_no_change} epochs.")
            raise KeyboardInterrupt

    def on_train_end(self, net, **kwargs):
        (stable, last), (best_stable, best) = self._last, self._best
        kept = self._last
        if stable < best_stable or -last > -best + _OVERFIT * abs(best):
            net.module_.load_state_dict(self._best_weights)
            kept = self._best
        self.kept_stable_, self.kept_loss_ = kept[0], -kept[1]


class WindowBatches:
    """Batches of windows cut from the dataset's tensors by one index each.

    Stands in for torch's ``DataLoader`` (skorch's ``iterator_train``/``iterator_valid``
    accept any such class): the windows are already tensors, and indexing them batch by
    batch avoids the loader's item-by-item collation, a large share of an epoch for
    small networks. ``X`` may be a dict of tensors (windows and their start states), all
    indexed alike. Shuffling draws from torch's global generator, as the loader does.
    """

    def __init__(self, dataset, batch_size=None, shuffle=False, **_):
        self.X, self.y = dataset.X, dataset.y
        n = len(self.y)
        self.batch_size = n if batch_size in (None, -1) else max(int(batch_size), 1)
        self.shuffle = shuffle

    def __len__(self):
        return -(-len(self.y) // max(self.batch_size, 1))

    def __iter__(self):
        n = len(self.y)
        if self.batch_size >= n:
            # One batch of everything: the tensors themselves, no copy.
            yield self.X, self.y
            return
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        for idx in order.split(self.batch_size):
            X = ({k: v[idx] for k, v in self.X.items()} if isinstance(self.X, dict)
                 else self.X[idx])
            yield X, self.y[idx]


@contextmanager
def local_seed(seed, device):
    """Seed torch's generators for ``device`` and restore the global states on exit."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()
             ) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        # Only the generators fork_rng saves are seeded (torch.manual_seed would also
        # queue a seed for CUDA devices that are not restored).
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


@contextmanager
def small_model_threads(hidden_size, device):
    """Run a small network's CPU work on one thread, restoring torch's setting after.

    The matrices of a small RNN are far too small to share out, and on a busy machine
    torch's spinning worker threads slow each tiny op down many times over (measured: 30
    to 50 times on 2 shared cores), so one thread is both faster and steadier.
    """
    if torch.device(device).type != "cpu" or hidden_size > 64:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_restarts(seeds, *, train, valid, net_params, carry=None, callbacks=None, tol,
                 n_iter_no_change, check_stability=False, device="cpu", verbose=0,
                 starts=None, agree=None):
    """Train one skorch net per seed; return the one with the lowest validation loss.

    With ``check_stability`` (linear networks), a stable network is preferred to an
    unstable one whatever their losses (see :class:`RecordStability`).

    Parameters
    ----------
    seeds : sequence of int
    train : tuple
        ``(X, y)`` as skorch takes them: ``X`` a dict of the windows ``"X"`` and their
        start states ``"h0"``, tensors on ``device``.
    valid : skorch Dataset
        Whole sequences, loss counted on the held-out rows (or on all rows, when nothing
        is held out: the plateau and the choice of restart then read the training loss).
    net_params : dict
        Keyword arguments of :class:`SequenceNet` (``module__*``, ``optimizer__*``, ...).
    carry : tuple of ndarray, default=None
        ``(previous, last)`` of the windows (see :class:`CarryStates`); None when each
        sequence is one window.
    callbacks : list, default=None
        Copied for each restart, so each starts afresh.
    tol, n_iter_no_change : float, int
        The plateau rule of :class:`PlateauStopping`.
    starts : sequence of dict or None, default=None
        Per seed, weights to start from (see :class:`StartFrom`), or None for the
        module's random draw; None: every start random.
    agree : float, default=None
        Stop before the last seed once the two lowest validation losses (of restarts
        equally stable) agree to this relative tolerance: two starts have then found the
        same optimum, or equally good ones. None runs every seed.

    Returns
    -------
    net : SequenceNet
        With the weights that :class:`PlateauStopping` kept.
    loss : float
        Their validation loss, read from its history.
    converged : bool
        Whether its training ended on a plateau of the validation loss.

    Raises
    ------
    Diverged
        When a loss of any restart becomes NaN or infinite.
    """
    from skorch.helper import predefined_split

    X_train, y_train = train
    starts = [None] * len(seeds) if starts is None else starts
    best, ranks = None, []
    for i, (seed, start) in enumerate(zip(seeds, starts, strict=True)):
        if verbose and len(seeds) > 1:
            print(f"restart {i + 1}/{len(seeds)}")
        plateau = PlateauStopping(tol=tol, n_iter_no_change=n_iter_no_change,
                                  sink=print if verbose else None)
        # After the user's callbacks: they all see every epoch before the plateau ends
        # training, and the epoch whose weights it keeps is one they saw too.
        internal = [("stop_on_divergence", StopOnDivergence())]
        if start is not None:
            internal.append(("start_from", StartFrom(start)))
        if carry is not None:
            internal.append(("carry_states", CarryStates(*carry)))
        if check_stability:
            internal.append(("record_stability", RecordStability()))
        internal.append(("plateau", plateau))
        net = SequenceNet(
            **net_params,
            train_split=predefined_split(valid),
            callbacks=[*copy.deepcopy(callbacks or []), *internal],
            device=device,
            verbose=verbose,
        )
        # Each restart refreshes its own copy of the start states.
        X = {k: v.clone() for k, v in X_train.items()}
        with local_seed(seed, device):
            net.fit(X, y_train)
        loss = plateau.kept_loss_
        if not np.isfinite(loss):
            raise Diverged(len(net.history), "valid_loss")
        rank = (plateau.kept_stable_, -loss)
        ranks.append(rank)
        if best is None or rank > best[0]:
            best = (rank, (net, loss, plateau.plateau_))
        if agree is not None and len(ranks) >= 2:
            (stable, first), (stable_2, second) = sorted(ranks, reverse=True)[:2]
            if stable == stable_2 and first - second <= agree * abs(first):
                if verbose:
                    print(f"Stopping restarts: two validation losses agree to {agree}.")
                break
    return best[1]
