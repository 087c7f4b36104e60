"""skkalman: Kalman filters and Elman RNNs as scikit-learn estimators.

A Kalman filter's state-space model and an Elman RNN are the same equations modulo the
activations. skkalman fits both to sequence data and reads the learned dynamics out of
each, in coordinates where they can be compared.
"""

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it. Loaded on first access, so that
# ``import skkalman`` stays light (torch is imported only when an RNN is fitted).
_PUBLIC = {
    "KalmanFilterRegressor": "kalman",
    "ElmanRNNRegressor": "rnn",
    "DynamicsRecovery": "dynamics",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        module = importlib.import_module(f".{_PUBLIC[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
