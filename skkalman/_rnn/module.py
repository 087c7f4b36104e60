"""The Elman RNN as a torch module, and the loss that masks missing targets.

``h_t = σ(W_hh h_{t-1} + W_xh x̃_t + b_h)``, ``ŷ_t = ȳ + s_y ⊙ (W_hy h_t + b_y)``, where
``x̃_t = (x_t - x̄) / s_x``: inputs and outputs are standardized by buffers fitted on the
training data, so one learning rate suits data of any scale. The parameters carry the
equations' names; :func:`raw_weights` folds the buffers into them to give the weights of
the same network written on raw data.
"""

import math
import warnings

import numpy as np
import torch
from torch import nn

__all__ = ["ElmanRNN", "MaskedMSELoss", "raw_weights"]

NONLINEARITIES = ("tanh", "relu", "linear")


class ElmanRNN(nn.Module):
    """One-layer Elman network over batches of sequences ``(batch, time, n_features)``.

    Parameters
    ----------
    n_features, n_targets, hidden_size : int
    nonlinearity : {"tanh", "relu", "linear"}
    x_mean, x_scale : array-like of shape (n_features,), default=None (0 and 1)
    y_mean, y_scale : array-like of shape (n_targets,), default=None (0 and 1)
    spectral_radius : float, default=0.9
        ``W_hh`` starts as a random orthogonal matrix times this, so the recurrence starts
        stable (every eigenvalue has this modulus).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> rnn = ElmanRNN(n_features=2, n_targets=1, hidden_size=3)
    >>> rnn(torch.zeros(4, 10, 2)).shape
    torch.Size([4, 10, 1])
    """

    def __init__(self, n_features, n_targets, hidden_size, nonlinearity="tanh", *,
                 x_mean=None, x_scale=None, y_mean=None, y_scale=None, spectral_radius=0.9):
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got "
                             f"{nonlinearity!r}.")
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.spectral_radius = spectral_radius
        H = hidden_size
        self.W_hh = nn.Parameter(torch.empty(H, H))
        self.W_xh = nn.Parameter(torch.empty(H, n_features))
        self.b_h = nn.Parameter(torch.empty(H))
        self.W_hy = nn.Parameter(torch.empty(n_targets, H))
        self.b_y = nn.Parameter(torch.empty(n_targets))

        def buffer(value, n, default):
            value = np.full(n, default) if value is None else np.asarray(value)
            return torch.as_tensor(value, dtype=torch.get_default_dtype()).reshape(n)

        self.register_buffer("x_mean", buffer(x_mean, n_features, 0.0))
        self.register_buffer("x_scale", buffer(x_scale, n_features, 1.0))
        self.register_buffer("y_mean", buffer(y_mean, n_targets, 0.0))
        self.register_buffer("y_scale", buffer(y_scale, n_targets, 1.0))
        # torch's fused RNN ops take two biases; b_h is the only trainable one.
        self.register_buffer("_zero_bias", torch.zeros(H), persistent=False)
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

        Returns
        -------
        y : tensor of shape (batch, time, n_targets)
        h : tensor of shape (batch, time, hidden_size)
        """
        Xs = (X - self.x_mean) / self.x_scale
        if h0 is None:
            h0 = Xs.new_zeros(X.shape[0], self.hidden_size)
        if self.nonlinearity == "linear":
            h = self._linear_recurrence(Xs, h0)
        else:
            h = self._fused_recurrence(Xs, h0)
        y = torch.addmm(self.b_y, h.reshape(-1, self.hidden_size), self.W_hy.T)
        y = self.y_mean + self.y_scale * y
        return y.reshape(*h.shape[:2], -1), h

    def forward(self, X):
        """Predicted targets, tensor of shape (batch, time, n_targets)."""
        return self.run(X)[0]

    def _fused_recurrence(self, Xs, h0):
        op = torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu
        params = (self.W_xh, self.W_hh, self.b_h, self._zero_bias)
        with warnings.catch_warnings():
            # cuDNN copies weights that are not one flat buffer and says so on every call;
            # keeping the equations' parameters separate is worth that copy here.
            warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
            h, _ = op(Xs, h0.unsqueeze(0), params, True, 1, 0.0, self.training, False, True)
        return h

    def _linear_recurrence(self, Xs, h0):
        # No fused op exists for the identity. Instead of a Python step per time step, the
        # sequence is cut into chunks of c steps: inside a chunk every state is a sum of
        # matrix powers times inputs (one batched einsum), and only the state at chunk
        # ends is carried in a loop, so the loop has T / c steps instead of T.
        U = torch.addmm(self.b_h, Xs.reshape(-1, Xs.shape[-1]), self.W_xh.T)
        batch, T, H = Xs.shape[0], Xs.shape[1], self.hidden_size
        U = U.reshape(batch, T, H)
        # c ~ sqrt(T) balances the loop against the einsum's c-fold extra work; the cap
        # bounds the (c, c, H, H) kernel's memory for large hidden sizes.
        c = max(1, min(math.ceil(math.sqrt(T)), 32, 256 // H))
        n = -(-T // c)
        U = nn.functional.pad(U, (0, 0, 0, n * c - T)).reshape(batch, n, c, H)
        # Row-vector form h_t = h_{t-1} M + u_t with M = W_hh^T; powers[j] = M^j.
        M = self.W_hh.T
        powers = [torch.eye(H, dtype=M.dtype, device=M.device)]
        for _ in range(c):
            powers.append(powers[-1] @ M)
        powers = torch.stack(powers)
        lag = torch.arange(c, device=M.device)
        lag = lag[:, None] - lag[None, :]
        kernel = powers[lag.clamp(min=0)] * (lag >= 0)[..., None, None]
        local = torch.einsum("bnkh,tkhg->bntg", U, kernel)
        h, starts = h0, []
        for i in range(n):
            starts.append(h)
            h = h @ powers[c] + local[:, i, -1]
        starts = torch.stack(starts, dim=1)
        states = local + torch.einsum("bnh,thg->bntg", starts, powers[1:])
        return states.reshape(batch, n * c, H)[:, :T]


class MaskedMSELoss(nn.Module):
    """Mean squared error over the observed (non-NaN) targets, in standardized units.

    NaN in the target marks an entry whose loss is not counted: a missing measurement, or
    a warm-up step of a training window. Such entries contribute exactly zero to the loss
    and to every gradient.

    Parameters
    ----------
    y_scale : array-like of shape (n_targets,), default=None (ones)
        Errors are divided by it, so the loss does not depend on the targets' units.

    Examples
    --------
    >>> import torch
    >>> loss = MaskedMSELoss()
    >>> loss(torch.tensor([[1.0], [5.0]]), torch.tensor([[0.0], [float("nan")]]))
    tensor(1.)
    """

    def __init__(self, y_scale=None):
        super().__init__()
        scale = torch.as_tensor(1.0 if y_scale is None else np.asarray(y_scale),
                                dtype=torch.get_default_dtype())
        self.register_buffer("y_scale", scale)

    def forward(self, y_pred, y_true):
        observed = ~torch.isnan(y_true)
        # Fill before subtracting: NaN * 0 would still be NaN in the backward pass.
        error = (y_pred - torch.nan_to_num(y_true)) / self.y_scale
        error = torch.where(observed, error, 0.0)
        return error.square().sum() / observed.sum().clamp(min=1)


def raw_weights(module):
    """The module's weights written on raw data, as float64 ndarrays.

    Returns
    -------
    weights : dict
        ``W_hh, W_xh, b_h, W_hy, b_y`` such that ``h_t = σ(W_hh h_{t-1} + W_xh x_t + b_h)``
        and ``y_t = W_hy h_t + b_y`` on unstandardized ``x_t`` and ``y_t``.

    Examples
    --------
    >>> rnn = ElmanRNN(1, 1, 2, "linear", x_scale=[2.0], y_mean=[5.0])
    >>> w = raw_weights(rnn)
    >>> bool((w["W_xh"] == rnn.W_xh.detach().numpy() / 2).all()), w["b_y"]
    (True, array([5.]))
    """
    p = {name: value.detach().cpu().double().numpy()
         for name, value in module.state_dict().items()}
    W_xh = p["W_xh"] / p["x_scale"]
    return dict(
        W_hh=p["W_hh"],
        W_xh=W_xh,
        b_h=p["b_h"] - W_xh @ p["x_mean"],
        W_hy=p["y_scale"][:, None] * p["W_hy"],
        b_y=p["y_mean"] + p["y_scale"] * p["b_y"],
    )
