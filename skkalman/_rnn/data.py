"""Cutting sequences into training windows, and the time-ordered validation split.

Pure NumPy: the estimator hands these arrays to skorch.
"""

import numpy as np

__all__ = ["make_windows", "split_rows"]


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


def make_windows(X, y, lengths, starts, stops, *, bptt, warm_up):
    """Windows of ``warm_up + bptt`` rows whose loss counts only on the last ``bptt``.

    For every sequence, the rows ``[start, stop)`` are covered by consecutive blocks of
    ``bptt`` rows. Each block is preceded by up to ``warm_up`` earlier rows of the same
    sequence (fewer at its beginning, where the state truly starts from zero) so that the
    block does not start from a zero state; the targets outside the block are set to NaN,
    which the loss ignores. Windows are padded at the end with zero inputs and NaN
    targets, which cannot affect earlier steps of a causal network.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples, n_targets)
    lengths : ndarray of shape (n_sequences,)
    starts, stops : ndarray of shape (n_sequences,)
        The rows ``[start, stop)`` of each sequence (indices within the sequence) whose
        targets the windows count.
    bptt, warm_up : int

    Returns
    -------
    X_windows : ndarray of shape (n_windows, window_length, n_features), float32
    y_windows : ndarray of shape (n_windows, window_length, n_targets), float32

    Examples
    --------
    >>> X = np.arange(5.0)[:, None]
    >>> Xw, yw = make_windows(X, X, np.array([5]), np.array([0]), np.array([5]),
    ...                       bptt=2, warm_up=1)
    >>> Xw[..., 0]
    array([[0., 1., 2.],
           [1., 2., 3.],
           [3., 4., 0.]], dtype=float32)
    >>> yw[..., 0]
    array([[ 0.,  1., nan],
           [nan,  2.,  3.],
           [nan,  4., nan]], dtype=float32)
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    block_starts, block_stops, window_starts, seq_ends = [], [], [], []
    for offset, n, lo, hi in zip(offsets, lengths, starts, stops, strict=True):
        s = np.arange(lo, hi, bptt)
        block_starts.append(offset + s)
        block_stops.append(offset + np.minimum(s + bptt, hi))
        window_starts.append(offset + np.maximum(s - warm_up, 0))
        seq_ends.append(np.full(s.size, offset + n))
    n_features, n_targets = X.shape[1], y.shape[1]
    if not block_starts or sum(b.size for b in block_starts) == 0:
        return (np.zeros((0, 1, n_features), np.float32),
                np.zeros((0, 1, n_targets), np.float32))
    s, e, a, end = (np.concatenate(v) for v in
                    (block_starts, block_stops, window_starts, seq_ends))
    length = int(min(warm_up + bptt, lengths.max()))
    rows = a[:, None] + np.arange(length)
    inside = rows < end[:, None]
    counted = inside & (rows >= s[:, None]) & (rows < e[:, None])
    rows = np.where(inside, rows, 0)
    X_windows = np.where(inside[..., None], X[rows], 0.0).astype(np.float32)
    y_windows = np.where(counted[..., None], y[rows], np.nan).astype(np.float32)
    return X_windows, y_windows
