"""The Elman RNN as a torch module, and the loss that masks missing targets.

``h_t = σ(W_hh h_{t-1} + W_xh x_t + b_h)``, ``ŷ_t = W_hy h_t + b_y``. The module works in
the units it is given: :class:`~skkalman.ElmanRNNRegressor` standardizes inputs and
targets in float64 before they reach it (so one learning rate suits data of any scale and
any level), and :func:`raw_weights` folds that standardization back into the weights.
"""

import math
import warnings

import torch
from torch import nn

from .activations import ACTIVATIONS

__all__ = ["ElmanRNN", "MaskedMSELoss", "linear_scan", "raw_weights"]


class ElmanRNN(nn.Module):
    """One-layer Elman network over batches of sequences ``(batch, time, n_features)``.

    Parameters
    ----------
    n_features, n_targets, hidden_size : int
    nonlinearity : {"tanh", "relu", "linear"}
        A key of :data:`~skkalman._rnn.activations.ACTIVATIONS`.
    spectral_radius : float, default=0.9
        ``W_hh`` starts as a random orthogonal matrix times this: the recurrence starts
        stable and slow (every eigenvalue has this modulus), so long sequences neither
        explode nor forget at the first step.
    dtype : torch.dtype, default=None
        Of the parameters; None is torch's default (float32).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> rnn = ElmanRNN(n_features=2, n_targets=1, hidden_size=3)
    >>> rnn(torch.zeros(4, 10, 2)).shape
    torch.Size([4, 10, 1])
    """

    def __init__(self, n_features, n_targets, hidden_size, nonlinearity="tanh", *,
                 spectral_radius=0.9, dtype=None):
        super().__init__()
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"nonlinearity must be one of {sorted(ACTIVATIONS)}, got "
                             f"{nonlinearity!r}.")
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.spectral_radius = spectral_radius
        H = hidden_size
        self.W_hh = nn.Parameter(torch.empty(H, H, dtype=dtype))
        self.W_xh = nn.Parameter(torch.empty(H, n_features, dtype=dtype))
        if ACTIVATIONS[nonlinearity].hidden_bias:
            self.b_h = nn.Parameter(torch.empty(H, dtype=dtype))
        else:
            # Held at zero: the zero start state is then the resting state (see the table).
            self.register_buffer("b_h", torch.zeros(H, dtype=dtype))
        self.W_hy = nn.Parameter(torch.empty(n_targets, H, dtype=dtype))
        self.b_y = nn.Parameter(torch.empty(n_targets, dtype=dtype))
        # torch's fused RNN ops take two biases; b_h is the only trainable one.
        self.register_buffer("_zero_bias", torch.zeros(H, dtype=dtype), persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw fresh weights from torch's current random state."""
        with torch.no_grad():
            nn.init.orthogonal_(self.W_hh)
            self.W_hh.mul_(self.spectral_radius)
            # Standardized inputs: pre-activations start with variance about 1/3 per input.
            bound = 1.0 / math.sqrt(max(self.W_xh.shape[1], 1))
            nn.init.uniform_(self.W_xh, -bound, bound)
            nn.init.zeros_(self.b_h)
            bound = 1.0 / math.sqrt(self.hidden_size)
            nn.init.uniform_(self.W_hy, -bound, bound)
            nn.init.zeros_(self.b_y)

    def run(self, X, h0=None):
        """Outputs and hidden states of every step.

        Parameters
        ----------
        X : tensor of shape (batch, time, n_features)
        h0 : tensor of shape (batch, hidden_size), default=None (zeros)
            The state before the first step.

        Returns
        -------
        y : tensor of shape (batch, time, n_targets)
        h : tensor of shape (batch, time, hidden_size)
        """
        if h0 is None:
            h0 = X.new_zeros(X.shape[0], self.hidden_size)
        fused = ACTIVATIONS[self.nonlinearity].fused
        if fused is None:
            h = self._linear_recurrence(X, h0)
        else:
            h = self._fused_recurrence(getattr(torch, fused), X, h0)
        y = torch.addmm(self.b_y, h.reshape(-1, self.hidden_size), self.W_hy.T)
        return y.reshape(*h.shape[:2], -1), h

    def forward(self, X, h0=None):
        """Predicted targets, tensor of shape (batch, time, n_targets)."""
        return self.run(X, h0)[0]

    def _fused_recurrence(self, op, X, h0):
        params = (self.W_xh, self.W_hh, self.b_h, self._zero_bias)
        with warnings.catch_warnings():
            # cuDNN copies weights that are not one flat buffer and says so on every call;
            # keeping the equations' parameters separate is worth that copy here.
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            h, _ = op(X, h0.unsqueeze(0), params, True, 1, 0.0, self.training, False, True)
        return h

    def _linear_recurrence(self, X, h0):
        U = torch.addmm(self.b_h, X.reshape(X.shape[0] * X.shape[1], X.shape[-1]),
                        self.W_xh.T)
        # Row-vector form h_t = h_{t-1} M + u_t with M = W_hh^T.
        return linear_scan(U.reshape(*X.shape[:2], self.hidden_size), self.W_hh.T, h0)


# Chunk length of linear_scan, and the length below which it steps one by one. Measured on
# one CPU thread, 8,000 steps, hidden sizes 3 to 12: a forward and backward pass 4 to 10
# times faster than one level of chunks of about sqrt(T) steps.
_CHUNK, _LEAF = 8, 32


def linear_scan(U, M, h0):
    """States of the linear recurrence ``h_t = h_{t-1} M + u_t`` for every step.

    No fused torch op exists for a linear recurrence, and a Python step per time step
    costs ``T`` tiny operations (and as many autograd nodes). Instead the sequence is cut
    into chunks of ``c`` steps: inside a chunk every state is a sum of powers of ``M``
    times inputs (one batched einsum), and the states at chunk ends follow a recurrence of
    the same form, ``e_i = e_{i-1} M^c + (chunk i's state from zero)``, ``T / c`` steps
    long, solved the same way. The sequential work drops from ``T`` steps to about
    ``c log_c T``.

    Parameters
    ----------
    U : tensor of shape (batch, T, H)
    M : tensor of shape (H, H)
    h0 : tensor of shape (batch, H)
        The state before the first step.

    Returns
    -------
    h : tensor of shape (batch, T, H)

    Examples
    --------
    >>> U, M = torch.ones(1, 3, 1), torch.tensor([[0.5]])
    >>> linear_scan(U, M, torch.zeros(1, 1))[0, :, 0]
    tensor([1.0000, 1.5000, 1.7500])
    """
    batch, T, H = U.shape
    if T <= _LEAF:
        h, states = h0, []
        for t in range(T):
            h = torch.addmm(U[:, t], h, M)
            states.append(h)
        return torch.stack(states, dim=1) if states else U
    c = _CHUNK
    n = -(-T // c)
    U = nn.functional.pad(U, (0, 0, 0, n * c - T)).reshape(batch, n, c, H)
    powers = [torch.eye(H, dtype=M.dtype, device=M.device)]  # powers[j] = M^j
    for _ in range(c):
        powers.append(powers[-1] @ M)
    powers = torch.stack(powers)
    lag = torch.arange(c, device=M.device)
    lag = lag[:, None] - lag[None, :]
    kernel = powers[lag.clamp(min=0)] * (lag >= 0)[..., None, None]
    local = torch.einsum("bnkh,tkhg->bntg", U, kernel)
    ends = linear_scan(local[:, :, -1], powers[c], h0)
    starts = torch.cat([h0[:, None], ends[:, :-1]], dim=1)
    states = local + torch.einsum("bnh,thg->bntg", starts, powers[1:])
    return states.reshape(batch, n * c, H)[:, :T]


class MaskedMSELoss(nn.Module):
    """Mean squared error over the observed (non-NaN) targets.

    NaN in the target marks an entry whose loss is not counted: a missing measurement, a
    row held out for validation, or the padding of a window. Such entries contribute
    exactly zero to the loss and to every gradient.

    Examples
    --------
    >>> import torch
    >>> loss = MaskedMSELoss()
    >>> loss(torch.tensor([[1.0], [5.0]]), torch.tensor([[0.0], [float("nan")]]))
    tensor(1.)
    """

    def forward(self, y_pred, y_true):
        observed = ~torch.isnan(y_true)
        # Fill before subtracting: NaN * 0 would still be NaN in the backward pass.
        error = torch.where(observed, y_pred - torch.nan_to_num(y_true), 0.0)
        return error.square().sum() / observed.sum().clamp(min=1)


def raw_weights(module, x_mean, x_scale, y_mean, y_scale):
    """The module's weights written on raw data, as float64 ndarrays.

    The module sees ``(x - x_mean) / x_scale`` and predicts ``(y - y_mean) / y_scale``;
    folding these maps into the weights (in float64) gives the same network on raw data.

    Parameters
    ----------
    module : ElmanRNN
    x_mean, x_scale : ndarray of shape (n_features,)
    y_mean, y_scale : ndarray of shape (n_targets,)

    Returns
    -------
    weights : dict
        ``W_hh, W_xh, b_h, W_hy, b_y`` such that ``h_t = σ(W_hh h_{t-1} + W_xh x_t + b_h)``
        and ``y_t = W_hy h_t + b_y`` on unstandardized ``x_t`` and ``y_t``.

    Examples
    --------
    >>> import numpy as np
    >>> rnn = ElmanRNN(1, 1, 2, "linear")
    >>> w = raw_weights(rnn, np.zeros(1), np.array([2.0]), np.array([5.0]), np.ones(1))
    >>> bool((w["W_xh"] == rnn.W_xh.detach().double().numpy() / 2).all()), w["b_y"]
    (True, array([5.]))
    """
    p = {name: getattr(module, name).detach().cpu().double().numpy()
         for name in ("W_hh", "W_xh", "b_h", "W_hy", "b_y")}
    W_xh = p["W_xh"] / x_scale
    return dict(
        W_hh=p["W_hh"],
        W_xh=W_xh,
        b_h=p["b_h"] - W_xh @ x_mean,
        W_hy=y_scale[:, None] * p["W_hy"],
        b_y=y_mean + y_scale * p["b_y"],
    )
