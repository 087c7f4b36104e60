"""The only importer of scikit-learn's private helpers.

Everything skkalman needs from scikit-learn beyond its public API is imported here, so a
change in scikit-learn's internals touches one file.
"""

from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["Interval", "StrOptions", "check_is_fitted", "validate_data"]
