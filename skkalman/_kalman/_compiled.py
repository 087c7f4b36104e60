"""Compiled row-by-row loops: the Kalman filter, the RTS smoother, and the E-step's
moments of missing measurements.

The covariance recursion runs row by row: a missing entry changes a row's update, so a
covariance can be reused only across rows that share a missing pattern, once it has
converged (the steady state). Scattered missing entries leave no steady state to reuse,
and a row-by-row loop in Python (tens of microseconds a row for a few states) would
dominate; compiled, a row costs well under a microsecond, so the loop itself is the fast
path. Everything compiled lives in this one module because numba's on-disk cache is
invalidated only by changes to the file that defines a function, not to the files of the
functions it calls.

Every function here works in place on preallocated arrays (no allocation per row) and
reads only its arguments, so concurrent calls from threads are safe; ``nogil`` lets them
run in parallel. Scratch buffers are sized for the largest case and used in their leading
``k`` rows/columns.
"""

import math

import numpy as np
from numba import boolean, float64, int64, literally, njit, void

__all__ = ["complete_rows", "filter_rows", "smoother_rows"]

# Steady state: once a covariance has stopped changing (relative change at most
# STEADY_RTOL on STEADY_STREAK rows in a row) it is reused, while its inputs stay the same.
STEADY_RTOL = 1e-14
STEADY_STREAK = 5
# Jitter of a Cholesky factorization that fails by round-off: relative to the largest
# diagonal entry, from 1e-12 up by factors of 100 while below 1 (as ``_linalg``'s).
_JITTER_START = 1e-12
_LOG_2PI = math.log(2.0 * math.pi)


def _jit(*signature, inline="never"):
    """numba's nopython compilation, cached on disk, without the GIL.

    Helpers declare their signature: called with a counter that starts at a literal 0,
    numba would otherwise compile them once more for that literal (seconds of compile).
    The small helpers of the row loops are inlined (``inline="always"``): a call passes
    each array's shape and strides, which for a few states costs as much as the arithmetic
    (filter and smoother rows 15-20% faster).
    """
    return njit(*signature, cache=True, nogil=True, inline=inline)


_matrix = float64[:, ::1]
_vector = float64[::1]


@_jit(boolean(_matrix, _matrix, _vector, int64, float64))
def _cholesky_shifted(S, L, inverse_diagonal, k, shift):
    """Lower Cholesky factor of ``S[:k, :k] + shift I`` (lower triangle read) into ``L``,
    and the reciprocals of its diagonal (solves multiply by them: divisions are slow).

    Returns False where a pivot is not positive (or NaN), as LAPACK's ``dpotrf``.
    """
    for j in range(k):
        d = S[j, j] + shift
        for i in range(j):
            d -= L[j, i] * L[j, i]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        L[j, j] = d
        inverse = 1.0 / d
        inverse_diagonal[j] = inverse
        for i in range(j + 1, k):
            s = S[i, j]
            for l in range(j):
                s -= L[i, l] * L[j, l]
            L[i, j] = s * inverse
    return True


@_jit(boolean(_matrix, _matrix, _vector, int64))
def _cholesky_psd(S, L, inverse_diagonal, k):
    """Lower Cholesky factor of the symmetric PSD ``S[:k, :k]``, jittered only if needed.

    A covariance that is PSD in exact arithmetic can fail by round-off; the smallest
    relative jitter that makes it factor is added. Returns False if none does.
    """
    if _cholesky_shifted(S, L, inverse_diagonal, k, 0.0):
        return True
    scale = np.finfo(np.float64).tiny
    for i in range(k):
        scale = max(scale, abs(S[i, i]))
    eps = _JITTER_START
    while eps < 1.0:
        if _cholesky_shifted(S, L, inverse_diagonal, k, eps * scale):
            return True
        eps *= 100.0
    return False


@_jit(void(_matrix, _vector, _matrix, int64, int64), inline="always")
def _cho_solve(L, inverse_diagonal, M, k, n_columns):
    """Overwrite ``M[:k, :n_columns]`` with ``S^{-1} M`` given ``S = L L^T`` (solved, never
    inverted). Row by row, all columns at once: the columns' updates are independent, so
    none waits on the previous one's sum."""
    for i in range(k):
        for l in range(i):
            a = L[i, l]
            for c in range(n_columns):
                M[i, c] -= a * M[l, c]
        d = inverse_diagonal[i]
        for c in range(n_columns):
            M[i, c] *= d
    for i in range(k - 1, -1, -1):
        for l in range(i + 1, k):
            a = L[l, i]
            for c in range(n_columns):
                M[i, c] -= a * M[l, c]
        d = inverse_diagonal[i]
        for c in range(n_columns):
            M[i, c] *= d


@_jit(float64(_matrix, int64))
def _log_determinant(L, k):
    """``log det(L L^T)``: one logarithm of the product of the diagonal, unless that
    product leaves the floating-point range (then one per entry)."""
    product = 1.0
    for i in range(k):
        product *= L[i, i]
    if 0.0 < product < np.inf:
        return 2.0 * math.log(product)
    total = 0.0
    for i in range(k):
        total += 2.0 * math.log(L[i, i])
    return total


@_jit(void(_matrix, _matrix, _matrix, int64, int64, int64, boolean), inline="always")
def _product(M, P, out, rows, inner, columns, accumulate):
    """``out = M @ P`` (or ``out += M @ P`` if ``accumulate``) on ``M[:rows, :inner]`` and
    ``P[:inner, :columns]``.

    Four columns at a time, each with its own sum: a single running sum would make every
    multiply-add wait for the previous one, which for a few states costs more than the
    arithmetic. ``out`` must not share memory with ``M`` or ``P``.
    """
    for i in range(rows):
        j = 0
        while j + 4 <= columns:
            if accumulate:
                s0, s1, s2, s3 = out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3]
            else:
                s0 = s1 = s2 = s3 = 0.0
            for l in range(inner):
                a = M[i, l]
                s0 += a * P[l, j]
                s1 += a * P[l, j + 1]
                s2 += a * P[l, j + 2]
                s3 += a * P[l, j + 3]
            out[i, j] = s0
            out[i, j + 1] = s1
            out[i, j + 2] = s2
            out[i, j + 3] = s3
            j += 4
        while j < columns:
            s = out[i, j] if accumulate else 0.0
            for l in range(inner):
                s += M[i, l] * P[l, j]
            out[i, j] = s
            j += 1


@_jit(void(_matrix, _matrix, int64, int64), inline="always")
def _transpose(M, out, rows, columns):
    """``out[:columns, :rows] = M[:rows, :columns]^T``."""
    for i in range(rows):
        for j in range(columns):
            out[j, i] = M[i, j]


@_jit(void(_matrix, int64), inline="always")
def _mirror_lower(out, n):
    """Copy the lower triangle of ``out[:n, :n]`` onto its upper: exactly symmetric, as a
    covariance must be (round-off drift from symmetry compounds over long sequences)."""
    for i in range(n):
        for j in range(i):
            out[j, i] = out[i, j]


@_jit(_matrix(_matrix, int64))
def _symmetric_part(M, n):
    """``(M + M^T) / 2``."""
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = 0.5 * (M[i, j] + M[j, i])
    return out


@_jit(boolean(_matrix, _matrix, int64))
def _steady_change(P_new, P_old, n):
    """Whether ``P_new`` differs from ``P_old`` by at most STEADY_RTOL relative."""
    change = 0.0
    scale = 0.0
    for i in range(n):
        for j in range(n):
            change = max(change, abs(P_new[i, j] - P_old[i, j]))
            scale = max(scale, abs(P_new[i, j]))
    return change <= STEADY_RTOL * scale


@_jit(boolean(_matrix, _matrix, int64))
def _equal(P, P_other, n):
    """Whether ``P`` and ``P_other`` are the same, entry for entry."""
    for i in range(n):
        for j in range(n):
            if P[i, j] != P_other[i, j]:
                return False
    return True


# The smoother computes the gains of up to this many rows at once: they depend on the
# filter's moments alone, so the rows are independent and their arithmetic interleaves
# (one row's factorization is a chain of dependent square roots and divisions).
_GAIN_BLOCK = 32
# A pivot of the backward conditional covariance below this fraction of its diagonal
# entry has lost more digits to cancellation in the Schur complement than the old form
# (I - G A) P_f (I - G A)^T + G Q G^T would: the row takes that form instead.
_CANCELLATION = 1e-6
_TINY = np.finfo(np.float64).tiny
_block = float64[:, :, ::1]


@_jit(void(_matrix, _block, _block, int64[::1], int64, int64, _block, _block, _block, _block,
           boolean[::1], _vector, _vector, _vector))
def _backward_gains(A, P_p, P_f, rows, count, n, J, L, Gt, Sigma, ok, d, v, factored):
    """The smoother's gain and conditional covariance at ``count`` rows, side by side.

    For row ``r = rows[b]``, the joint covariance of ``(s_{r+1}, s_r)`` given ``y_1..r``,
    ``[[P_p, A P_f], [P_f A^T, P_f]]``, factors as ``[[L11, 0], [L21, L22]]``: ``L11 L11^T
    = P_p[r+1]``, the gain's transpose ``G^T = P_p^{-1} A P_f = L11^{-T} L21^T`` into
    ``Gt[:, :, b]``, and ``L22 L22^T = P_f - G A P_f``, the covariance of ``s_r`` given
    ``s_{r+1}`` (PSD by construction), into the lower triangle of ``Sigma[:, :, b]``.
    ``ok[b]`` is False where ``P_p[r+1]`` does not factor without jitter, or where a pivot
    of the second block is below ``_CANCELLATION`` of its diagonal entry (a nearly
    deterministic direction, e.g. a singular Q, where the subtraction loses digits): ``Gt``
    and ``Sigma`` there are not to be used. The row index is the last axis of every
    scratch array, so each step runs over the rows in the innermost loop.
    """
    k = 2 * n
    for b in range(count):
        r = rows[b]
        factored[b] = 1.0  # 0.0 once a pivot fails its test (or is NaN)
        for i in range(n):
            for j in range(i + 1):
                J[i, j, b] = P_p[r + 1, i, j]
            for j in range(n):
                J[n + i, n + j, b] = P_f[r, i, j]
    for i in range(n):  # J[n + i, j] = (A P_f)[j, i]
        for j in range(n):
            for b in range(count):
                J[n + i, j, b] = 0.0
            for l in range(n):
                a = A[j, l]
                for b in range(count):
                    J[n + i, j, b] += a * J[n + l, n + i, b]
    for j in range(k):
        for b in range(count):
            d[b] = J[j, j, b]
        for i in range(j):
            for b in range(count):
                d[b] -= L[j, i, b] * L[j, i, b]
        for b in range(count):
            pivot = d[b]
            factored[b] *= pivot > (0.0 if j < n else _CANCELLATION * J[j, j, b])
            x = 1.0 / math.sqrt(max(pivot, _TINY))  # (finite in a row that failed)
            v[b] = x
            L[j, j, b] = pivot * x
        for i in range(j + 1, k):
            for b in range(count):
                L[i, j, b] = J[i, j, b]
            for l in range(j):
                for b in range(count):
                    L[i, j, b] -= L[i, l, b] * L[j, l, b]
            for b in range(count):
                L[i, j, b] *= v[b]
        if j < n:
            for b in range(count):
                J[j, j, b] = v[b]  # 1 / L11[j, j], for the solve below
    for b in range(count):
        ok[b] = factored[b] > 0.0
    # G^T = L11^{-T} L21^T: back substitution, all columns at once.
    for i in range(n - 1, -1, -1):
        for c in range(n):
            for b in range(count):
                Gt[i, c, b] = L[n + c, i, b]
            for l in range(i + 1, n):
                for b in range(count):
                    Gt[i, c, b] -= L[l, i, b] * Gt[l, c, b]
            for b in range(count):
                Gt[i, c, b] *= J[i, i, b]
    for i in range(n):
        for j in range(i + 1):
            for b in range(count):
                Sigma[i, j, b] = 0.0
            for l in range(j + 1):
                for b in range(count):
                    Sigma[i, j, b] += L[n + i, n + l, b] * L[n + j, n + l, b]


@_jit(boolean(boolean, int64, int64, _block, _block, int64), inline="always")
def _same_gain(steady, t, T, P_p, P_f, n):
    """Whether row ``t``'s smoother gain is row ``t + 1``'s: the filter's covariances
    repeat exactly there (its steady state)."""
    return (steady and t < T - 2 and _equal(P_f[t], P_f[t + 1], n)
            and _equal(P_p[t + 1], P_p[t + 2], n))


# Long sequences with missing entries run a copy of the filter compiled for their number
# of states (up to this many): with the loop bounds known, the compiler unrolls and
# vectorizes the covariance recursion, which such data run on most rows (measured: 4
# states, T = 1e6, 10% missing, 188-195 ms against 290-305 ms for the general copy before
# this copy and the Joseph update below). Each new size costs one compilation
# (about 10 s, cached on disk), so only sequences this long take it.
FIXED_SIZE_STATES = 8
FIXED_SIZE_ROWS = 50_000


def filter_rows(A, B, C, D, Q, R, m0, P0, X, y, steady, m_p, P_p, m_f, P_f):
    """Moments of p(s_t | x_1..t, y_1..t-1) and p(s_t | x_1..t, y_1..t) into ``m_p, P_p,
    m_f, P_f`` (each of ``T`` rows), and log p(y | x).

    A NaN entry of ``y`` is missing: the row is updated on its observed entries, and a row
    with none is not updated. ``steady``: reuse the covariances and gain once the
    predicted covariance has converged, for the rest of a run of rows that share a missing
    pattern. Returns ``(log_likelihood, failed_row)``; ``failed_row`` is -1, or the row
    whose innovation covariance could not be factored. The same arithmetic whichever
    compiled copy runs (``FIXED_SIZE_STATES``).
    """
    n = A.shape[0]
    # (A sum is NaN where an entry is: the cheapest look at a million rows.)
    if (n <= FIXED_SIZE_STATES and y.shape[0] >= FIXED_SIZE_ROWS
            and math.isnan(np.sum(y))):
        return _filter_fixed_size(n, A, B, C, D, Q, R, m0, P0, X, y, steady,
                                  m_p, P_p, m_f, P_f)
    return _filter_any_size(A, B, C, D, Q, R, m0, P0, X, y, steady, m_p, P_p, m_f, P_f)


@_jit()
def _filter_any_size(A, B, C, D, Q, R, m0, P0, X, y, steady, m_p, P_p, m_f, P_f):
    return _filter_body(A.shape[0], A, B, C, D, Q, R, m0, P0, X, y, steady,
                        m_p, P_p, m_f, P_f)


@_jit()
def _filter_fixed_size(n, A, B, C, D, Q, R, m0, P0, X, y, steady, m_p, P_p, m_f, P_f):
    literally(n)  # compiled once for each value of n
    return _filter_body(n, A, B, C, D, Q, R, m0, P0, X, y, steady, m_p, P_p, m_f, P_f)


@_jit()
def _filter_body(n, A, B, C, D, Q, R, m0, P0, X, y, steady, m_p, P_p, m_f, P_f):
    """:func:`filter_rows` for ``n`` states (a compile-time constant where it is literal)."""
    T = m_p.shape[0]
    m = C.shape[0]
    p = X.shape[1]
    observed = np.empty(m, dtype=np.int64)  # indices of the row's observed entries
    CP = np.empty((m, n))  # C_o P
    Kt = np.empty((m, n))  # the gain, transposed: K^T = S^{-1} C_o P
    S = np.empty((m, m))
    L = np.empty((m, m))
    inverse_diagonal = np.empty(m)
    E = np.empty((n, m))
    W = np.empty((n, n))
    v = np.empty(m)
    Co = np.empty((m, n))  # the observed rows of C, and R_oo: gathered at a pattern change
    Roo = np.empty((m, m))
    Q_sym = _symmetric_part(Q, n)
    log_likelihood = 0.0
    logdet = 0.0
    streak = 0
    frozen = False
    for t in range(T):
        k = 0
        same_pattern = t > 0
        for j in range(m):
            is_observed = not math.isnan(y[t, j])
            if t > 0 and is_observed == math.isnan(y[t - 1, j]):
                same_pattern = False
            if is_observed:
                observed[k] = j
                k += 1
        if not same_pattern:
            frozen = False
            streak = 0
            for a in range(k):
                for l in range(n):
                    Co[a, l] = C[observed[a], l]
                for b in range(k):
                    Roo[a, b] = R[observed[a], observed[b]]

        # Prediction. At the first row the prior stands for A m_f[-1] + B x_0.
        if t == 0:
            m_p[0] = m0
            P_p[0] = P0
        else:
            for i in range(n):
                s = 0.0
                for j in range(n):
                    s += A[i, j] * m_f[t - 1, j]
                for j in range(p):
                    s += B[i, j] * X[t, j]
                m_p[t, i] = s
            if frozen:
                P_p[t] = P_p[t - 1]
            else:
                P_new = P_p[t]
                _product(A, P_f[t - 1], W, n, n, n, False)
                for i in range(n):
                    for j in range(i + 1):
                        s = Q_sym[i, j]
                        for l in range(n):
                            s += W[i, l] * A[j, l]
                        P_new[i, j] = s
                _mirror_lower(P_new, n)
                if steady and same_pattern:
                    streak = streak + 1 if _steady_change(P_new, P_p[t - 1], n) else 0

        if k == 0:  # nothing measured: no update
            m_f[t] = m_p[t]
            P_f[t] = P_p[t]
        else:
            if frozen:
                P_f[t] = P_f[t - 1]  # and the gain in Kt, L, logdet is row t-1's
            else:
                # Innovation covariance S = C_o P C_o^T + R_oo, and the gain K^T = S^{-1} C_o P.
                P = P_p[t]
                for a in range(k):
                    for j in range(n):
                        s = 0.0
                        for l in range(n):
                            s += Co[a, l] * P[l, j]
                        CP[a, j] = s
                        Kt[a, j] = s
                for a in range(k):
                    for b in range(a + 1):
                        s = Roo[a, b]
                        for l in range(n):
                            s += CP[a, l] * Co[b, l]
                        S[a, b] = s
                        S[b, a] = s
                if not _cholesky_psd(S, L, inverse_diagonal, k):
                    return log_likelihood, t
                logdet = _log_determinant(L, k)
                _cho_solve(L, inverse_diagonal, Kt, k, n)
                # Joseph form, (I - K C) P (I - K C)^T + K R K^T, correct for any gain (an
                # error in the gain changes it only to second order). Expanded, it is
                # P - K C P + E K^T with E = K S - P C^T, the residual of the gain's
                # equation K S = P C^T, which is zero but for round-off: O(n k^2) for E and
                # O(n^2 k) for the lower triangle.
                for i in range(n):
                    for b in range(k):
                        s = -CP[b, i]
                        for a in range(k):
                            s += Kt[a, i] * S[a, b]
                        E[i, b] = s
                P_new = P_f[t]
                for i in range(n):
                    for j in range(i + 1):
                        s = P[i, j]
                        for a in range(k):
                            s += E[i, a] * Kt[a, j] - Kt[a, i] * CP[a, j]
                        P_new[i, j] = s
                _mirror_lower(P_new, n)
            # Mean update on the innovation v = y_o - D_o x - C_o m_p, and its likelihood
            # through the whitened innovation L^{-1} v.
            for a in range(k):
                j = observed[a]
                s = y[t, j]
                for l in range(p):
                    s -= D[j, l] * X[t, l]
                for l in range(n):
                    s -= C[j, l] * m_p[t, l]
                v[a] = s
            for i in range(n):
                s = m_p[t, i]
                for a in range(k):
                    s += Kt[a, i] * v[a]
                m_f[t, i] = s
            quadratic = 0.0
            for a in range(k):
                s = v[a]
                for b in range(a):
                    s -= L[a, b] * v[b]
                v[a] = s * inverse_diagonal[a]
                quadratic += v[a] * v[a]
            log_likelihood -= 0.5 * (k * _LOG_2PI + logdet + quadratic)
        if streak >= STEADY_STREAK:
            frozen = True
    return log_likelihood, -1


@_jit()
def smoother_rows(A, Q, m_p, P_p, m_f, P_f, steady, m_s, P_s, P_lag):
    """Moments of p(s_t | x_1..T, y_1..T) into ``m_s, P_s`` and Cov(s_t, s_{t-1} | all)
    into ``P_lag`` (row 0 zeros), from the filter's moments, backward.

    Each row needs the gain ``G = P_f A^T P_p^{-1}`` and the covariance of ``s_t`` given
    ``s_{t+1}`` and ``y_1..t``, ``Sigma = P_f - G A P_f``: both from the filter's moments
    alone, so they are computed for blocks of rows at once (``_backward_gains``). Then
    ``P_s[t] = Sigma + G P_s[t+1] G^T``, a sum of PSD terms (it stays PSD under round-off),
    and ``Cov(s_{t+1}, s_t | all) = P_s[t+1] G^T``. ``steady``: where the filter's
    covariances repeat exactly (its steady state) ``G`` and ``Sigma`` repeat too, and the
    smoothed covariance is reused once it has converged. Returns -1, or the row whose
    predicted covariance could not be factored.
    """
    T, n = m_f.shape
    Gt = np.empty((n, n))  # the gain, transposed: G^T = P_p^{-1} A P_f
    Sigma = np.empty((n, n))  # Cov(s_t | s_{t+1}, y_1..t), lower triangle
    # The block of rows whose gains are computed: rows[slot:count] are still to come.
    rows = np.empty(_GAIN_BLOCK, dtype=np.int64)
    J = np.empty((2 * n, 2 * n, _GAIN_BLOCK))
    LJ = np.empty((2 * n, 2 * n, _GAIN_BLOCK))
    Gt_block = np.empty((n, n, _GAIN_BLOCK))
    Sigma_block = np.empty((n, n, _GAIN_BLOCK))
    ok = np.empty(_GAIN_BLOCK, dtype=np.bool_)
    d_block = np.empty(_GAIN_BLOCK)
    v_block = np.empty(_GAIN_BLOCK)
    factored = np.empty(_GAIN_BLOCK)
    count = slot = 0
    scan_low = T - 1  # rows from here up have been looked at
    # The fallback, where P_p needs jitter to factor or Sigma is nearly singular.
    G = np.empty((n, n))
    L = np.empty((n, n))
    inverse_diagonal = np.empty(n)
    IGA = np.empty((n, n))  # I - G A
    IGAt = np.empty((n, n))
    W = np.empty((n, n))
    V = np.empty((n, n))
    Q_sym = _symmetric_part(Q, n)
    d = np.empty(n)
    if T == 0:
        return -1
    m_s[T - 1] = m_f[T - 1]
    P_s[T - 1] = P_f[T - 1]
    P_lag[0] = 0.0
    streak = 0
    frozen_rows = 0  # rows since the smoothed covariance was frozen
    for t in range(T - 2, -1, -1):
        if t < scan_low:
            # Look ahead (down) for the rows whose gains change, and compute theirs.
            count = slot = 0
            r = t
            while r >= 0 and count < _GAIN_BLOCK and r > t - 4 * _GAIN_BLOCK:
                if not _same_gain(steady, r, T, P_p, P_f, n):
                    rows[count] = r
                    count += 1
                r -= 1
            scan_low = r + 1
            if count > 0:
                _backward_gains(A, P_p, P_f, rows, count, n, J, LJ, Gt_block, Sigma_block,
                                ok, d_block, v_block, factored)
        same_gain = not (slot < count and rows[slot] == t)
        if not same_gain:
            streak = 0
            frozen_rows = 0
            if ok[slot]:
                for i in range(n):
                    for j in range(n):
                        Gt[i, j] = Gt_block[i, j, slot]
                    for j in range(i + 1):
                        Sigma[i, j] = Sigma_block[i, j, slot]
            else:
                # P_p needs jitter to factor, or Sigma is nearly singular: G from the
                # (jittered) factor, and Sigma as (I - G A) P_f (I - G A)^T + G Q G^T,
                # PSD for any gain and free of the Schur complement's cancellation.
                if not _cholesky_psd(P_p[t + 1], L, inverse_diagonal, n):
                    return t + 1
                _product(A, P_f[t], Gt, n, n, n, False)
                _cho_solve(L, inverse_diagonal, Gt, n, n)
                _transpose(Gt, G, n, n)
                _product(G, A, IGA, n, n, n, False)
                for i in range(n):
                    for j in range(n):
                        IGA[i, j] = (1.0 if i == j else 0.0) - IGA[i, j]
                _transpose(IGA, IGAt, n, n)
                _product(IGA, P_f[t], W, n, n, n, False)
                _product(G, Q_sym, V, n, n, n, False)
                _product(W, IGAt, Sigma, n, n, n, False)
                _product(V, Gt, Sigma, n, n, n, True)
            slot += 1
        P_next = P_s[t + 1]
        if frozen_rows > 0:
            P_s[t] = P_next
            if frozen_rows == 1:
                _product(P_next, Gt, P_lag[t + 1], n, n, n, False)
            else:
                P_lag[t + 1] = P_lag[t + 2]
            frozen_rows += 1
        else:
            # Cov(s_{t+1}, s_t) = P_s[t+1] G^T, and P_s[t] = Sigma + G P_s[t+1] G^T.
            C_lag = P_lag[t + 1]
            _product(P_next, Gt, C_lag, n, n, n, False)
            P_new = P_s[t]
            for i in range(n):
                for j in range(i + 1):
                    s = Sigma[i, j]
                    for l in range(n):
                        s += Gt[l, i] * C_lag[l, j]
                    P_new[i, j] = s
            _mirror_lower(P_new, n)
            if same_gain:
                streak = streak + 1 if _steady_change(P_new, P_next, n) else 0
                if streak >= STEADY_STREAK:
                    frozen_rows = 1
        # m_s[t] = m_f[t] + G (m_s[t+1] - m_p[t+1])
        for i in range(n):
            d[i] = m_s[t + 1, i] - m_p[t + 1, i]
        for i in range(n):
            s = m_f[t, i]
            for l in range(n):
                s += Gt[l, i] * d[l]
            m_s[t, i] = s
    return -1


@_jit()
def complete_rows(C, D, R, X, y, means, covariances, y_hat, cov_ys, cov_yy):
    """Moments of the missing entries of ``y`` given the observed ones and the smoothed
    states: ``E[y_t]`` into the missing entries of ``y_hat`` (a copy of ``y``), and the
    sums over rows of ``Cov(y_t, s_t)`` and ``Cov(y_t)`` added to ``cov_ys`` and the lower
    triangle of ``cov_yy``.

    With ``G = R_uo R_oo^{-1}`` (missing ``u`` on observed ``o``, their noises correlated
    through R), ``y_u | s_t, y_o ~ N(C_u s_t + D_u x_t + G (y_o - C_o s_t - D_o x_t),
    R_uu - G R_ou)``. Returns -1, or the row whose ``R_oo`` could not be factored.
    """
    T, n = means.shape
    m = C.shape[0]
    p = X.shape[1]
    observed = np.empty(m, dtype=np.int64)
    unobserved = np.empty(m, dtype=np.int64)
    previous = np.zeros(m, dtype=np.bool_)  # missing pattern whose G, H, R_cond are held
    have_previous = False
    S = np.empty((m, m))
    L = np.empty((m, m))
    inverse_diagonal = np.empty(m)
    Gt = np.empty((m, m))  # G^T = R_oo^{-1} R_ou, (k, m - k)
    H = np.empty((m, n))  # C_u - G C_o
    R_cond = np.empty((m, m))
    HP = np.empty((m, n))
    r = np.empty(m)
    for t in range(T):
        k = 0
        q = 0
        same = have_previous
        for j in range(m):
            is_missing = math.isnan(y[t, j])
            if is_missing != previous[j]:
                same = False
            if is_missing:
                unobserved[q] = j
                q += 1
            else:
                observed[k] = j
                k += 1
        if q == 0:
            continue
        if not same:
            for j in range(m):
                previous[j] = math.isnan(y[t, j])
            have_previous = True
            for a in range(k):
                for b in range(a + 1):
                    S[a, b] = R[observed[a], observed[b]]
                for b in range(q):
                    Gt[a, b] = R[observed[a], unobserved[b]]
            if k > 0:
                if not _cholesky_psd(S, L, inverse_diagonal, k):
                    return t
                _cho_solve(L, inverse_diagonal, Gt, k, q)
            for a in range(q):
                for l in range(n):
                    s = C[unobserved[a], l]
                    for b in range(k):
                        s -= Gt[b, a] * C[observed[b], l]
                    H[a, l] = s
                for c in range(a + 1):
                    s = R[unobserved[a], unobserved[c]]
                    for b in range(k):
                        s -= Gt[b, a] * R[observed[b], unobserved[c]]
                    R_cond[a, c] = s
        # The observed entries' residuals r = y_o - D_o x, then the missing entries' mean.
        for b in range(k):
            s = y[t, observed[b]]
            for l in range(p):
                s -= D[observed[b], l] * X[t, l]
            r[b] = s
        for a in range(q):
            j = unobserved[a]
            s = 0.0
            for l in range(n):
                s += H[a, l] * means[t, l]
            for l in range(p):
                s += D[j, l] * X[t, l]
            for b in range(k):
                s += Gt[b, a] * r[b]
            y_hat[t, j] = s
        P = covariances[t]
        for a in range(q):
            for l in range(n):
                s = 0.0
                for i in range(n):
                    s += H[a, i] * P[i, l]
                HP[a, l] = s
                cov_ys[unobserved[a], l] += s
        for a in range(q):
            for c in range(a + 1):
                s = R_cond[a, c]
                for l in range(n):
                    s += HP[a, l] * H[c, l]
                cov_yy[unobserved[a], unobserved[c]] += s
    return -1
