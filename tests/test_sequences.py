"""The sequence data convention: accepted exactly when valid, errors name the problem."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator

from skkalman._sequences import (
    check_lengths,
    groups_to_lengths,
    resolve_lengths,
    restore_y_shape,
    validate_sequences,
)


class _Estimator(BaseEstimator):
    pass


@st.composite
def _data(draw):
    n_sequences = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, 6), min_size=n_sequences, max_size=n_sequences))
    n_samples = sum(lengths)
    n_features = draw(st.integers(0, 3))
    n_targets = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = rng.standard_normal((n_samples, n_targets))
    nan_fraction = draw(st.sampled_from([0.0, 0.3, 1.0]))
    y[rng.random(y.shape) < nan_fraction] = np.nan
    return X, y, lengths


@settings(max_examples=60, deadline=None)
@given(_data())
def test_accepted_exactly_when_valid(data):
    X, y, lengths = data
    every_target_seen = (~np.isnan(y)).any(axis=0).all()
    if every_target_seen:
        out = validate_sequences(_Estimator(), X, y, lengths, reset=True, y_required=True)
        np.testing.assert_array_equal(out.lengths, lengths)
        np.testing.assert_array_equal(out.y, y)
        assert out.X.shape == X.shape
        rows = np.concatenate([np.arange(s.start, s.stop) for s in out.slices])
        np.testing.assert_array_equal(rows, np.arange(X.shape[0]))
        assert [s.stop - s.start for s in out.slices] == list(lengths)
    else:
        with pytest.raises(ValueError, match="only NaN"):
            validate_sequences(_Estimator(), X, y, lengths, reset=True, y_required=True)


@settings(max_examples=40, deadline=None)
@given(_data(), st.integers(-3, 3).filter(lambda d: d != 0))
def test_lengths_that_do_not_sum_to_n_samples(data, delta):
    X, y, lengths = data
    bad = list(lengths)
    bad[-1] += delta
    if bad[-1] < 1:
        with pytest.raises(ValueError, match=r"lengths must be positive, but lengths\[\d+\]"):
            validate_sequences(_Estimator(), X, y, bad, reset=True)
    else:
        msg = f"lengths sum to {sum(bad)} but X has {X.shape[0]} rows"
        with pytest.raises(ValueError, match=msg):
            validate_sequences(_Estimator(), X, y, bad, reset=True)


@settings(max_examples=40, deadline=None)
@given(_data(), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_X_is_rejected(data, value):
    X, y, lengths = data
    if X.shape[1] == 0:
        X = np.zeros((X.shape[0], 1))
    X = X.copy()
    X[X.shape[0] // 2, 0] = value
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        validate_sequences(_Estimator(), X, y, lengths, reset=True)


def test_infinite_y_is_rejected():
    y = np.zeros((4, 2))
    y[2, 1] = np.inf
    with pytest.raises(ValueError, match="y contains infinity"):
        validate_sequences(_Estimator(), np.zeros((4, 1)), y, reset=True)


def test_target_column_never_measured():
    y = np.zeros((4, 2))
    y[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 of y contains only NaN"):
        validate_sequences(_Estimator(), np.zeros((4, 0)), y, reset=True, y_required=True)


def test_y_rows_must_match_X():
    with pytest.raises(ValueError, match="y has 3 rows but X has 4"):
        validate_sequences(_Estimator(), np.zeros((4, 1)), np.zeros(3), reset=True)


def test_y_required():
    with pytest.raises(ValueError, match="requires y to be passed"):
        validate_sequences(_Estimator(), np.zeros((4, 1)), None, reset=True, y_required=True)


def test_wrong_feature_count_after_fit():
    est = _Estimator()
    validate_sequences(est, np.zeros((4, 2)), reset=True)
    assert est.n_features_in_ == 2
    with pytest.raises(ValueError, match="X has 3 features"):
        validate_sequences(est, np.zeros((4, 3)), reset=False)


def test_wrong_target_count():
    with pytest.raises(ValueError, match="y has 2 targets but _Estimator was fitted with 1"):
        validate_sequences(_Estimator(), np.zeros((4, 0)), np.zeros((4, 2)), reset=True,
                           n_targets=1)


def test_zero_input_columns_are_accepted():
    out = validate_sequences(_Estimator(), np.zeros((5, 0)), np.ones(5), reset=True)
    assert out.X.shape == (5, 0)
    assert out.y_ndim == 1


@pytest.mark.parametrize(
    ("lengths", "error", "match"),
    [
        ("5", TypeError, "lengths must be a sequence of ints"),
        (5, TypeError, "lengths must be a sequence of ints"),
        ([2.5, 2.5], TypeError, "lengths must hold integers"),
        ([True, True], TypeError, "lengths must hold integers"),
        ([[5]], ValueError, "lengths must be one-dimensional"),
        ([], ValueError, "lengths is empty"),
        ([6, -1], ValueError, r"lengths\[1\] = -1"),
        ([5, 0], ValueError, r"lengths\[1\] = 0"),
        # Sums that wrap around in int64 (to 5 here), and integers beyond int64.
        ([2**63 - 1, 2**63 - 1, 7], ValueError, "lengths sum to 18446744073709551621 but"),
        ([2**64, 1], ValueError, "lengths sum to 18446744073709551617 but"),
        ([2**70], ValueError, "lengths sum to 1180591620717411303424 but"),
        ([1e30], ValueError, "lengths sum to 1000000000000000019884624838656 but"),
        ([1] * 6, ValueError, "lengths sum to 6 but X has 5 rows"),
    ],
)
def test_bad_lengths(lengths, error, match):
    with pytest.raises(error, match=match):
        check_lengths(lengths, 5)


def test_integral_float_lengths_are_accepted():
    np.testing.assert_array_equal(check_lengths(np.array([2.0, 3.0]), 5), [2, 3])


def test_min_length_names_the_short_sequence():
    with pytest.raises(ValueError, match="sequence 1 has n_samples = 1 rows but at least 2"):
        check_lengths([4, 1], 5, min_length=2)


def test_restore_y_shape():
    values = np.arange(6.0).reshape(3, 2)
    assert restore_y_shape(values, 2) is values
    np.testing.assert_array_equal(restore_y_shape(values[:, :1], 1), [0.0, 2.0, 4.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=6),
       st.sampled_from(["int", "str", "float", "object"]), st.integers(0, 2**32 - 1))
def test_groups_give_the_lengths_of_their_runs(lengths, kind, seed):
    # Distinct labels in a random order, each repeated over its sequence's rows.
    labels = np.random.default_rng(seed).permutation(len(lengths)) * 7 - 3
    labels = {"int": labels, "str": labels.astype(str), "float": labels / 2,
              "object": np.array([f"s{v}" if v % 2 else int(v) for v in labels],
                                 dtype=object)}[kind]
    groups = np.repeat(labels, lengths)
    n_samples = sum(lengths)
    np.testing.assert_array_equal(groups_to_lengths(groups, n_samples), lengths)
    np.testing.assert_array_equal(groups_to_lengths(list(groups), n_samples), lengths)
    data = validate_sequences(_Estimator(), np.zeros((n_samples, 1)), groups=groups,
                              reset=True)
    np.testing.assert_array_equal(data.lengths, lengths)


@pytest.mark.parametrize(
    ("groups", "error", "match"),
    [
        (0, TypeError, "groups must hold one label per row"),
        ("aaaaa", TypeError, "groups must hold one label per row"),
        ([[0] * 5], ValueError, "groups must be one-dimensional"),
        ([0] * 4, ValueError, "groups has 4 labels but X has 5 rows"),
        ([0, 0, 1, 1, 0], ValueError, "groups label 0 labels rows 0 to 1 and again rows 4 to 4"),
        (["a", "b", "a", "b", "c"], ValueError, "groups label 'a' labels rows 0 to 0 and again"),
        ([0.0, 0.0, np.nan, 1.0, 1.0], ValueError, r"groups\[2\] is nan"),
        (["a", "a", None, "b", "b"], ValueError, r"groups\[2\] is None"),
    ],
)
def test_bad_groups(groups, error, match):
    with pytest.raises(error, match=match):
        groups_to_lengths(groups, 5)


def test_lengths_or_groups_not_both():
    assert resolve_lengths([2, 3], None, 5) == [2, 3]
    assert resolve_lengths(None, None, 5) is None
    with pytest.raises(ValueError, match="give lengths or groups, not both"):
        resolve_lengths([5], [0] * 5, 5)
    with pytest.raises(ValueError, match="give lengths or groups, not both"):
        validate_sequences(_Estimator(), np.zeros((5, 1)), lengths=[5], groups=[0] * 5,
                           reset=True)


def test_y_shape_errors_name_y():
    X = np.zeros((4, 1))
    for y, match in [(np.zeros((4, 1, 1)), "y must be 1-D or 2-D, got an array of shape"),
                     (np.zeros((4, 0)), "y has no columns"),
                     (3.0, r"y must be 1-D or 2-D, got an array of shape \(\)")]:
        with pytest.raises(ValueError, match=match):
            validate_sequences(_Estimator(), X, y, reset=True)
