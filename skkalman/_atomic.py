"""All-or-nothing ``fit``: a call that raises leaves the estimator as it was.

scikit-learn's ``validate_data`` writes ``n_features_in_`` and ``feature_names_in_`` as soon
as ``X`` passes, before ``y``, ``lengths`` or anything else is checked, and a fit can fail
long after that (a model the data cannot support, a warning turned into an error, an
interrupt). Every estimator's ``fit`` is decorated with :func:`atomic_fit`, so a failed refit
never leaves a fitted estimator half overwritten.
"""

import functools

__all__ = ["atomic_fit"]


def atomic_fit(fit):
    """Decorate a ``fit`` method so that, if it raises, the instance's ``__dict__`` is restored.

    The snapshot is shallow, which restores exactly what ``fit`` can change: ``fit`` binds
    new objects to attributes (scikit-learn's contract: it never mutates constructor
    parameters, and the package's estimators never mutate a fitted array in place), so
    putting the old bindings back restores every attribute, added, replaced or deleted.
    Any exception counts, ``KeyboardInterrupt`` included, and propagates unchanged.

    Parameters
    ----------
    fit : callable
        The method ``fit(self, ...)``.

    Returns
    -------
    wrapped : callable
        ``fit`` with the same signature (scikit-learn's metadata routing reads it).

    Examples
    --------
    >>> class Model:
    ...     @atomic_fit
    ...     def fit(self, value):
    ...         self.value_ = value
    ...         if value < 0:
    ...             raise ValueError("value must be non-negative")
    ...         return self
    >>> model = Model().fit(1)
    >>> try:
    ...     model.fit(-1)
    ... except ValueError:
    ...     pass
    >>> model.value_
    1
    """

    @functools.wraps(fit)
    def wrapped(self, *args, **kwargs):
        before = dict(vars(self))
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            state = vars(self)
            state.clear()
            state.update(before)
            raise

    return wrapped
