"""Pure NumPy/SciPy kernels of the linear-Gaussian state-space model.

A kernel knows one sequence and a :class:`StateSpaceParams`; it never validates user input
and never sees ``lengths``.
"""

from .filter import FilterResult, kalman_filter
from .params import StateSpaceParams
from .smoother import SmootherResult, rts_smoother

__all__ = [
    "FilterResult",
    "SmootherResult",
    "StateSpaceParams",
    "kalman_filter",
    "rts_smoother",
]
