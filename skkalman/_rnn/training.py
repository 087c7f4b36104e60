"""Training through skorch: local seeding, restarts, divergence detection."""

import copy
from contextlib import contextmanager

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.callbacks import Callback, LRScheduler
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from .module import ElmanRNN, MaskedMSELoss

__all__ = ["Diverged", "StopOnDivergence", "WindowBatches", "fit_restarts", "local_seed",
           "small_model_threads",
           "window_loss"]

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


class Diverged(Exception):
    """Raised from inside skorch's loop when a loss stops being finite."""

    def __init__(self, epoch, name):
        super().__init__(f"{name} became non-finite at epoch {epoch}")
        self.epoch = epoch
        self.name = name


class StopOnDivergence(Callback):
    """Stop training at the first epoch whose training or validation loss is NaN or inf."""

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        for name in ("train_loss", "valid_loss"):
            if name in row and not np.isfinite(row[name]):
                raise Diverged(len(net.history), name)


class WindowBatches:
    """Batches of windows cut from the dataset's tensors by one index each.

    Stands in for torch's ``DataLoader`` (skorch's ``iterator_train``/``iterator_valid``
    accept any such class): the windows are already tensors, and indexing them batch by
    batch avoids the loader's item-by-item collation, a large share of an epoch for
    small networks. Shuffling draws from torch's global generator, as the loader does.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, **_):
        self.X, self.y = dataset.X, dataset.y
        self.batch_size = batch_size if batch_size not in (None, -1) else len(self.X)
        self.shuffle = shuffle

    def __len__(self):
        return -(-len(self.X) // max(self.batch_size, 1))

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        for idx in order.split(max(self.batch_size, 1)):
            yield self.X[idx], self.y[idx]


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


def window_loss(net, X_windows, y_windows):
    """The criterion over all windows at once (a mean over every counted target)."""
    module = net.module_
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            X = torch.from_numpy(X_windows).to(net.device)
            y = torch.from_numpy(y_windows).to(net.device)
            return float(net.criterion_(module(X), y))
    finally:
        module.train(was_training)


def fit_restarts(seeds, *, train, valid, module_params, y_scale, optimizer, lr, lr_schedule,
                 max_epochs, batch_size, callbacks, net_params, device, verbose):
    """Train one skorch net per seed; return the one with the lowest held-out loss.

    Parameters
    ----------
    seeds : sequence of int
    train, valid : tuple of ndarray
        ``(X_windows, y_windows)``; ``valid`` is None when nothing is held out, and the
        training loss then chooses among the restarts.

    Returns
    -------
    net : skorch.NeuralNetRegressor
    loss : float
        Its loss on ``valid`` (or ``train``).

    Raises
    ------
    Diverged
        When a loss of any restart becomes NaN or infinite.
    """
    optimizer = OPTIMIZERS.get(optimizer, optimizer)
    judge = valid if valid is not None else train
    schedule = []
    if lr_schedule == "cosine":
        policy = torch.optim.lr_scheduler.CosineAnnealingLR
        schedule = [("lr_schedule", LRScheduler(policy=policy, T_max=max_epochs))]
    best_net, best_loss = None, np.inf
    for i, seed in enumerate(seeds):
        if verbose and len(seeds) > 1:
            print(f"restart {i + 1}/{len(seeds)}")
        split = (None if valid is None else
                 predefined_split(Dataset(*(torch.from_numpy(a) for a in valid))))
        net = NeuralNetRegressor(
            module=ElmanRNN,
            **{f"module__{k}": v for k, v in module_params.items()},
            criterion=MaskedMSELoss,
            criterion__y_scale=y_scale,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            iterator_train=WindowBatches,
            iterator_train__shuffle=True,
            iterator_valid=WindowBatches,
            # Validation needs no gradient: one batch of all windows is the cheapest pass.
            iterator_valid__batch_size=max(len(judge[0]), 1),
            train_split=split,
            # The user's callbacks are copied: each restart (and each fit) starts afresh.
            callbacks=[*copy.deepcopy(callbacks or []), *copy.deepcopy(schedule),
                       ("stop_on_divergence", StopOnDivergence())],
            device=device,
            verbose=verbose,
            **(net_params or {}),
        )
        with local_seed(seed, device):
            net.fit(*(torch.from_numpy(a) for a in train))
        loss = window_loss(net, *judge)
        if not np.isfinite(loss):
            raise Diverged(len(net.history), "valid_loss" if valid is not None
                           else "train_loss")
        if loss < best_loss:
            best_net, best_loss = net, loss
    return best_net, best_loss
