"""The record of one maximization: accepted iterates, iterations run, and why it stopped.

Modelled on hmmlearn's ``ConvergenceMonitor``. The fitter reports every iteration here; the
monitor keeps the log-likelihood of each *accepted* iterate (so the history never
decreases), counts every iteration against the budget, and holds the verdict: converged
only when the search certified a stationary point, otherwise the reason it stopped, which
the estimator turns into a :class:`~sklearn.exceptions.ConvergenceWarning`.
"""

import numpy as np

__all__ = ["ConvergenceMonitor"]


class ConvergenceMonitor:
    """Iteration budget, log-likelihood history and convergence verdict of one fit.

    Parameters
    ----------
    n_iter : int
        Most iterations, every stage together.
    offset : float, default=0.0
        Added to every recorded value (the log-Jacobian of a change of units, so that
        the history is in the user's units).
    verbose : int, default=0
        When positive, print one line per recorded iterate.
    name : str, default="KalmanFilterRegressor"
        Prefix of the printed lines.

    Attributes
    ----------
    history : list of float
        Log-likelihood at the start and after each accepted iteration; non-decreasing.
    n_iter_run : int
        Iterations run, accepted or not.
    converged : bool
        Whether the search ended at a certified stationary point.
    reason : str or None
        Why the search stopped (set by :meth:`certify` or :meth:`stop`).

    Examples
    --------
    >>> monitor = ConvergenceMonitor(n_iter=3)
    >>> monitor.start(-10.0)
    >>> monitor.report(-9.0, "EM"), monitor.report(-9.5, "EM")
    (True, False)
    >>> monitor.history, monitor.n_iter_run, monitor.budget
    ([-10.0, -9.0], 2, 1)
    >>> monitor.stop("the iteration budget ran out")
    >>> monitor.converged, monitor.reason
    (False, 'the iteration budget ran out')
    """

    def __init__(self, n_iter, *, offset=0.0, verbose=0, name="KalmanFilterRegressor"):
        self.n_iter = int(n_iter)
        self.offset = float(offset)
        self.verbose = verbose
        self.name = name
        self.history = []
        self.n_iter_run = 0
        self.converged = False
        self.reason = None

    @property
    def budget(self):
        """Iterations left."""
        return max(self.n_iter - self.n_iter_run, 0)

    @property
    def best(self):
        """Highest log-likelihood recorded, in the internal units (without ``offset``)."""
        return self.history[-1] - self.offset if self.history else -np.inf

    def start(self, log_likelihood):
        """Record the starting point's log-likelihood (internal units)."""
        self.history = [float(log_likelihood) + self.offset]
        self._print("start")

    def report(self, log_likelihood, stage):
        """Count one iteration; record its log-likelihood if it improved. Returns that."""
        self.n_iter_run += 1
        value = float(log_likelihood) + self.offset
        accepted = bool(np.isfinite(value) and value >= self.history[-1])
        if accepted:
            self.history.append(value)
            self._print(stage)
        return accepted

    def trial(self):
        """A monitor for a tentative climb from the current best: the remaining budget,
        its history started at the last recorded value. :meth:`absorb` settles it."""
        child = ConvergenceMonitor(self.budget, offset=self.offset, verbose=self.verbose,
                                   name=self.name)
        child.history = self.history[-1:]
        return child

    def absorb(self, child, adopt):
        """Count a :meth:`trial`'s iterations; record its iterates only if ``adopt`` (the
        fit goes on from where it ended, so the history stays that of the result)."""
        self.n_iter_run += child.n_iter_run
        if adopt:
            self.history.extend(child.history[1:])

    def certify(self, reason):
        """The search ended at a stationary point, for the given ``reason``."""
        self.converged = True
        self.reason = reason

    def stop(self, reason):
        """The search ended without certifying a stationary point."""
        self.converged = False
        self.reason = reason

    def _print(self, stage):
        if self.verbose > 0:
            gain = (self.history[-1] - self.history[-2]
                    if len(self.history) > 1 else float("nan"))
            print(f"[{self.name}] {stage:6s} iteration {self.n_iter_run:4d}  "
                  f"log-likelihood {self.history[-1]:.10g}  gain {gain:.3g}", flush=True)
