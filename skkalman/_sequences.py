"""The one place that validates and splits ``X``, ``y``, ``lengths`` and ``groups``.

Convention (hmmlearn's): rows are time steps in order; several independent sequences are
concatenated and described by ``lengths``, with ``sum(lengths) == n_samples``;
``lengths=None`` means one sequence. Alternatively ``groups`` gives one label per row,
contiguous rows with the same label forming one sequence; being sample-aligned, it is cut
with the rows by scikit-learn's splitters and metadata routing (``GroupKFold``). A label
may not come back after another one (that is a data-ordering mistake, not a new sequence).
NaN is allowed only in ``y``, where it marks a missing measurement. Every estimator
validates through :func:`validate_sequences` and loops over :attr:`SequenceData.slices`;
nothing else in the package checks these inputs.
"""

import numbers
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_array

from ._sklearn_compat import validate_data

__all__ = [
    "SequenceData",
    "check_lengths",
    "groups_to_lengths",
    "resolve_lengths",
    "restore_y_shape",
    "validate_sequences",
]


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
    # Integers beyond int64 arrive as an object array of Python ints: still integers, and
    # compared with n_samples exactly below before any cast.
    python_ints = arr.dtype == object and all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in arr)
    if not python_ints and (arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer)
        or (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr)))
    )):
        raise TypeError(f"lengths must hold integers, got {arr.tolist()!r} (dtype {arr.dtype}).")
    bad = np.flatnonzero(arr < 1)
    if bad.size:
        raise ValueError(
            f"lengths must be positive, but lengths[{bad[0]}] = {arr[bad[0]]}; "
            "drop empty sequences from lengths."
        )
    if arr.size <= n_samples and np.all(arr <= n_samples):
        total = int(arr.astype(np.intp).sum())  # exact: at most n_samples**2
    else:
        total = sum(int(v) for v in arr)  # in Python ints: int64 would wrap around
    if total != n_samples:
        raise ValueError(
            f"lengths sum to {total} but X has {n_samples} rows; "
            "lengths must describe every row once."
        )
    arr = arr.astype(np.intp)
    short = np.flatnonzero(arr < min_length)
    if short.size:
        i = short[0]
        raise ValueError(
            f"sequence {i} has n_samples = {arr[i]} rows but at least {min_length} per "
            "sequence are needed here; join it to a neighbour or drop it."
        )
    return arr


def _is_missing(label):
    return label is None or (isinstance(label, float) and label != label)


def groups_to_lengths(groups, n_samples):
    """The sequence lengths that per-row labels ``groups`` describe.

    Contiguous rows with the same label form one sequence. A label that comes back after
    another one is an error, not a second sequence: it means the rows are not ordered by
    sequence, and splitting them silently would fit a model of many short pieces.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        One hashable label per row (ints, strings...), e.g. a recording's id.
    n_samples : int
        Number of rows of ``X``.

    Returns
    -------
    lengths : ndarray of shape (n_sequences,), dtype intp

    Examples
    --------
    >>> groups_to_lengths(["a", "a", "a", "b", "b", 7], 6)
    array([3, 2, 1])
    >>> groups_to_lengths([1, 1, 2, 1], 4)
    Traceback (most recent call last):
        ...
    ValueError: groups label 1 labels rows 0 to 1 and again rows 3 to 3: the rows of a \
sequence must be contiguous. Order the rows by sequence (time order kept within each) or \
give each sequence its own label.
    """
    if isinstance(groups, (str, bytes)) or np.isscalar(groups):
        raise TypeError(f"groups must hold one label per row, got {groups!r}.")
    labels = np.asarray(groups)
    if labels.ndim != 1:
        raise ValueError("groups must be one-dimensional (one label per row), got an array "
                         f"of shape {labels.shape}.")
    if labels.shape[0] != n_samples:
        raise ValueError(f"groups has {labels.shape[0]} labels but X has {n_samples} rows; "
                         "give one label per row.")
    if labels.dtype.kind == "f" or labels.dtype == object:
        missing = [i for i, label in enumerate(labels.tolist()) if _is_missing(label)]
        if missing:
            raise ValueError(f"groups[{missing[0]}] is {labels.tolist()[missing[0]]!r}; every "
                             "row needs a sequence label.")
    starts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    bounds = np.concatenate([[0], starts, [n_samples]])
    first_run = {}
    for k, label in enumerate(labels[bounds[:-1]].tolist()):
        if label in first_run:
            j = first_run[label]
            raise ValueError(
                f"groups label {label!r} labels rows {bounds[j]} to {bounds[j + 1] - 1} and "
                f"again rows {bounds[k]} to {bounds[k + 1] - 1}: the rows of a sequence must "
                "be contiguous. Order the rows by sequence (time order kept within each) or "
                "give each sequence its own label."
            )
        first_run[label] = k
    return np.diff(bounds).astype(np.intp)


def resolve_lengths(lengths, groups, n_samples):
    """``lengths``, or the lengths that ``groups`` describe; never both.

    Parameters
    ----------
    lengths : array-like of int or None
    groups : array-like of shape (n_samples,) or None
    n_samples : int

    Returns
    -------
    lengths : array-like of int or None
        Unvalidated when it was given as ``lengths`` (see :func:`check_lengths`).

    Examples
    --------
    >>> resolve_lengths(None, [0, 0, 1], 3)
    array([2, 1])
    >>> resolve_lengths([2, 1], None, 3)
    [2, 1]
    """
    if groups is None:
        return lengths
    if lengths is not None:
        raise ValueError("give lengths or groups, not both: both describe the sequences "
                         "(lengths one entry per sequence, groups one label per row).")
    return groups_to_lengths(groups, n_samples)


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
    # allow-nan: NaN marks a missing measurement; infinity is still rejected here. Any
    # shape passes check_array, so that the shape errors below name y.
    y = check_array(
        y, ensure_2d=False, allow_nd=True, ensure_all_finite="allow-nan", dtype=np.float64,
        input_name="y", ensure_min_samples=0, ensure_min_features=0,
    )
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got an array of shape {y.shape}.")
    if y.ndim == 2 and y.shape[1] == 0:
        raise ValueError("y has no columns; at least one target is needed.")
    if y.shape[0] != n_samples:
        raise ValueError(
            f"y has {y.shape[0]} rows but X has {n_samples}; one row of y per time step."
        )
    return y.reshape(n_samples, -1), y.ndim


def validate_sequences(
    estimator, X, y=None, lengths=None, *, groups=None, reset, y_required=False,
    min_length=1, n_targets=None,
):
    """Validate ``X``, ``y`` and ``lengths`` (or ``groups``) and return them together.

    ``X`` goes through scikit-learn's ``validate_data`` (so ``n_features_in_`` and
    ``feature_names_in_`` are set on ``reset`` and checked otherwise); it must be finite and
    may have zero columns. ``y`` may hold NaN (missing measurements) but not infinity.

    Parameters
    ----------
    estimator : estimator instance
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_targets), default=None
    lengths : array-like of int, default=None
    groups : array-like of shape (n_samples,), default=None
        Per-row sequence labels, instead of ``lengths`` (see :func:`groups_to_lengths`).
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
    lengths = check_lengths(resolve_lengths(lengths, groups, n_samples), n_samples,
                            min_length=min_length)
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
