"""Training windows with carried states, and whole sequences for validation.

Pure NumPy, in the data's float64: the estimator casts them to the network's dtype.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Windows", "make_windows", "split_rows", "whole_sequences"]


def split_rows(lengths, validation_fraction):
    """Rows held out for validation: the **end** of every sequence, in time order.

    Parameters
    ----------
    lengths : ndarray of shape (n_sequences,)
    validation_fraction : float in [0, 1)

    Returns
    -------
    n_train : ndarray of shape (n_sequences,)
        How many leading rows of each sequence are for training; the rest validate.

    Examples
    --------
    >>> split_rows(np.array([10, 4]), 0.2)
    array([8, 4])
    """
    return lengths - np.floor(validation_fraction * lengths).astype(lengths.dtype)


@dataclass(frozen=True)
class Windows:
    """Consecutive windows of training rows, and how they chain.

    Attributes
    ----------
    X : ndarray of shape (n_windows, window_length, n_features)
    y : ndarray of shape (n_windows, window_length, n_targets)
        NaN where a target is missing or the window is padded.
    previous : ndarray of shape (n_windows,), int
        Index of the window just before each one in its sequence; -1 for a sequence's
        first window, which starts from the zero state.
    last : ndarray of shape (n_windows,), int
        Index, within each window, of its last real row (the rest is padding).
    """

    X: np.ndarray
    y: np.ndarray
    previous: np.ndarray
    last: np.ndarray


def make_windows(X, y, lengths, n_train, window_length=None):
    """Cut the first ``n_train`` rows of every sequence into consecutive windows.

    Window ``j`` of a sequence covers rows ``[j L, (j + 1) L)``; it is meant to start from
    the state that the previous window ends in (see :class:`Windows`), so the windows
    together run each sequence without a gap. The last window of a sequence is padded
    with zero inputs and NaN targets, which a causal network's earlier steps never see.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples, n_targets)
    lengths : ndarray of shape (n_sequences,)
    n_train : ndarray of shape (n_sequences,)
        Leading rows of each sequence to cover; a sequence with 0 gets no window.
    window_length : int, default=None
        ``L``; None covers each sequence's rows with one window.

    Returns
    -------
    windows : Windows

    Examples
    --------
    >>> X = np.arange(5.0)[:, None]
    >>> w = make_windows(X, X, np.array([5]), np.array([5]), window_length=2)
    >>> w.X[..., 0], w.previous, w.last
    (array([[0., 1.],
           [2., 3.],
           [4., 0.]]), array([-1,  0,  1]), array([1, 1, 0]))
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    L = int(window_length or max(int(np.max(n_train)), 1))
    starts, stops, previous = [], [], []
    for offset, n in zip(offsets, n_train, strict=True):
        s = offset + np.arange(0, n, L)
        starts.append(s)
        stops.append(np.minimum(s + L, offset + n))
        first = sum(part.size for part in previous)
        previous.append(np.where(np.arange(s.size) == 0, -1, first + np.arange(s.size) - 1))
    starts, stops, previous = (np.concatenate(v).astype(np.intp) for v in
                               (starts, stops, previous))
    rows = starts[:, None] + np.arange(L)
    inside = rows < stops[:, None]
    rows = np.where(inside, rows, 0)
    X_windows = np.where(inside[..., None], X[rows], 0.0)
    y_windows = np.where(inside[..., None], y[rows], np.nan)
    return Windows(X=X_windows, y=y_windows, previous=previous, last=stops - starts - 1)


def whole_sequences(X, y, lengths, counted_from):
    """Every sequence from its first row, padded to the longest; loss only from a row on.

    For validation: each sequence runs from the zero state through its training rows,
    whose targets are hidden (NaN), into the held-out rows that count.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples, n_targets)
    lengths : ndarray of shape (n_sequences,)
    counted_from : ndarray of shape (n_sequences,)
        First row (within its sequence) whose target counts.

    Returns
    -------
    X_seq : ndarray of shape (n_sequences, max(lengths), n_features)
    y_seq : ndarray of shape (n_sequences, max(lengths), n_targets)

    Examples
    --------
    >>> X = np.arange(5.0)[:, None]
    >>> _, y_seq = whole_sequences(X, X, np.array([3, 2]), np.array([2, 1]))
    >>> y_seq[..., 0]
    array([[nan, nan,  2.],
           [nan,  4., nan]])
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    steps = np.arange(int(np.max(lengths)))
    inside = steps < lengths[:, None]
    rows = np.where(inside, offsets[:, None] + steps, 0)
    counted = inside & (steps >= counted_from[:, None])
    X_seq = np.where(inside[..., None], X[rows], 0.0)
    y_seq = np.where(counted[..., None], y[rows], np.nan)
    return X_seq, y_seq
