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


ACTIVATIONS = {
    "tanh": Activation(
        function=lambda z, xp: xp.tanh(z),
        slope=lambda z, xp: 1.0 - xp.tanh(z) ** 2,
        fused="rnn_tanh",
    ),
    "relu": Activation(
        function=lambda z, xp: (z + abs(z)) / 2,
        # The derivative at 0 is taken as 0, as torch's autograd takes it.
        slope=lambda z, xp: (z > 0) * 1.0,
        fused="rnn_relu",
    ),
    "linear": Activation(
        function=lambda z, xp: z,
        slope=lambda z, xp: z * 0.0 + 1.0,
        fused=None,
    ),
}
"""``nonlinearity`` name -> :class:`Activation`."""
