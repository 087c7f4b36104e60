"""The only importer of scikit-learn's private helpers.

Everything skkalman needs from scikit-learn beyond its public API is imported here, so a
change in scikit-learn's internals touches one file.
"""


import numpy as np
from sklearn.utils._param_validation import Interval as _Interval
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

__all__ = ["Interval", "StrOptions", "check_is_fitted", "num_samples", "validate_data"]

num_samples = _num_samples


class Interval(_Interval):
    """scikit-learn's ``Interval`` constraint, except that it never accepts a bool.

    ``True`` is a ``numbers.Integral``, so scikit-learn's own constraint lets
    ``n_states=True`` through as 1; a bool is never a count, a size or a tolerance.

    Examples
    --------
    >>> import numbers
    >>> constraint = Interval(numbers.Integral, 1, None, closed="left")
    >>> constraint.is_satisfied_by(2), constraint.is_satisfied_by(True)
    (True, False)
    """

    def is_satisfied_by(self, val):
        if isinstance(val, (bool, np.bool_)):
            return False
        return super().is_satisfied_by(val)
