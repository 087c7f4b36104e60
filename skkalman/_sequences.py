"""The one place that validates and splits ``X``, ``y`` and ``lengths``.

Convention (hmmlearn's): rows are time steps in order; several independent sequences are
concatenated and described by ``lengths``, with ``sum(lengths) == n_samples``;
``lengths=None`` means one sequence. NaN is allowed only in ``y``, where it marks a
missing measurement. Every estimator validates through :func:`validate_sequences` and
loops over :attr:`SequenceData.slices`; nothing else in the package checks these inputs.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_array

from ._sklearn_compat import validate_data

__all__ = ["SequenceData", "check_lengths", "restore_y_shape", "validate_sequences"]


def check_lengths(lengths, n_samples, *, min_length=1):
    """Validate ``lengths`` against ``n_samples`` rows and return it as an int array.

    Parameters
    ----------
    lengths : array-like of int or None
        Length of each sequence, in order. ``None`` means one sequence of ``n_samples``.
    n_samples : int
        Number of rows of the concatenated data.
    min_length : int, default=1
        Fewest rows a sequence may have for the calling method.

    Returns
    -------
    lengths : ndarray of shape (n_sequences,), dtype intp

    Examples
    --------
    >>> check_lengths([3, 2], 5)
    array([3, 2])
    >>> check_lengths(None, 4)
    array([4])
    >>> check_lengths([3, 3], 5)
    Traceback (most recent call last):
        ...
    ValueError: lengths sum to 6 but X has 5 rows; lengths must describe every row once.
    """
    if lengths is None:
        lengths = [n_samples]
    if isinstance(lengths, (str, bytes)) or np.isscalar(lengths):
        raise TypeError(
            f"lengths must be a sequence of ints (one per sequence), got {lengths!r}; "
            "use lengths=[n_samples] or None for a single sequence."
        )
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"lengths must be one-dimensional, got an array of shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError("lengths is empty; it needs one entry per sequence.")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer)
        or (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr)))
    ):
        raise TypeError(f"lengths must hold integers, got {arr.tolist()!r} (dtype {arr.dtype}).")
    arr = arr.astype(np.intp)
    bad = np.flatnonzero(arr < 1)
    if bad.size:
        raise ValueError(
            f"lengths must be positive, but lengths[{bad[0]}] = {arr[bad[0]]}; "
            "drop empty sequences from lengths."
        )
    total = int(arr.sum())
    if total != n_samples:
        raise ValueError(
            f"lengths sum to {total} but X has {n_samples} rows; "
            "lengths must describe every row once."
        )
    short = np.flatnonzero(arr < min_length)
    if short.size:
        i = short[0]
        raise ValueError(
            f"sequence {i} has n_samples = {arr[i]} rows but at least {min_length} per "
            "sequence are needed here; join it to a neighbour or drop it."
        )
    return arr


@dataclass(frozen=True)
class SequenceData:
    """Validated sequence data.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        Inputs, finite, float64. ``n_features`` may be zero.
    y : ndarray of shape (n_samples, n_targets) or None
        Measurements, float64, always two-dimensional; NaN marks a missing entry.
    lengths : ndarray of shape (n_sequences,)
    y_ndim : int or None
        ``y.ndim`` as the caller passed it (1 or 2), to shape outputs alike.
    """

    X: np.ndarray
    y: np.ndarray | None
    lengths: np.ndarray
    y_ndim: int | None = None

    @property
    def slices(self):
        """One ``slice`` of rows per sequence, in order."""
        ends = np.cumsum(self.lengths)
        return [slice(int(e - n), int(e)) for e, n in zip(ends, self.lengths, strict=True)]

    @property
    def n_sequences(self):
        return len(self.lengths)


def _check_y(y, n_samples):
    # allow-nan: NaN marks a missing measurement; infinity is still rejected here.
    y = check_array(
        y, ensure_2d=False, ensure_all_finite="allow-nan", dtype=np.float64, input_name="y",
        ensure_min_samples=0,
    )
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got an array of shape {y.shape}.")
    if y.shape[0] != n_samples:
        raise ValueError(
            f"y has {y.shape[0]} rows but X has {n_samples}; one row of y per time step."
        )
    y_ndim = y.ndim
    y2 = y.reshape(n_samples, -1)
    if y2.shape[1] == 0:
        raise ValueError("y has no columns; at least one target is needed.")
    return y2, y_ndim


def validate_sequences(
    estimator, X, y=None, lengths=None, *, reset, y_required=False, min_length=1,
    n_targets=None,
):
    """Validate ``X``, ``y`` and ``lengths`` for ``estimator`` and return them together.

    ``X`` goes through scikit-learn's ``validate_data`` (so ``n_features_in_`` and
    ``feature_names_in_`` are set on ``reset`` and checked otherwise); it must be finite and
    may have zero columns. ``y`` may hold NaN (missing measurements) but not infinity.

    Parameters
    ----------
    estimator : estimator instance
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets), default=None
    lengths : array-like of int, default=None
    reset : bool
        True in ``fit`` (records the number of features), False afterwards (checks it).
    y_required : bool, default=False
        Whether ``y`` must be given (and must hold at least one measurement).
    min_length : int, default=1
        Fewest rows per sequence the calling method accepts.
    n_targets : int, default=None
        When given, ``y`` must have this many columns (the number seen in ``fit``).

    Returns
    -------
    data : SequenceData

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator
    >>> data = validate_sequences(BaseEstimator(), np.zeros((5, 0)), np.arange(5.0),
    ...                           lengths=[3, 2], reset=True)
    >>> data.X.shape, data.y.shape, data.slices
    ((5, 0), (5, 1), [slice(0, 3, None), slice(3, 5, None)])
    """
    if y_required and y is None:
        # Worded as scikit-learn's own estimators word it (its common checks look for it).
        raise ValueError(
            f"{type(estimator).__name__} requires y to be passed, but the target y is None; "
            "y holds the measurements."
        )
    X = validate_data(
        estimator, X, reset=reset, dtype=np.float64, ensure_min_features=0,
        ensure_all_finite=True,
    )
    n_samples = X.shape[0]
    lengths = check_lengths(lengths, n_samples, min_length=min_length)
    if y is None:
        return SequenceData(X=X, y=None, lengths=lengths)
    y, y_ndim = _check_y(y, n_samples)
    if n_targets is not None and y.shape[1] != n_targets:
        raise ValueError(
            f"y has {y.shape[1]} targets but {type(estimator).__name__} was fitted "
            f"with {n_targets}."
        )
    if y_required:
        observed = ~np.isnan(y)
        if not observed.any():
            raise ValueError("y contains only NaN: there is no measurement to learn from.")
        empty = np.flatnonzero(~observed.any(axis=0))
        if empty.size:
            raise ValueError(
                f"column {empty[0]} of y contains only NaN: that target is never measured."
            )
    return SequenceData(X=X, y=y, lengths=lengths, y_ndim=y_ndim)


def restore_y_shape(values, y_ndim):
    """Shape per-row outputs of shape ``(n_samples, n_targets)`` like ``y`` was at fit.

    Examples
    --------
    >>> import numpy as np
    >>> restore_y_shape(np.ones((3, 1)), 1).shape
    (3,)
    """
    if y_ndim == 1:
        return values.reshape(values.shape[0])
    return values
