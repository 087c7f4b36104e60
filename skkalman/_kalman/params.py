"""The parameter container shared by every kernel."""

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["StateSpaceParams"]


@dataclass(frozen=True)
class StateSpaceParams:
    """Matrices of the linear-Gaussian state-space model.

    ::

        s_t = A s_{t-1} + B x_t + w_t,   w_t ~ N(0, Q)
        y_t = C s_t     + D x_t + v_t,   v_t ~ N(0, R)

    with ``s_1 ~ N(initial_state_mean, initial_state_covariance)`` the prior of the state at
    the first row, before its measurement update. The container holds arrays as given: the
    estimators validate them, the kernels trust them.

    Parameters
    ----------
    A : ndarray of shape (n_states, n_states)
        Transition matrix.
    B : ndarray of shape (n_states, n_features)
        Input matrix (``n_features`` may be 0).
    C : ndarray of shape (n_targets, n_states)
        Measurement matrix.
    D : ndarray of shape (n_targets, n_features)
        Feed-through matrix.
    Q : ndarray of shape (n_states, n_states)
        Process noise covariance.
    R : ndarray of shape (n_targets, n_targets)
        Measurement noise covariance.
    initial_state_mean : ndarray of shape (n_states,)
        Prior mean of the state at the first row.
    initial_state_covariance : ndarray of shape (n_states, n_states)
        Prior covariance of the state at the first row.

    Examples
    --------
    >>> import numpy as np
    >>> from skkalman._kalman import StateSpaceParams
    >>> params = StateSpaceParams(
    ...     A=np.eye(2), B=np.zeros((2, 0)), C=np.ones((1, 2)), D=np.zeros((1, 0)),
    ...     Q=np.eye(2), R=np.eye(1), initial_state_mean=np.zeros(2),
    ...     initial_state_covariance=np.eye(2))
    >>> params.n_states, params.n_features, params.n_targets
    (2, 0, 1)
    >>> params.replace(R=2 * np.eye(1)).R
    array([[2.]])
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    initial_state_mean: np.ndarray
    initial_state_covariance: np.ndarray

    @property
    def n_states(self):
        """Dimension of the state ``s_t``."""
        return self.A.shape[0]

    @property
    def n_features(self):
        """Number of input columns ``x_t``."""
        return self.B.shape[1]

    @property
    def n_targets(self):
        """Number of measured outputs ``y_t``."""
        return self.C.shape[0]

    def replace(self, **changes):
        """Return a copy with the named matrices replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)
