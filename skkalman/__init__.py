"""skkalman: Kalman filters and Elman RNNs as scikit-learn estimators.

A Kalman filter's state-space model and an Elman RNN are the same equations modulo the
activations. skkalman fits both to sequence data and reads the learned dynamics out of
each, in coordinates where they can be compared.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
