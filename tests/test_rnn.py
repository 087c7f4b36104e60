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
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from skorch.callbacks import EarlyStopping

from skkalman import ElmanRNNRegressor
from skkalman._rnn.activations import ACTIVATIONS
from skkalman._rnn.data import make_windows, split_rows, whole_sequences
from skkalman._rnn.module import ElmanRNN, MaskedMSELoss
from skkalman._rnn.training import (
    CarryStates,
    PlateauStopping,
    RecordStability,
    SequenceNet,
    into_linear_range,
)
from skkalman._sklearn_compat import check_is_fitted
from skkalman.datasets import lagged_targets, make_lds
from skkalman.metrics import _observed_r2_score

# Small data train to a plateau within a few epochs; tol=1e-3 keeps the count low, and one
# start (n_init="auto" would give linear networks four) keeps each fit to one training.
FAST = dict(max_epochs=40, tol=1e-3, n_iter_no_change=2, n_init=1, random_state=0)


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
    rnn = ElmanRNNRegressor(4, nonlinearity="linear", **FAST).fit(X, y, lengths)
    assert rnn.loss_ in rnn.history_[:, "valid_loss"]
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


def test_sequences_start_at_rest_for_odd_activations(fitted, inputs_data):
    """tanh and linear: b_h = 0 on standardized inputs, so the zero start is the resting
    state and a constant input at the training mean gives a constant output at once."""
    X, _ = inputs_data
    at_mean = fitted.predict(np.tile(X.mean(axis=0), (30, 1)))
    if fitted.nonlinearity == "relu":
        assert fitted.net_.module_.b_h.requires_grad
        assert not np.allclose(at_mean, at_mean[0])
    else:
        assert_allclose(fitted.b_h_, -fitted.W_xh_ @ X.mean(axis=0), atol=1e-12)
        assert_allclose(at_mean, np.broadcast_to(at_mean[0], at_mean.shape), atol=1e-12)


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
    module = ElmanRNN(3, 2, 5, "linear")
    for T in (1, 2, 7, 50, 333):
        X, h0 = torch.randn(4, T, 3), torch.randn(4, 5)
        h, hs = h0, []
        for t in range(T):
            h = h @ module.W_hh.T + X[:, t] @ module.W_xh.T + module.b_h
            hs.append(h)
        assert_allclose(module.run(X, h0)[1].detach(), torch.stack(hs, 1).detach(),
                        atol=1e-5)


def test_nan_targets_are_masked_out_of_loss_and_gradient():
    torch.manual_seed(0)
    module = ElmanRNN(2, 2, 3, "tanh")
    params = list(module.parameters())
    X = torch.randn(3, 10, 2)
    y = torch.randn(3, 10, 2)
    missing = torch.rand(3, 10, 2) < 0.3
    criterion = MaskedMSELoss()

    def loss_and_grads(target):
        module.zero_grad()
        pred = module(X)
        pred.retain_grad()
        loss = criterion(pred, target)
        loss.backward()
        return loss, [p.grad.clone() for p in params], pred.grad

    loss, grads, pred_grad = loss_and_grads(torch.where(missing, torch.nan, y))
    # Reference: the loss written over the observed entries only.
    module.zero_grad()
    error = module(X) - y
    reference = error[~missing].square().mean()
    reference.backward()
    assert torch.isclose(loss, reference)
    for g, p in zip(grads, params, strict=True):
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
       bptt=st.one_of(st.none(), st.integers(1, 12)),
       fraction=st.sampled_from([0.0, 0.2, 0.5]))
def test_windows_chain_the_training_rows_and_validation_counts_the_rest(lengths, bptt,
                                                                        fraction):
    lengths = np.array(lengths)
    n = lengths.sum()
    rows = np.arange(n, dtype=float)[:, None]
    n_train = split_rows(lengths, fraction)
    windows = make_windows(rows, rows, lengths, n_train, bptt)
    mask = ~np.isnan(windows.y[..., 0])
    # A counted target sits at its own input row, and windows are filled from the start.
    assert_array_equal(windows.y[mask], windows.X[mask])
    assert_array_equal(mask.sum(axis=1) - 1, windows.last)
    assert np.all(mask == (np.arange(windows.X.shape[1]) <= windows.last[:, None]))
    # Following `previous` from each sequence's first window runs its training rows in
    # order: the chain covers every training row once, and no sequence's rows mix.
    offsets = np.cumsum(lengths) - lengths
    expected = [o + np.arange(k) for o, k in zip(offsets, n_train, strict=True)]
    firsts = np.flatnonzero(windows.previous == -1)
    assert len(firsts) == len(lengths)
    for first, rows_of_sequence in zip(firsts, expected, strict=True):
        chain, j = [], first
        while j is not None:
            chain.append(windows.y[j][mask[j], 0])
            successors = np.flatnonzero(windows.previous == j)
            j = successors[0] if successors.size else None
        assert_array_equal(np.concatenate(chain), rows_of_sequence)
    # Validation runs whole sequences and counts exactly the held-out rows.
    X_seq, y_seq = whole_sequences(rows, rows, lengths, n_train)
    counted = y_seq[~np.isnan(y_seq)]
    assert_array_equal(np.sort(counted), np.setdiff1d(np.arange(n),
                                                      np.concatenate(expected)))
    for i, (o, k) in enumerate(zip(offsets, lengths, strict=True)):
        assert_array_equal(X_seq[i, :k, 0], o + np.arange(k))


def test_carried_states_converge_to_the_whole_sequence_run():
    torch.manual_seed(0)
    module = ElmanRNN(2, 1, 3, "tanh", dtype=torch.float64).eval()
    X = np.random.default_rng(0).standard_normal((23, 2))
    windows = make_windows(X, np.zeros((23, 1)), np.array([23]), np.array([23]), 5)
    dataset = type("Data", (), {})()
    dataset.X = {"X": torch.from_numpy(windows.X),
                 "h0": torch.zeros(len(windows.X), 3, dtype=torch.float64)}
    net = type("Net", (), {"module_": module})()
    carry = CarryStates(windows.previous, windows.last)
    # Each refresh moves exact states one window further: after as many refreshes as
    # windows, every window starts from the state of the whole sequence run through.
    for _ in range(len(windows.X)):
        carry.on_epoch_begin(net, dataset_train=dataset)
    with torch.no_grad():
        _, h = module.run(torch.from_numpy(X)[None])
    assert_allclose(dataset.X["h0"][1:], h[0, 4:20:5], atol=1e-6)
    assert torch.all(dataset.X["h0"][0] == 0)


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
    ElmanRNNRegressor(2, **{**FAST, "random_state": random_state}).fit(X, y)
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
    rnn = ElmanRNNRegressor(2, **FAST).fit(frame, y)
    assert list(rnn.feature_names_in_) == ["u", "v"]
    assert np.isfinite(rnn.score(frame, y))


def test_output_shape_follows_y(inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(2, **FAST).fit(X, y[:, 0])
    assert rnn.predict(X).shape == (X.shape[0],)
    assert rnn.W_hy_.shape == (1, 2)


@pytest.mark.parametrize("nonlinearity", ["linear", "tanh", "relu"])
def test_no_inputs(nonlinearity):
    y = np.sin(np.arange(200) * 0.3)
    rnn = ElmanRNNRegressor(2, nonlinearity=nonlinearity, **FAST).fit(np.zeros((200, 0)), y)
    assert rnn.predict(np.zeros((10, 0))).shape == (10,)
    assert rnn.W_xh_.shape == (2, 0)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"bptt": 0}, "bptt"),
        ({"tol": -1.0}, "tol"),
        ({"n_iter_no_change": 0}, "n_iter_no_change"),
        ({"optimizer": "newton"}, "optimizer"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"lr": -1.0}, "lr"),
        ({"init": "zeros"}, "init"),
        ({"init": "linear", "nonlinearity": "relu"}, "init='linear'.*relu"),
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
    rnn = ElmanRNNRegressor(3, nonlinearity="linear", optimizer="sgd", lr=1e4, batch_size=4,
                            bptt=20, **FAST)
    with pytest.raises(ValueError, match="diverged.*Lower the learning rate"):
        rnn.fit(X, y * 1e3)
    with pytest.raises(NotFittedError):
        check_is_fitted(rnn)
    assert not hasattr(rnn, "n_features_in_")


def test_verbose(inputs_data, capsys):
    X, y = inputs_data
    ElmanRNNRegressor(2, **FAST).fit(X, y)
    assert capsys.readouterr().out == ""
    ElmanRNNRegressor(2, verbose=1, **FAST).fit(X, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out and "Stopping" in out


def test_skorch_callbacks_and_history(inputs_data):
    X, y = inputs_data
    # threshold=1 demands an impossible improvement: training stops after `patience`,
    # before the estimator's own plateau rule (n_iter_no_change=5) says it converged.
    stopper = EarlyStopping(patience=2, threshold=1.0)
    rnn = ElmanRNNRegressor(2, callbacks=[stopper], **{**FAST, "n_iter_no_change": 5})
    with pytest.warns(ConvergenceWarning, match="before its validation loss reached a "
                                                "plateau"):
        rnn.fit(X, y)
    assert len(rnn.history_) == 3 and not rnn.converged_
    assert rnn.history_ is rnn.net_.history
    assert "valid_loss" in rnn.history_[-1]
    assert rnn.get_params()["callbacks"][0] is stopper


def test_plateau_rule_converged(inputs_data):
    X, y = inputs_data
    # tol=1 asks each epoch to remove the whole of the best loss, which none can: only the
    # first epoch sets a reference, and training ends after 1 + n_iter_no_change epochs.
    rnn = ElmanRNNRegressor(2, **{**FAST, "tol": 1.0, "n_iter_no_change": 3}).fit(X, y)
    assert len(rnn.history_) == 4 and rnn.converged_
    assert rnn.loss_ in rnn.history_[:, "valid_loss"]
    # loss_ is the validation loss of the weights kept.
    n_train = split_rows(np.array([len(X)]), 0.2)[0]
    pred = rnn.predict(X)
    scale = np.std(y, axis=0)
    held_out = np.mean(((pred[n_train:] - y[n_train:]) / scale) ** 2)
    assert held_out == pytest.approx(rnn.loss_, rel=1e-5)


def _run_plateau(epochs):
    """PlateauStopping over (spectral radius, validation loss) epochs of a linear net."""
    from skorch.history import History

    module = ElmanRNN(1, 1, 2, "linear")
    net = type("Net", (), {})()
    net.history, net.module_ = History(), module
    plateau, record = PlateauStopping(n_iter_no_change=10).initialize(), RecordStability()
    for radius, loss in epochs:
        with torch.no_grad():
            module.W_hh.copy_(radius * torch.eye(2))
        net.history.new_epoch()
        net.history.record("valid_loss", loss)
        record.on_epoch_end(net)
        plateau.on_epoch_end(net)
    plateau.on_train_end(net)
    return plateau, net


def test_last_epoch_kept_unless_overfit_or_unstable():
    # Within 1% of the lowest loss: the last epoch (the converged optimum) is kept.
    plateau, net = _run_plateau([(0.5, 1.0), (0.6, 0.800), (0.7, 0.805)])
    assert plateau.kept_loss_ == 0.805 and torch.equal(net.module_.W_hh, 0.7 * torch.eye(2))
    # Beyond it: overfit, the best epoch is restored.
    plateau, net = _run_plateau([(0.5, 1.0), (0.6, 0.800), (0.7, 0.9)])
    assert plateau.kept_loss_ == 0.8 and torch.equal(net.module_.W_hh, 0.6 * torch.eye(2))
    # A stable epoch wins over a lower unstable one, and over an unstable last one.
    plateau, net = _run_plateau([(0.5, 1.0), (1.5, 0.5), (0.9, 0.8), (1.2, 0.801)])
    assert net.history[:, "stable"] == [True, False, True, False]
    assert plateau.kept_loss_ == 0.8 and plateau.kept_stable_
    assert torch.equal(net.module_.W_hh, 0.9 * torch.eye(2))


def test_convergence_warning_when_still_improving(inputs_data):
    X, y = inputs_data
    with pytest.warns(ConvergenceWarning, match="raise max_epochs"):
        rnn = ElmanRNNRegressor(3, **{**FAST, "max_epochs": 2}).fit(X, y)
    assert not rnn.converged_ and len(rnn.history_) == 2


def test_defaults_reach_a_plateau_quietly(inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(3, nonlinearity="linear", random_state=0).fit(X, y)
    assert rnn.converged_ and len(rnn.history_) < rnn.max_epochs


def test_restarts_keep_the_best(inputs_data, monkeypatch):
    import skkalman.rnn

    X, y = inputs_data
    seeds = [3, 4, 5]
    single = []
    for seed in seeds:
        monkeypatch.setattr(skkalman.rnn, "_seeds", lambda random_state, n, s=seed: [s])
        single.append(ElmanRNNRegressor(3, init="random", **FAST).fit(X, y).loss_)
    monkeypatch.setattr(skkalman.rnn, "_seeds", lambda random_state, n: seeds)
    best = ElmanRNNRegressor(3, init="random", **{**FAST, "n_init": 3}).fit(X, y)
    assert len(set(single)) == 3
    assert best.loss_ == min(single)
    assert best.loss_ in best.history_[:, "valid_loss"]


def test_n_init_runs_restarts(inputs_data):
    from skkalman.rnn import _seeds

    X, y = inputs_data
    one = ElmanRNNRegressor(2, **FAST).fit(X, y)
    three = ElmanRNNRegressor(2, **{**FAST, "n_init": 3}).fit(X, y)
    # The first restart of n_init=3 is the n_init=1 fit, so the best can only be better.
    assert _seeds(0, 3)[0] == _seeds(0, 1)[0]
    assert three.loss_ <= one.loss_


# A tanh network's one start is a linear network's answer (init="auto"), itself the better of
# two starts.
@pytest.mark.parametrize("nonlinearity, n_starts",
                         [("linear", [4]), ("tanh", [1, 2]), ("relu", [1])])
def test_auto_restarts(inputs_data, monkeypatch, nonlinearity, n_starts):
    import skkalman.rnn

    drawn = []
    seeds = skkalman.rnn._seeds

    def spy(random_state, n_init):
        drawn.append(n_init)
        return seeds(random_state, n_init)

    monkeypatch.setattr(skkalman.rnn, "_seeds", spy)
    X, y = inputs_data
    ElmanRNNRegressor(2, nonlinearity=nonlinearity, **{**FAST, "n_init": "auto"}).fit(X, y)
    assert drawn == n_starts


@pytest.mark.parametrize("noise", [3.0, 1e-4])
def test_into_linear_range_keeps_the_linear_networks_loss_and_dynamics(noise):
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        linear = ElmanRNN(2, 1, 3, "linear", dtype=torch.float64)
    X = torch.randn(2, 400, 2, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = linear(X) + noise * torch.randn(2, 400, 1, generator=gen, dtype=torch.float64)
    y[0, :5] = float("nan")
    weights = into_linear_range(linear, "tanh", X, y)
    tanh = ElmanRNN(2, 1, 3, "tanh", dtype=torch.float64)
    with torch.no_grad():
        for name, value in weights.items():
            getattr(tanh, name).copy_(value)
        loss, reference = MaskedMSELoss()(tanh(X), y), MaskedMSELoss()(linear(X), y)
        pre = tanh.run(X)[1].arctanh()
    assert loss <= reference * (1 + 1e-3)
    # The start leaves the linear range as far as the data let it: at noise 3 the first
    # scale tried already fits (pre-activations of root mean square 0.5); with a
    # nearly exact linear fit it must go much further in.
    rms = pre.square().mean(dim=(0, 1)).sqrt().max()
    assert (rms > 0.3) if noise == 3.0 else (rms < 0.05)
    assert_allclose(np.sort_complex(np.linalg.eigvals(weights["W_hh"].numpy())),
                    np.sort_complex(np.linalg.eigvals(linear.W_hh.detach().numpy())),
                    atol=1e-12)


def test_linear_start_reaches_what_a_random_start_misses():
    # A nearly noise-free input-driven system: from random weights a tanh network stops
    # on a plateau; from the linear network's answer it keeps the linear optimum.
    X, y, _ = make_lds(system="random", n_inputs=1, n_samples=3000, random_state=3)
    auto = ElmanRNNRegressor(4, random_state=0).fit(X, y)
    random = ElmanRNNRegressor(4, init="random", random_state=0).fit(X, y)
    linear = ElmanRNNRegressor(4, nonlinearity="linear", random_state=0).fit(X, y)
    assert auto.converged_
    assert auto.loss_ < 0.8 * random.loss_
    assert auto.loss_ < 1.01 * linear.loss_


def test_auto_restarts_end_when_two_agree(inputs_data, monkeypatch):
    import skkalman._rnn.training as training

    trained = []

    class Counting(SequenceNet):
        def fit(self, X, y=None, **kwargs):
            trained.append(self)
            return super().fit(X, y, **kwargs)

    monkeypatch.setattr(training, "SequenceNet", Counting)
    X, y = inputs_data
    params = dict(nonlinearity="linear", max_epochs=60, random_state=0)
    auto = ElmanRNNRegressor(2, **params).fit(X, y)
    losses = [net.history_[-1, "valid_loss"] for net in trained]
    # Every start of this small problem reaches the same optimum: two are enough.
    assert len(trained) == 2
    assert abs(losses[1] - losses[0]) <= 1e-3 * min(losses)
    trained.clear()
    four = ElmanRNNRegressor(2, **params, n_init=4).fit(X, y)
    assert len(trained) == 4
    assert four.loss_ <= auto.loss_


def test_skorch_routing_reaches_module_and_optimizer(inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(2, net_params={"module__spectral_radius": 0.5,
                                           "optimizer__history_size": 7}, **FAST).fit(X, y)
    assert rnn.net_.module_.spectral_radius == 0.5
    assert rnn.net_.module_.W_hh.dtype == torch.float64  # on the CPU
    assert rnn.net_.optimizer_.defaults["history_size"] == 7
    quick = {**FAST, "tol": 1.0, "n_iter_no_change": 1}
    adam = ElmanRNNRegressor(2, optimizer="adam", batch_size=4, bptt=25, **quick).fit(X, y)
    assert isinstance(adam.net_.optimizer_, torch.optim.Adam)
    assert adam.net_.optimizer_.defaults["lr"] == 0.01


def test_lbfgs_line_search_sees_a_wall_where_states_overflow():
    torch.manual_seed(0)
    net = SequenceNet(ElmanRNN, module__n_features=1, module__n_targets=1,
                      module__hidden_size=2, module__nonlinearity="linear",
                      criterion=MaskedMSELoss, optimizer=torch.optim.LBFGS,
                      train_split=None).initialize()
    X = {"X": torch.ones(1, 20, 1), "h0": torch.zeros(1, 2)}
    with torch.no_grad():
        net.module_.W_hh.fill_(1e3)  # states grow like 2000^t: float32 overflows
    step = net.train_step_single((X, torch.zeros(1, 20, 1)))
    assert step["loss"] == 1e4
    assert all(torch.all(p.grad == 0) for p in net.module_.parameters()
               if p.grad is not None)


def test_lbfgs_memory_cleared_after_a_step_that_moved_nothing():
    torch.manual_seed(0)
    net = SequenceNet(ElmanRNN, module__n_features=1, module__n_targets=1,
                      module__hidden_size=2, module__nonlinearity="linear",
                      criterion=MaskedMSELoss, optimizer=torch.optim.LBFGS,
                      optimizer__line_search_fn="strong_wolfe", train_split=None).initialize()
    batch = ({"X": torch.randn(1, 30, 1), "h0": torch.zeros(1, 2)}, torch.randn(1, 30, 1))
    net.train_step(batch)
    assert net.optimizer_.state  # a step that moved keeps its curvature memory
    # A gradient tolerance no gradient can exceed: L-BFGS returns without moving.
    net.optimizer_.param_groups[0]["tolerance_grad"] = 1e30
    net.train_step(batch)
    assert not net.optimizer_.state


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


@pytest.mark.parametrize("nonlinearity", sorted(ACTIVATIONS))
def test_activation_table_slopes_are_derivatives(nonlinearity):
    activation = ACTIVATIONS[nonlinearity]
    # Away from relu's kink, where the derivative is a convention.
    z = torch.tensor([-2.0, -0.3, 0.4, 1.7], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(activation.function(z, torch).sum(), z)
    assert_allclose(activation.slope(z, torch).detach(), grad, atol=1e-12)
    assert_allclose(activation.function(z.detach().numpy(), np),
                    activation.function(z, torch).detach().numpy(), atol=1e-12)
    assert_allclose(activation.slope(z.detach().numpy(), np), grad.numpy(), atol=1e-12)
    if activation.fused is not None:
        # The torch module's fused kernel applies the same function.
        module = ElmanRNN(1, 1, 1, nonlinearity)
        with torch.no_grad():
            module.W_hh.zero_()
            module.W_xh.fill_(1.0)
            module.b_h.zero_()
            _, h = module.run(z.detach().float().reshape(1, 4, 1))
        assert_allclose(h[0, :, 0], activation.function(z.detach().numpy(), np),
                        atol=1e-6)


@pytest.mark.parametrize("shift", [0.0, 1e8])
def test_levels_far_beyond_float32_resolution(inputs_data, shift):
    """Standardizing in float64 first: y + 1e8 and X + 1e6 fit as well as the raw data."""
    X, y = inputs_data
    base = ElmanRNNRegressor(3, nonlinearity="linear", **FAST).fit(X, y)
    shifted = ElmanRNNRegressor(3, nonlinearity="linear", **FAST).fit(X + 1e6, y + shift)
    assert shifted.score(X + 1e6, y + shift) == pytest.approx(base.score(X, y), abs=1e-3)
    assert base.score(X, y) > 0.5
    assert_allclose(shifted.predict(X + 1e6) - shift, base.predict(X), atol=1e-3)


@pytest.mark.parametrize("factor", [1e-300, 1e300])
def test_any_finite_scale(inputs_data, factor):
    X, y = inputs_data
    base = ElmanRNNRegressor(3, nonlinearity="linear", **FAST).fit(X, y)
    for X_s, y_s in ((X, y * factor), (X * factor, y)):
        rnn = ElmanRNNRegressor(3, nonlinearity="linear", **FAST).fit(X_s, y_s)
        assert rnn.score(X_s, y_s) == pytest.approx(base.score(X, y), abs=1e-3)


def test_inputs_beyond_the_networks_range_after_standardization(inputs_data):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(2, **FAST).fit(X * 1e-300, y)
    with pytest.raises(ValueError, match="beyond the torch.float64 range.*far outside the"):
        rnn.predict(X * 1e10)


@pytest.mark.parametrize("device, match", [
    ("bogus", "is not a torch device"),
    ("cuda" if not torch.cuda.is_available() else "cuda:999", "CUDA|cannot be used"),
])
def test_unusable_device(inputs_data, device, match):
    X, y = inputs_data
    rnn = ElmanRNNRegressor(2, device=device, **FAST)
    with pytest.raises(ValueError, match=match):
        rnn.fit(X, y)
    assert not hasattr(rnn, "n_features_in_")


def test_score_rule_for_missing_targets_and_weights(fitted, inputs_data):
    X, y = inputs_data
    y = y.copy()
    y[::4, 0] = np.nan
    y[10:30, 1] = np.nan
    weights = np.linspace(0.5, 2.0, len(X))
    pred = fitted.predict(X)
    assert fitted.score(X, y) == _observed_r2_score(y, pred)
    assert fitted.score(X, y, sample_weight=weights) == _observed_r2_score(
        y, pred, sample_weight=weights)
    with pytest.raises(ValueError, match="sample_weight has shape"):
        fitted.score(X, y, sample_weight=weights[:-1])
    y[:, 1] = np.nan
    with pytest.raises(ValueError, match="target 1 of y has no observed"):
        fitted.score(X, y)


@pytest.mark.slow
def test_robustness_benchmark_quick_mode(capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "bench_rnn_robustness.py"
    spec = importlib.util.spec_from_file_location("bench_rnn_robustness", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "MSE/opt median" in out and "eigenvalue error median" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device(inputs_data):
    X, y = inputs_data
    gpu = ElmanRNNRegressor(3, device="cuda", **FAST).fit(X, y)
    assert gpu.net_.module_.W_hh.is_cuda
    assert np.all(np.isfinite(gpu.predict(X)))
