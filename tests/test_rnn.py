"""Tests of ElmanRNNRegressor, its torch module, windowing and training loop."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from skorch.callbacks import EarlyStopping

from skkalman import ElmanRNNRegressor
from skkalman._rnn.data import make_windows, split_rows
from skkalman._rnn.module import ElmanRNN, MaskedMSELoss
from skkalman._rnn.training import fit_restarts
from skkalman._sklearn_compat import check_is_fitted
from skkalman.datasets import lagged_targets, make_lds
from skkalman.rnn import _seeds

FAST = dict(max_epochs=8, batch_size=8, bptt=20, warm_up=5, random_state=0)


@pytest.fixture(scope="module")
def forecasting():
    _, y, _ = make_lds(system="two_rotations", n_samples=402, lengths=[201, 201],
                       random_state=0)
    return lagged_targets(y, lengths=[201, 201])


@pytest.fixture(scope="module")
def inputs_data():
    X, y, _ = make_lds(n_states=2, n_inputs=2, n_outputs=2, n_samples=300,
                       random_state=1)
    return X, y


@pytest.fixture(scope="module", params=["linear", "tanh", "relu"])
def fitted(request, inputs_data):
    X, y = inputs_data
    return ElmanRNNRegressor(3, nonlinearity=request.param, **FAST).fit(X, y)


def numpy_rnn(model, X):
    """The network's equations written out in NumPy with the fitted raw weights."""
    sigma = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "linear": lambda z: z}
    h = np.zeros(model.hidden_size)
    H = []
    for x in X:
        h = sigma[model.nonlinearity](model.W_hh_ @ h + model.W_xh_ @ x + model.b_h_)
        H.append(h)
    H = np.array(H)
    return H @ model.W_hy_.T + model.b_y_, H


def test_import_does_not_load_torch():
    code = ("import sys, skkalman, skkalman.rnn; skkalman.ElmanRNNRegressor; "
            "assert 'torch' not in sys.modules and 'skorch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_learns_and_beats_last_value(forecasting):
    X, y, lengths = forecasting
    rnn = ElmanRNNRegressor(4, nonlinearity="linear", max_epochs=30, batch_size=4,
                            bptt=20, random_state=0).fit(X, y, lengths)
    losses = rnn.history_[:, "train_loss"]
    assert losses[-1] < 0.5 * losses[0]
    mse = np.mean((rnn.predict(X, lengths) - y) ** 2)
    # X_t = y_{t-1}: predicting the last value is the naive forecast to beat.
    assert mse < 0.9 * np.mean((X - y) ** 2)
    assert rnn.score(X, y, lengths) > 0.4


def test_weights_are_the_equations(fitted, inputs_data):
    """The fitted W_*_ (standardization folded in) reproduce predict and hidden_states."""
    X, _ = inputs_data
    y_np, H_np = numpy_rnn(fitted, X[:60])
    assert_allclose(fitted.predict(X[:60]), y_np, atol=1e-4)
    assert_allclose(fitted.hidden_states(X[:60]), H_np, atol=1e-4)
    assert_allclose(fitted._latent_states(X[:60]), H_np, atol=1e-4)


def test_lengths_equal_separate_sequences(fitted, inputs_data):
    X, _ = inputs_data
    joint = fitted.predict(X[:100], lengths=[30, 70])
    assert_allclose(joint[:30], fitted.predict(X[:30]), rtol=1e-6, atol=1e-6)
    assert_allclose(joint[30:], fitted.predict(X[30:100]), rtol=1e-6, atol=1e-6)
    H = fitted.hidden_states(X[:100], lengths=[30, 70])
    assert H.shape == (100, 3)
    assert_allclose(H[30:], fitted.hidden_states(X[30:100]), rtol=1e-6, atol=1e-6)


def test_causal(fitted, inputs_data):
    X, _ = inputs_data
    X2 = X.copy()
    X2[50:] = np.random.default_rng(0).standard_normal(X2[50:].shape)
    assert_allclose(fitted.predict(X2)[:50], fitted.predict(X)[:50], rtol=1e-6, atol=1e-6)
    assert not np.allclose(fitted.predict(X2)[50:], fitted.predict(X)[50:])


def test_linear_recurrence_matches_step_loop():
    torch.manual_seed(0)
    module = ElmanRNN(3, 2, 5, "linear", x_mean=[1, 2, 3], x_scale=[2, 1, 0.5])
    for T in (1, 2, 7, 50, 333):
        X, h0 = torch.randn(4, T, 3), torch.randn(4, 5)
        h, hs = h0, []
        Xs = (X - module.x_mean) / module.x_scale
        for t in range(T):
            h = h @ module.W_hh.T + Xs[:, t] @ module.W_xh.T + module.b_h
            hs.append(h)
        assert_allclose(module.run(X, h0)[1].detach(), torch.stack(hs, 1).detach(),
                        atol=1e-5)


def test_nan_targets_are_masked_out_of_loss_and_gradient():
    torch.manual_seed(0)
    module = ElmanRNN(2, 2, 3, "tanh")
    X = torch.randn(3, 10, 2)
    y = torch.randn(3, 10, 2)
    missing = torch.rand(3, 10, 2) < 0.3
    criterion = MaskedMSELoss(y_scale=[2.0, 0.5])

    def loss_and_grads(target):
        module.zero_grad()
        pred = module(X)
        pred.retain_grad()
        loss = criterion(pred, target)
        loss.backward()
        return loss, [p.grad.clone() for p in module.parameters()], pred.grad

    loss, grads, pred_grad = loss_and_grads(torch.where(missing, torch.nan, y))
    # Reference: the loss written over the observed entries only.
    module.zero_grad()
    error = (module(X) - y) / torch.tensor([2.0, 0.5])
    reference = error[~missing].square().mean()
    reference.backward()
    assert torch.isclose(loss, reference)
    for g, p in zip(grads, module.parameters(), strict=True):
        assert torch.all(torch.isfinite(g))
        assert_allclose(g, p.grad, rtol=1e-5, atol=1e-7)
    assert torch.all(pred_grad[missing] == 0)
    # Whatever stands at a masked entry, the loss and gradients are those of the mask.
    loss2, grads2, _ = loss_and_grads(torch.where(missing, torch.nan, y))
    assert loss2 == loss and all(torch.equal(a, b) for a, b in zip(grads, grads2,
                                                                   strict=True))


def test_fit_with_missing_targets(inputs_data):
    X, y = inputs_data
    y = y.copy()
    y[::3, 0] = np.nan
    y[5:40] = np.nan
    rnn = ElmanRNNRegressor(3, **FAST).fit(X, y)
    assert np.all(np.isfinite(rnn.predict(X)))
    assert np.isfinite(rnn.score(X, y))


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=4),
       bptt=st.integers(1, 12), warm_up=st.integers(0, 6),
       fraction=st.sampled_from([0.0, 0.2, 0.5]))
def test_windows_count_every_row_once_train_first(lengths, bptt, warm_up, fraction):
    lengths = np.array(lengths)
    n = lengths.sum()
    rows = np.arange(n, dtype=float)[:, None]
    n_train = split_rows(lengths, fraction)
    zeros = np.zeros_like(lengths)
    counted = []
    for lo, hi in ((zeros, n_train), (n_train, lengths)):
        Xw, yw = make_windows(rows, rows, lengths, lo, hi, bptt=bptt, warm_up=warm_up)
        mask = ~np.isnan(yw[..., 0])
        # A counted target sits at its own input row (windows are aligned) ...
        assert_array_equal(yw[mask], Xw[mask])
        # ... and at most bptt targets count per window.
        assert np.all(mask.sum(axis=1) <= bptt)
        counted.append(np.sort(yw[mask][:, 0]).astype(int))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    expected_train = np.concatenate([o + np.arange(k) for o, k in zip(offsets, n_train,
                                                                      strict=True)])
    expected_valid = np.setdiff1d(np.arange(n), expected_train)
    assert_array_equal(counted[0], expected_train)
    assert_array_equal(counted[1], expected_valid)


def test_window_warm_up_stays_in_its_sequence():
    rows = np.arange(12.0)[:, None]
    Xw, yw = make_windows(rows, rows, np.array([6, 6]), np.array([0, 0]),
                          np.array([6, 6]), bptt=3, warm_up=2)
    # The second sequence's first window starts at its own first row, not in sequence 0.
    assert Xw[2, 0, 0] == 6.0
    assert_array_equal(Xw[1, :, 0], [1, 2, 3, 4, 5])
    assert np.isnan(yw[1, :2]).all()


def test_deterministic_under_random_state(inputs_data):
    X, y = inputs_data
    a = ElmanRNNRegressor(3, **FAST).fit(X, y)
    b = ElmanRNNRegressor(3, **FAST).fit(X, y)
    c = ElmanRNNRegressor(3, **{**FAST, "random_state": 1}).fit(X, y)
    assert_array_equal(a.W_hh_, b.W_hh_)
    assert_array_equal(a.predict(X), b.predict(X))
    assert not np.array_equal(a.W_hh_, c.W_hh_)


@pytest.mark.parametrize("random_state", [0, None])
def test_global_random_states_untouched(inputs_data, random_state):
    X, y = inputs_data
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    threads = torch.get_num_threads()
    ElmanRNNRegressor(2, **{**FAST, "max_epochs": 2, "random_state": random_state}).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]
    assert torch.get_num_threads() == threads


def test_pickle_round_trip(fitted, inputs_data):
    X, _ = inputs_data
    clone = pickle.loads(pickle.dumps(fitted))
    assert_array_equal(clone.predict(X), fitted.predict(X))
    assert_array_equal(clone.hidden_states(X), fitted.hidden_states(X))


def test_feature_names(inputs_data):
    pd = pytest.importorskip("pandas")
    X, y = inputs_data
    frame = pd.DataFrame(X, columns=["u", "v"])
    rnn = ElmanRNNRegressor(2, **{**FAST, "max_epochs": 1}).fit(frame, y)
    assert list(rnn.feature_names_in_) == ["u", "v"]
    assert np.isfinite(rnn.score(frame, y))


def test_output_shape_follows_y(inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(2, **{**FAST, "max_epochs": 1}).fit(X, y[:, 0])
    assert rnn.predict(X).shape == (X.shape[0],)
    assert rnn.W_hy_.shape == (1, 2)


def test_no_inputs():
    y = np.sin(np.arange(200) * 0.3)
    rnn = ElmanRNNRegressor(2, **{**FAST, "max_epochs": 2}).fit(np.zeros((200, 0)), y)
    assert rnn.predict(np.zeros((10, 0))).shape == (10,)
    assert rnn.W_xh_.shape == (2, 0)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"bptt": 0}, "bptt"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_parameters(inputs_data, params, match):
    X, y = inputs_data
    with pytest.raises(ValueError, match=match):
        ElmanRNNRegressor(**params).fit(X, y)


def test_bad_data(fitted, inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(2, **FAST)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rnn.fit(X_nan, y)
    with pytest.raises(ValueError, match="lengths sum"):
        rnn.fit(X, y, lengths=[10, 10])
    with pytest.raises(ValueError, match="only NaN"):
        rnn.fit(X, np.full_like(y, np.nan))
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :1])
    with pytest.raises(NotFittedError):
        ElmanRNNRegressor().predict(X)


def test_no_training_target_left(inputs_data):
    X, y = inputs_data
    y = y.copy()
    y[:200] = np.nan
    with pytest.raises(ValueError, match="lower validation_fraction"):
        ElmanRNNRegressor(2, **{**FAST, "validation_fraction": 0.5}).fit(X, y)


def test_diverging_fit_raises_and_leaves_no_fitted_state(inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(3, nonlinearity="linear", lr=1e4, lr_schedule="constant",
                            **{**FAST, "max_epochs": 30})
    with pytest.raises(ValueError, match="diverged.*Lower the learning rate"):
        rnn.fit(X, y * 1e3)
    with pytest.raises(NotFittedError):
        check_is_fitted(rnn)
    assert not hasattr(rnn, "n_features_in_")


def test_verbose(inputs_data, capsys):
    X, y = inputs_data
    ElmanRNNRegressor(2, **{**FAST, "max_epochs": 2}).fit(X, y)
    assert capsys.readouterr().out == ""
    ElmanRNNRegressor(2, verbose=1, **{**FAST, "max_epochs": 2}).fit(X, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out


def test_skorch_callbacks_and_history(inputs_data):
    X, y = inputs_data
    # threshold=1 demands an impossible improvement: training stops after `patience`.
    stopper = EarlyStopping(patience=2, threshold=1.0)
    rnn = ElmanRNNRegressor(2, callbacks=[stopper], **{**FAST, "max_epochs": 50}).fit(X, y)
    assert len(rnn.history_) == 3
    assert rnn.history_ is rnn.net_.history
    assert "valid_loss" in rnn.history_[-1]
    assert rnn.get_params()["callbacks"][0] is stopper


def test_restarts_keep_the_best(inputs_data):
    X, y = inputs_data
    lengths = np.array([len(X)])
    n_train = split_rows(lengths, 0.2)
    windows = dict(bptt=20, warm_up=5)
    train = make_windows(X, y, lengths, np.array([0]), n_train, **windows)
    valid = make_windows(X, y, lengths, n_train, lengths, **windows)
    kwargs = dict(train=train, valid=valid, y_scale=None, optimizer="adam", lr=0.01,
                  lr_schedule="constant", max_epochs=2, batch_size=8, callbacks=None,
                  net_params=None, device="cpu", verbose=0,
                  module_params=dict(n_features=2, n_targets=2, hidden_size=3,
                                     nonlinearity="tanh"))
    seeds = [3, 4, 5]
    single = [fit_restarts([s], **kwargs)[1] for s in seeds]
    net, loss = fit_restarts(seeds, **kwargs)
    assert loss == min(single)
    assert len(set(single)) == 3


def test_n_init_runs_restarts(inputs_data):
    X, y = inputs_data
    one = ElmanRNNRegressor(2, n_init=1, **FAST).fit(X, y)
    three = ElmanRNNRegressor(2, n_init=3, **FAST).fit(X, y)
    # The first restart of n_init=3 is the n_init=1 fit, so the best can only be better.
    assert _seeds(0, 3)[0] == _seeds(0, 1)[0]
    assert three.loss_ <= one.loss_


def test_state_space_linear_is_exact(inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(3, nonlinearity="linear", **FAST).fit(X, y)
    A, B, C, D = rnn._state_space()
    assert A is rnn.W_hh_ and B is rnn.W_xh_ and C is rnn.W_hy_
    assert_array_equal(D, np.zeros((2, 2)))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_state_space_trajectory_jacobian_matches_autograd(inputs_data, nonlinearity):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(3, nonlinearity=nonlinearity, **FAST).fit(X, y)
    X = X[:6]
    W = {k: torch.tensor(getattr(rnn, k + "_")) for k in ("W_hh", "W_xh", "b_h")}
    sigma = torch.tanh if nonlinearity == "tanh" else torch.relu
    H = torch.tensor(rnn.hidden_states(X))
    A_sum, B_sum = 0, 0
    for t in range(len(X)):
        h_prev = H[t - 1] if t else torch.zeros(3, dtype=torch.float64)
        x = torch.tensor(X[t])

        def step(h, x):
            return sigma(W["W_hh"] @ h + W["W_xh"] @ x + W["b_h"])

        J_h, J_x = torch.autograd.functional.jacobian(step, (h_prev, x))
        A_sum, B_sum = A_sum + J_h, B_sum + J_x
    A, B, C, _ = rnn._state_space(X, linearization="trajectory")
    assert_allclose(A, A_sum.numpy() / len(X), atol=1e-5)
    assert_allclose(B, B_sum.numpy() / len(X), atol=1e-5)
    assert C is rnn.W_hy_
    with pytest.raises(ValueError, match="X is needed"):
        rnn._state_space()
    with pytest.raises(ValueError, match="linearization"):
        rnn._state_space(X, linearization="mean")


def test_state_space_fixed_point(inputs_data):
    from scipy.optimize import fsolve

    X, y = inputs_data
    rnn = ElmanRNNRegressor(3, nonlinearity="tanh", **FAST).fit(X, y)
    for X_arg, x_bar in ((X, X.mean(axis=0)), (None, np.zeros(2))):
        drive = rnn.W_xh_ @ x_bar + rnn.b_h_
        h_star = fsolve(lambda h, d=drive: h - np.tanh(rnn.W_hh_ @ h + d), np.zeros(3),
                        xtol=1e-12)
        slope = 1 - np.tanh(rnn.W_hh_ @ h_star + drive) ** 2
        A, B, _, _ = rnn._state_space(X_arg, linearization="fixed_point")
        assert_allclose(A, slope[:, None] * rnn.W_hh_, atol=1e-8)
        assert_allclose(B, slope[:, None] * rnn.W_xh_, atol=1e-8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device(inputs_data):
    X, y = inputs_data
    gpu = ElmanRNNRegressor(3, device="cuda", **FAST).fit(X, y)
    assert gpu.net_.module_.W_hh.is_cuda
    assert np.all(np.isfinite(gpu.predict(X)))
