"""scikit-learn common checks that skkalman's estimators are expected to fail.

Rows are time steps in skkalman: an estimator's output at row ``t`` depends on the rows
before it in the same sequence. A few of scikit-learn's common checks assume rows are
exchangeable samples (shuffling or subsetting rows must not change per-row results);
those, and only those, are listed, each with its reason. Use it as::

    from sklearn.utils.estimator_checks import parametrize_with_checks
    from skkalman.estimator_checks import expected_failed_checks

    @parametrize_with_checks([...], expected_failed_checks=expected_failed_checks)
    def test_sklearn_compatible(estimator, check):
        check(estimator)
"""

__all__ = ["expected_failed_checks"]


def expected_failed_checks(estimator):
    """The common checks ``estimator`` fails because rows are time steps.

    Each estimator class keeps its own list, beside its code, in the class attribute
    ``_expected_failed_checks``; this returns a copy of it.

    Parameters
    ----------
    estimator : estimator instance

    Returns
    -------
    checks : dict of str to str
        Check name to a one-line reason.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> expected_failed_checks(Ridge())
    {}
    """
    return dict(getattr(estimator, "_expected_failed_checks", {}))
