"""Every bad input and what the user gets: the cases behind docs/bad_inputs.rst.

``CASES`` is the one list. The tests run each case and check its error type and message;
the docs page is rendered from the same list with the messages the cases really raise, and
a test fails when the page on disk differs (regenerate it with
``python tests/test_bad_inputs.py``). Every case that calls ``fit`` is also run on an
estimator already fitted, on an array and on a DataFrame, which must come out exactly as it
was: a failed fit leaves no trace.
"""

import re
import sys
import textwrap
import warnings
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import Ridge

import skkalman.metrics
from skkalman import DynamicsRecovery, ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.datasets import make_lds

DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.rst"

N = 300
X, y, _ = make_lds(system="oscillator", n_inputs=1, n_samples=N, random_state=0)
Y2 = np.c_[y, y + 1.0]  # two targets
# Its mean is 1.7e308 / 3, and the distance of -1.7e308 to it overflows.
BIG_SPREAD_X = np.c_[np.where(np.arange(N) % 3, 1.7e308, -1.7e308)]


def _with(array, index, value):
    out = np.array(array, dtype=float)
    out[index] = value
    return out


def _frame(values, prefix="x"):
    import pandas as pd

    return pd.DataFrame(values, columns=[f"{prefix}{j}" for j in range(values.shape[1])])


class _NoDraws(KalmanFilterRegressor):
    """A state-space estimator (a third party's) that cannot draw data sets for the
    bootstrap."""

    _simulate = None


@dataclass(frozen=True)
class Call:
    """One call that must fail: ``estimator`` (a key of ``ESTIMATORS``, or ``"metrics"``
    for a function of skkalman.metrics), its constructor ``params``, the ``method`` and its
    arguments (``X`` and, where the method takes it, ``y`` default to the shared data)."""

    estimator: str
    method: str
    kwargs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    fitted: bool | None = None  # default: fitted for every method but fit
    frame: bool = False  # fitted on a DataFrame with named columns

    @property
    def where(self):
        owner = "skkalman.metrics" if self.estimator == "metrics" else NAMES[self.estimator]
        return f"{owner}.{self.method}"


@dataclass(frozen=True)
class Case:
    """A row of the table: the bad input, the error class and a regex of its message."""

    id: str
    bad_input: str
    error: type
    match: str
    calls: tuple


ESTIMATORS = {
    "kalman": lambda: KalmanFilterRegressor(random_state=0),
    "dynamics": lambda: DynamicsRecovery(KalmanFilterRegressor(random_state=0)),
    "rnn": lambda: ElmanRNNRegressor(hidden_size=2, max_epochs=2, random_state=0),
}
NAMES = {"kalman": "KalmanFilterRegressor", "dynamics": "DynamicsRecovery",
         "rnn": "ElmanRNNRegressor"}
# The estimators whose failed fits are checked on a fitted instance.
TRACE_CHECKED = ("kalman", "dynamics", "rnn")
# A fit cut short (constructor parameters that make it end with a ConvergenceWarning) and
# the private step an interrupt is sent from, per estimator.
SHORT_FIT = {
    "kalman": ({"n_iter": 1}, KalmanFilterRegressor, "_fit"),
    "dynamics": ({"estimator__n_iter": 1}, KalmanFilterRegressor, "_fit"),
    "rnn": ({"max_epochs": 1}, ElmanRNNRegressor, "_train"),
}
TAKES_Y = {"fit", "score", "forecast", "filter", "smooth", "log_likelihood", "aic", "bic"}
NO_DATA = {"from_params"}

K, D, RNN = "kalman", "dynamics", "rnn"

CASES = [
    # --- X ---------------------------------------------------------------------------
    Case("X-nan", "``X`` contains NaN", ValueError, "Input X contains NaN",
         (Call(K, "fit", {"X": _with(X, (3, 0), np.nan)}),
          Call(K, "predict", {"X": _with(X, (3, 0), np.nan)}),
          Call(D, "fit", {"X": _with(X, (3, 0), np.nan)}),
          Call(D, "transform", {"X": _with(X, (3, 0), np.nan)}),
          Call(RNN, "fit", {"X": _with(X, (3, 0), np.nan)}),
          Call(RNN, "predict", {"X": _with(X, (3, 0), np.nan)}))),
    Case("X-inf", "``X`` contains infinity", ValueError, "Input X contains infinity",
         (Call(K, "fit", {"X": _with(X, (3, 0), np.inf)}),
          Call(K, "predict", {"X": _with(X, (3, 0), -np.inf)}))),
    Case("X-1d", "``X`` one-dimensional", ValueError, "Expected 2D array, got 1D array",
         (Call(K, "fit", {"X": X[:, 0]}), Call(K, "predict", {"X": X[:, 0]}))),
    Case("X-no-rows", "``X`` with no rows", ValueError, r"Found array with 0 sample\(s\)",
         (Call(K, "fit", {"X": X[:0], "y": y[:0]}), Call(K, "predict", {"X": X[:0]}))),
    Case("X-strings", "``X`` not numeric", ValueError, "could not convert string to float",
         (Call(K, "fit", {"X": np.full((N, 1), "a")}),)),
    Case("X-complex", "``X`` complex", ValueError, "Complex data not supported",
         (Call(K, "fit", {"X": X + 1j}),)),
    Case("X-features", "``X`` with another number of columns than at fit", ValueError,
         "X has 2 features, but .* is expecting 1 features",
         (Call(K, "predict", {"X": np.c_[X, X]}), Call(D, "transform", {"X": np.c_[X, X]}),
          Call(RNN, "predict", {"X": np.c_[X, X]}))),
    Case("X-names", "``X`` a DataFrame with other column names than at fit", ValueError,
         "feature names should match those that were passed during fit",
         (Call(K, "predict", {"X": _frame(X, prefix="z")}, frame=True),)),
    Case("X-spread", "a column of ``X`` spreading beyond float64 (values near +-1.7e308)",
         ValueError, "column 0 of X spreads beyond float64's range",
         (Call(K, "fit", {"X": BIG_SPREAD_X}),)),
    # --- y ---------------------------------------------------------------------------
    Case("y-none", "``y`` not given to ``fit``", ValueError, "requires y to be passed",
         (Call(K, "fit", {"y": None}), Call(D, "fit", {"y": None}),
          Call(RNN, "fit", {"y": None}))),
    Case("y-inf", "``y`` contains infinity (NaN is a missing measurement)", ValueError,
         "Input y contains infinity", (Call(K, "fit", {"y": _with(y, 3, np.inf)}),)),
    Case("y-all-nan", "``y`` all NaN", ValueError, "y contains only NaN",
         (Call(K, "fit", {"y": np.full(N, np.nan)}), Call(RNN, "fit", {"y": np.full(N, np.nan)}))),
    Case("y-nan-column", "a column of ``y`` all NaN", ValueError,
         "column 1 of y contains only NaN: that target is never measured",
         (Call(K, "fit", {"y": _with(Y2, (slice(None), 1), np.nan)}),)),
    Case("y-rows", "``y`` with another number of rows than ``X``", ValueError,
         "y has 299 rows but X has 300", (Call(K, "fit", {"y": y[:-1]}),)),
    Case("y-3d", "``y`` three-dimensional", ValueError, "y must be 1-D or 2-D",
         (Call(K, "fit", {"y": y.reshape(N, 1, 1)}),)),
    Case("y-no-columns", "``y`` with no columns", ValueError, "y has no columns",
         (Call(K, "fit", {"y": np.zeros((N, 0))}),)),
    Case("y-constant", "``y`` constant (or a single observed value)", ValueError,
         "column 0 of y is constant",
         (Call(K, "fit", {"y": np.full(N, 3.0)}), Call(D, "fit", {"y": np.full(N, 3.0)}))),
    Case("y-spread", "``y`` spreading more than about 1e150 (or less than 1e-150): its "
         "variance does not fit in float64", ValueError,
         r"column 0 of y spreads .* does not fit in float64",
         (Call(K, "fit", {"y": y * 1e200}), Call(K, "fit", {"y": y * 1e-200}))),
    Case("y-targets", "``y`` with another number of columns than at fit", ValueError,
         "y has 2 targets but KalmanFilterRegressor was fitted with 1",
         (Call(K, "forecast", {"y": Y2}), Call(K, "log_likelihood", {"y": Y2}))),
    Case("y-unobserved-score", "``y`` in ``score`` with a target never observed", ValueError,
         "target 0 of y has no observed",
         (Call(K, "score", {"y": np.full(N, np.nan)}),
          Call(RNN, "score", {"y": np.full(N, np.nan)}))),
    Case("sample-weight", "``sample_weight`` of the wrong length, or negative", ValueError,
         "sample_weight (has shape|must be finite and non-negative)",
         (Call(K, "score", {"sample_weight": np.ones(3)}),
          Call(RNN, "score", {"sample_weight": np.ones(3)}),
          Call(K, "score", {"sample_weight": -np.ones(N)}))),
    # --- lengths ---------------------------------------------------------------------
    Case("lengths-scalar", "``lengths`` a number", TypeError,
         "lengths must be a sequence of ints",
         (Call(K, "fit", {"lengths": N}), Call(K, "predict", {"lengths": N}))),
    Case("lengths-2d", "``lengths`` two-dimensional", ValueError,
         "lengths must be one-dimensional", (Call(K, "fit", {"lengths": [[150, 150]]}),)),
    Case("lengths-empty", "``lengths`` empty", ValueError, "lengths is empty",
         (Call(K, "fit", {"lengths": []}),)),
    Case("lengths-float", "``lengths`` not integers", TypeError,
         "lengths must hold integers",
         (Call(K, "fit", {"lengths": [150.5, 149.5]}), Call(K, "fit", {"lengths": [True]}))),
    Case("lengths-zero", "``lengths`` with an entry below 1", ValueError,
         r"lengths must be positive, but lengths\[0\] = 0",
         (Call(K, "fit", {"lengths": [0, N]}), Call(D, "fit", {"lengths": [0, N]}))),
    Case("lengths-sum", "``lengths`` not summing to the number of rows", ValueError,
         "lengths sum to 200 but X has 300 rows",
         (Call(K, "fit", {"lengths": [100, 100]}), Call(K, "predict", {"lengths": [100, 100]}),
          Call(D, "transform", {"lengths": [100, 100]}))),
    Case("lengths-wrap", "``lengths`` whose sum wraps around in int64 "
         "(``[2**63 - 1, 2**63 - 1, 302]`` for 300 rows)", ValueError,
         "lengths sum to 18446744073709551916 but X has 300 rows",
         (Call(K, "fit", {"lengths": [2**63 - 1, 2**63 - 1, 302]}),
          Call(RNN, "fit", {"lengths": [2**63 - 1, 2**63 - 1, 302]}))),
    # --- groups ----------------------------------------------------------------------
    Case("groups-and-lengths", "both ``lengths`` and ``groups``", ValueError,
         "give lengths or groups, not both",
         (Call(K, "fit", {"lengths": [N], "groups": np.zeros(N)}),
          Call(K, "predict", {"lengths": [N], "groups": np.zeros(N)}),
          Call(D, "fit", {"lengths": [N], "groups": np.zeros(N)}),
          Call(RNN, "fit", {"lengths": [N], "groups": np.zeros(N)}),
          Call(RNN, "predict", {"lengths": [N], "groups": np.zeros(N)}))),
    Case("groups-rows", "``groups`` with another number of labels than rows", ValueError,
         "groups has 299 labels but X has 300 rows",
         (Call(K, "fit", {"groups": np.zeros(N - 1)}),
          Call(D, "transform", {"groups": np.zeros(N - 1)}))),
    Case("groups-2d", "``groups`` two-dimensional", ValueError,
         "groups must be one-dimensional", (Call(K, "fit", {"groups": np.zeros((N, 1))}),)),
    Case("groups-scalar", "``groups`` a single label", TypeError,
         "groups must hold one label per row", (Call(K, "fit", {"groups": 0}),)),
    Case("groups-missing", "``groups`` with a missing label (NaN, None)", ValueError,
         r"groups\[3\] is nan; every row needs a sequence label",
         (Call(K, "fit", {"groups": _with(np.zeros(N), 3, np.nan)}),)),
    Case("groups-again", "a ``groups`` label that comes back after another one (rows not "
         "ordered by sequence)", ValueError,
         "groups label 0 labels rows 0 to 99 and again rows 200 to 299",
         (Call(K, "fit", {"groups": np.repeat([0, 1, 0], 100)}),
          Call(D, "fit", {"groups": np.repeat([0, 1, 0], 100)}),
          Call(RNN, "fit", {"groups": np.repeat([0, 1, 0], 100)}),
          Call(RNN, "score", {"groups": np.repeat([0, 1, 0], 100)}))),
    # --- parameters ------------------------------------------------------------------
    Case("n_states-bool", "``n_states=True``, ``hidden_size=True`` (a bool is not a count)",
         ValueError, "The '(n_states|hidden_size)' parameter of .* must be an int",
         (Call(K, "fit", params={"n_states": True}),
          Call(D, "fit", params={"estimator__n_states": True}),
          Call(RNN, "fit", params={"hidden_size": True}))),
    Case("n_states-float", "``n_states=2.0`` or ``0``", ValueError,
         "The 'n_states' parameter of KalmanFilterRegressor must be an int",
         (Call(K, "fit", params={"n_states": 2.0}), Call(K, "fit", params={"n_states": 0}))),
    Case("tol-nan", "``tol`` negative, NaN or infinite", ValueError,
         "The 'tol' parameter of KalmanFilterRegressor must be a float in the range",
         (Call(K, "fit", params={"tol": np.nan}), Call(K, "fit", params={"tol": -1.0}))),
    Case("init", "``init`` not one of its options", ValueError,
         "The 'init' parameter of KalmanFilterRegressor must be a str among",
         (Call(K, "fit", params={"init": "bogus"}),)),
    Case("fixed-type", "``fixed`` not a dict", ValueError,
         "The 'fixed' parameter of KalmanFilterRegressor must be an instance of 'dict'",
         (Call(K, "fit", params={"fixed": [1.0]}),)),
    Case("fixed-key", "``fixed`` with an unknown key", ValueError,
         r"fixed has unknown key\(s\) \['F'\]",
         (Call(K, "fit", params={"fixed": {"F": 1.0}}),)),
    Case("fixed-shape", "a ``fixed`` value of the wrong shape", ValueError,
         r"fixed\['A'\] must have shape \(2, 2\), got \(3, 3\)",
         (Call(K, "fit", params={"fixed": {"A": np.eye(3)}}),)),
    Case("fixed-nan", "a ``fixed`` value with NaN or infinity", ValueError,
         r"fixed\['C'\] contains NaN or infinity",
         (Call(K, "fit", params={"fixed": {"C": [[np.nan, 1.0]]}}),)),
    Case("fixed-text", "a ``fixed`` value that is not numbers", ValueError,
         r"fixed\['A'\] must be an array of numbers",
         (Call(K, "fit", params={"fixed": {"A": "abc"}}),)),
    Case("fixed-symmetric", "a ``fixed`` covariance not symmetric", ValueError,
         r"fixed\['Q'\] must be symmetric",
         (Call(K, "fit", params={"fixed": {"Q": [[1.0, 0.5], [0.0, 1.0]]}}),)),
    Case("fixed-psd", "a ``fixed`` covariance not positive semi-definite", ValueError,
         r"fixed\['R'\] must be positive semi-definite",
         (Call(K, "fit", params={"fixed": {"R": [[-1.0]]}}),)),
    Case("fixed-intercept", "``fixed['intercept']`` with ``fit_intercept=False``",
         ValueError, r"fixed\['intercept'\] needs fit_intercept=True",
         (Call(K, "fit", params={"fixed": {"intercept": [0.0]}, "fit_intercept": False}),)),
    Case("fixed-no-likelihood", "``fixed`` values under which the data have no finite "
         "likelihood (an exploding ``A``; zero ``R`` and ``Q``)",
         ValueError, r"the values held in fixed \(\[.*\]\) leave the data no finite "
         "likelihood",
         (Call(K, "fit", params={"fixed": {"A": 10 * np.eye(2)}}),
          Call(K, "fit", params={"fixed": {"Q": np.zeros((2, 2)), "R": [[0.0]]}}))),
    Case("from-params", "``from_params`` with matrices of mismatched shapes, or a "
         "covariance that is not one", ValueError, r"A must have shape \(1, 1\)",
         (Call(K, "from_params", {"A": [[0.9, 0.1]], "C": [[1.0]], "Q": [[1.0]],
                                  "R": [[1.0]]}),)),
    # --- state of the model ----------------------------------------------------------
    Case("not-fitted", "a method that needs a fitted model, before ``fit``", NotFittedError,
         "is not fitted yet",
         (Call(K, "predict", fitted=False), Call(D, "transform", fitted=False))),
    Case("random-state", "``sample(random_state=...)`` not a seed", ValueError,
         "cannot be used to seed", (Call(K, "sample", {"random_state": "bogus"}),)),
    # --- DynamicsRecovery ------------------------------------------------------------
    Case("dynamics-estimator", "``DynamicsRecovery`` around a model without state-space "
         "form", TypeError, "DynamicsRecovery supports KalmanFilterRegressor and "
         "ElmanRNNRegressor", (Call(D, "fit", params={"estimator": Ridge()}),)),
    Case("dynamics-prefit", "``prefit=True`` with an unfitted model", NotFittedError,
         "DynamicsRecovery was given prefit=True, so estimator must already be fitted",
         (Call(D, "fit", params={"prefit": True}),)),
    Case("dynamics-order", "``order`` above the effective system's states", ValueError,
         "order=3 exceeds the 2 states of the effective system",
         (Call(D, "fit", params={"order": 3}),)),
    Case("dynamics-order-bool", "``order=True``", ValueError,
         "The 'order' parameter of DynamicsRecovery must be an int",
         (Call(D, "fit", params={"order": True}),)),
    Case("feedback-count", "``feedback_columns`` not one column per target", ValueError,
         "feedback_columns has 2 entries but the model has 1 targets",
         (Call(D, "fit", params={"feedback_columns": [0, 0]}),)),
    Case("feedback-range", "``feedback_columns`` naming a column ``X`` lacks", ValueError,
         r"feedback_columns\[0\] = 5 is out of range: X has 1 columns",
         (Call(D, "fit", params={"feedback_columns": [5]}),)),
    Case("feedback-float", "``feedback_columns`` not integers", ValueError,
         "feedback_columns must hold integer column indices",
         (Call(D, "fit", params={"feedback_columns": [0.0]}),)),
    Case("bootstrap-no-draws", "``uncertainty=\"bootstrap\"`` around a state-space "
         "estimator that cannot draw data sets like ``(X, y)``", TypeError,
         r"uncertainty='bootstrap' draws data sets like \(X, y\) from the fitted model",
         (Call(D, "fit", params={"estimator": _NoDraws(), "uncertainty": "bootstrap",
                                 "n_bootstrap": 2}),)),
    Case("bootstrap-y", "``uncertainty=\"bootstrap\"`` without ``y``", ValueError,
         r"DynamicsRecovery requires y to be passed, but the target y is None: "
         r"uncertainty='bootstrap' refits the model", (Call(D, "fit", {"y": None},
                          params={"uncertainty": "bootstrap", "n_bootstrap": 2}),)),
    # --- metrics ---------------------------------------------------------------------
    Case("eigenvalues-shape", "``eigenvalue_error`` of a matrix that is not square",
         ValueError, "A_est must be a square matrix or a 1-D array of eigenvalues",
         (Call("metrics", "eigenvalue_error", {"A_est": np.ones((2, 3)),
                                               "A_true": np.eye(2)}),)),
    Case("eigenvalues-nan", "``eigenvalue_error`` of a matrix with NaN", ValueError,
         "A_est contains NaN or infinity",
         (Call("metrics", "eigenvalue_error", {"A_est": [[np.nan]], "A_true": [[0.5]]}),)),
    Case("impulse-lags", "``impulse_response_error(n_lags=0)``", ValueError,
         "n_lags must be a positive integer",
         (Call("metrics", "impulse_response_error",
               {"estimated": (np.eye(1), np.eye(1), np.eye(1)),
                "true": (np.eye(1), np.eye(1), np.eye(1)), "n_lags": 0}),)),
]

_FITTED = {}


def fitted(name, frame=False):
    """A fitted estimator of ``ESTIMATORS`` (fitted once per session, copied per use)."""
    if (name, frame) not in _FITTED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # (a 2-epoch RNN)
            _FITTED[name, frame] = ESTIMATORS[name]().fit(_frame(X) if frame else X, y)
    return deepcopy(_FITTED[name, frame])


def run(call, estimator=None):
    """Make the call (on ``estimator`` when given) and return what it returns."""
    if call.estimator == "metrics":
        return getattr(skkalman.metrics, call.method)(**call.kwargs)
    if estimator is None:
        needs_fit = call.method != "fit" if call.fitted is None else call.fitted
        estimator = (fitted(call.estimator, call.frame) if needs_fit
                     else ESTIMATORS[call.estimator]())
    estimator.set_params(**call.params)
    kwargs = dict(call.kwargs)
    if call.method not in NO_DATA:
        kwargs.setdefault("X", X)
        if call.method in TAKES_Y:
            kwargs.setdefault("y", y)
    return getattr(estimator, call.method)(**kwargs)


def _calls():
    return [pytest.param(case, call, id=f"{case.id}-{call.where}")
            for case in CASES for call in case.calls]


@pytest.mark.parametrize(("case", "call"), _calls())
def test_bad_input_raises_what_the_table_says(case, call):
    with pytest.raises(case.error, match=case.match):
        run(call)


# --- a failed fit leaves no trace -----------------------------------------------------

def _fit_calls():
    return [pytest.param(case, call, frame, id=f"{case.id}-{call.where}-{kind}")
            for case in CASES for call in case.calls
            if call.method == "fit" and call.estimator in TRACE_CHECKED
            for frame, kind in ((False, "array"), (True, "frame"))]


def _outputs(estimator, frame):
    data = _frame(X) if frame else X
    if isinstance(estimator, DynamicsRecovery):
        return estimator.transform(data)
    return estimator.predict(data)


def _assert_untouched(estimator, before, outputs, frame, changed=()):
    after = vars(estimator)
    assert set(after) == set(before)
    for key, value in before.items():
        if key not in changed:
            assert after[key] is value, key
    np.testing.assert_array_equal(_outputs(estimator, frame), outputs)
    if frame:
        np.testing.assert_array_equal(estimator.feature_names_in_, ["x0"])


@pytest.mark.parametrize(("case", "call", "frame"), _fit_calls())
def test_failed_fit_leaves_a_fitted_estimator_as_it_was(case, call, frame):
    estimator = fitted(call.estimator, frame)
    before, outputs = dict(vars(estimator)), _outputs(estimator, frame)
    with pytest.raises(case.error, match=case.match):
        run(call, estimator)
    # Only what set_params changed on purpose may differ: the constructor parameters.
    _assert_untouched(estimator, before, outputs, frame,
                      changed={name.split("__")[0] for name in call.params})


@pytest.mark.parametrize("name", TRACE_CHECKED)
def test_failed_refit_with_other_features_keeps_the_old_ones(name):
    # validate_data records the new feature count and drops the names before y fails.
    estimator = fitted(name, frame=True)
    before, outputs = dict(vars(estimator)), _outputs(estimator, True)
    with pytest.raises(ValueError, match="y contains only NaN"):
        estimator.fit(np.c_[X, X, X], np.full(N, np.nan))
    _assert_untouched(estimator, before, outputs, frame=True)
    assert estimator.n_features_in_ == 1


@pytest.mark.parametrize("name", list(SHORT_FIT))
def test_fit_stopped_by_a_warning_turned_error_or_an_interrupt_leaves_no_trace(name,
                                                                             monkeypatch):
    params, owner, step = SHORT_FIT[name]
    changed = {key.split("__")[0] for key in params}
    estimator = fitted(name)
    before, outputs = dict(vars(estimator)), _outputs(estimator, False)
    estimator.set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning):
            estimator.fit(X, y)
    _assert_untouched(estimator, before, outputs, False, changed=changed)

    def interrupted(self, *args):
        self.n_features_in_ = None  # half-written state that must not survive
        raise KeyboardInterrupt

    monkeypatch.setattr(owner, step, interrupted)
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(X, y)
    _assert_untouched(estimator, before, outputs, False, changed=changed)


def test_a_first_fit_that_fails_leaves_the_estimator_unfitted():
    estimator = KalmanFilterRegressor()
    with pytest.raises(ValueError, match="y contains only NaN"):
        estimator.fit(X, np.full(N, np.nan))
    assert vars(estimator) == vars(KalmanFilterRegressor())
    with pytest.raises(NotFittedError):
        estimator.predict(X)


# --- the docs page --------------------------------------------------------------------

HEADER = """\
.. This page is generated by tests/test_bad_inputs.py from its list of cases, with the
   messages those cases raise; run ``python tests/test_bad_inputs.py`` to regenerate it.

Bad inputs and what you get
===========================

Every input skkalman rejects, and the error it raises. Each row is a test
(``tests/test_bad_inputs.py``), run on every call listed; the message shown is the
one the first call raises, word for word (long ones cut at {width} characters).
``InvalidParameterError`` is scikit-learn's error for constructor parameters: it is
both a ``ValueError`` and a ``TypeError``. A ``fit`` that raises leaves a previously
fitted estimator exactly as it was: its attributes, feature names and predictions.

What is *not* an error: NaN in ``y`` (a missing measurement: the Kalman model skips
that update), ``X`` with no columns (a model without inputs), and inputs that never
vary (their ``B`` and ``D`` columns stay zero). Data are validated once, in
``skkalman/_sequences.py``; ``lengths`` and ``groups`` are described in
:doc:`workflows`.

"""
WIDTH = 240


def _raised(case):
    """The error class's name and the message (whitespace collapsed, cut) of the case."""
    try:
        run(case.calls[0])
    except case.error as exc:
        message = " ".join(str(exc).split())
        # scikit-learn prints sets of options in hash order, which changes per process.
        message = re.sub(r"\{('[^{}]*')\}",
                         lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}",
                         message)
        if len(message) > WIDTH:
            message = message[:WIDTH - 3] + "..."
        return type(exc).__name__, message
    raise AssertionError(f"case {case.id} did not raise")


def _cell(text, first=False):
    lines = textwrap.wrap(text, 80) or [""]
    head = "   * - " if first else "     - "
    return "\n".join([head + lines[0]] + ["       " + line for line in lines[1:]])


def render_page():
    """The whole of docs/bad_inputs.rst, messages taken from running the cases."""
    rows = [_cell("Bad input", first=True), _cell("Call"), _cell("Error")]
    for case in CASES:
        where = ", ".join(dict.fromkeys(f"``{call.where}``" for call in case.calls))
        name, message = _raised(case)
        rows += [_cell(case.bad_input, first=True), _cell(where),
                 _cell(f"``{name}``: ``{message}``")]
    table = ".. list-table::\n   :header-rows: 1\n   :widths: 30 25 45\n\n"
    return HEADER.format(width=WIDTH) + table + "\n".join(rows) + "\n"


def test_docs_page_is_rendered_from_these_cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        page = render_page()
    assert DOCS_PAGE.read_text() == page, (
        "docs/bad_inputs.rst is out of date; run `python tests/test_bad_inputs.py`")
    assert len({case.id for case in CASES}) == len(CASES)


if __name__ == "__main__":
    DOCS_PAGE.write_text(render_page())
    sys.stdout.write(f"wrote {DOCS_PAGE}\n")
