"""The activations ``σ`` of the Elman network and their derivatives, written once.

Each entry works on NumPy arrays and on torch tensors alike (only operators and the
``xp`` namespace's ``tanh`` are used), so the torch module and the linearization in
:mod:`skkalman.rnn` read the same table. This module imports neither torch nor skorch.
"""

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ACTIVATIONS", "Activation"]


@dataclass(frozen=True)
class Activation:
    """One activation: ``function(z, xp)``, its derivative ``slope(z, xp)``, fused op.

    Attributes
    ----------
    function : callable
        ``σ(z)``; ``xp`` is the array namespace (``numpy`` or ``torch``).
    slope : callable
        ``σ'(z)``, elementwise.
    fused : str or None
        Name of torch's fused recurrent op for this activation (``torch.rnn_tanh``), None
        where torch has none.
    hidden_bias : bool
        Whether the network trains ``b_h``. Not for the odd activations (identity,
        tanh): with inputs standardized to mean zero, ``b_h = 0`` makes ``h = 0``, the
        state every sequence starts from, the network's resting state, so a new sequence
        starts without a transient. A trained ``b_h`` moves the resting state away and
        costs every new sequence a transient as long as the network's slowest mode
        (measured on a 2,000-step held-out sequence of the main job's input-driven
        set-up: 20% above the optimal MSE for a linear network, 34% for tanh, against 1%
        and 3% with ``b_h = 0``). ``relu`` keeps it: its zero state is a corner, and its
        units need a threshold.

    Examples
    --------
    >>> import numpy as np
    >>> tanh = ACTIVATIONS["tanh"]
    >>> z = np.array([-1.0, 0.0, 2.0])
    >>> bool(np.allclose(tanh.slope(z, np), 1 - np.tanh(z) ** 2))
    True
    >>> ACTIVATIONS["relu"].function(z, np), ACTIVATIONS["relu"].slope(z, np)
    (array([0., 0., 2.]), array([0., 0., 1.]))
    """

    function: Callable
    slope: Callable
    fused: str | None
    hidden_bias: bool


ACTIVATIONS = {
    "tanh": Activation(
        function=lambda z, xp: xp.tanh(z),
        slope=lambda z, xp: 1.0 - xp.tanh(z) ** 2,
        fused="rnn_tanh",
        hidden_bias=False,
    ),
    "relu": Activation(
        function=lambda z, xp: (z + abs(z)) / 2,
        # The derivative at 0 is taken as 0, as torch's autograd takes it.
        slope=lambda z, xp: (z > 0) * 1.0,
        fused="rnn_relu",
        hidden_bias=True,
    ),
    "linear": Activation(
        function=lambda z, xp: z,
        slope=lambda z, xp: z * 0.0 + 1.0,
        fused=None,
        hidden_bias=False,
    ),
}
"""``nonlinearity`` name -> :class:`Activation`."""
