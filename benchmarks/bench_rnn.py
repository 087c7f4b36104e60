"""ElmanRNNRegressor against the optimum and against a plain torch training loop.

Forecasting set-up: the 4-state ``two_rotations`` system (2 outputs), ``X_t = y_{t-1}``,
T = 10,000 training steps and an independent held-out series of the same length. The
optimum one-step forecast is the Kalman filter with the true parameters; every MSE is
printed as a ratio to it. For the linear network (one start, ``n_init=1``), a plain loop
trains the same torch module in float64 with the same L-BFGS settings (and the same
guard against steps into overflowing weights) for the same number of epochs (each a step
of ``max_iter`` iterations and a validation pass over the whole sequence), without
skorch or the estimator, so the time ratio is the price of the scikit-learn/skorch layer.
Input-driven set-up: white-noise inputs, small process noise; the linear RNN's ``W_hh_``
eigenvalues against the true ``A``'s.

Run: ``python benchmarks/bench_rnn.py`` (about 2 minutes on 2 idle cores); ``--quick``
is the smoke test (seconds); ``--json PATH`` writes the figures for the docs.
"""

import argparse
import time

import numpy as np
import torch
from _report import Report

from skkalman import ElmanRNNRegressor, KalmanFilterRegressor
from skkalman._rnn.module import ElmanRNN, MaskedMSELoss
from skkalman.datasets import lagged_targets, make_lds
from skkalman.metrics import eigenvalue_error


def forecasting_data(seed, n_train):
    _, y, system = make_lds(system="two_rotations", n_samples=2 * (n_train + 1),
                            lengths=[n_train + 1, n_train + 1], random_state=seed)
    X, y, lengths = lagged_targets(y, lengths=system.lengths)
    n = lengths[0]
    return (X[:n], y[:n]), (X[n:], y[n:]), system


def optimal_forecast(system, y):
    """One-step forecasts E[y_t | y_1..t-1] of the true model."""
    kf = KalmanFilterRegressor.from_params(**system.params)
    return kf.forecast(np.zeros((y.shape[0], 0)), y)


def plain_torch_fit(X, y, *, hidden_size, epochs, validation_fraction, max_iter, max_eval,
                    history_size, seed):
    """The estimator's training of a linear network as a bare torch loop."""
    n_train = len(X) - int(np.floor(validation_fraction * len(X)))
    x_mean, x_scale, y_mean, y_scale = X.mean(0), X.std(0), y.mean(0), y.std(0)
    Xs = torch.from_numpy((X - x_mean) / x_scale)[None]
    ys = torch.from_numpy((y - y_mean) / y_scale)[None]
    y_train, y_valid = ys.clone(), ys.clone()
    y_train[:, n_train:] = torch.nan
    y_valid[:, :n_train] = torch.nan
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = ElmanRNN(X.shape[1], y.shape[1], hidden_size, "linear",
                          dtype=torch.float64)
    criterion = MaskedMSELoss()
    opt = torch.optim.LBFGS(module.parameters(), lr=1.0, max_iter=max_iter,
                            max_eval=max_eval, history_size=history_size,
                            line_search_fn="strong_wolfe")
    X_train = Xs[:, :n_train]

    def closure():
        opt.zero_grad()
        loss = criterion(module(X_train), y_train[:, :n_train])
        loss.backward()
        if not loss <= 1e4:  # the estimator's wall: overflowing weights look very bad
            opt.zero_grad()
            return torch.tensor(1e4, dtype=loss.dtype)
        return loss

    for _ in range(epochs):
        opt.step(closure)
        with torch.no_grad():
            criterion(module(Xs), y_valid)

    def predict(X_new):
        with torch.no_grad():
            X_new = torch.from_numpy((X_new - x_mean) / x_scale)
            return y_mean + y_scale * module(X_new[None])[0].double().numpy()

    return predict


def mse_ratio(pred, y, optimum):
    return np.mean((pred - y) ** 2) / optimum


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    report = Report(__file__, quick=args.quick)
    n_train = 1_000 if args.quick else 10_000
    # Both paths train on one thread (the estimator does so for small networks itself).
    torch.set_num_threads(1)

    (X, y), (X_test, y_test), system = forecasting_data(args.seed, n_train)
    optimum = np.mean((optimal_forecast(system, y_test) - y_test) ** 2)
    print(f"optimum (true-parameter Kalman forecast): held-out MSE {optimum:.5f}")
    print(f"predicting the last value: {mse_ratio(X_test, y_test, optimum):.3f} x optimum")

    rows = []
    for nonlinearity, hidden_size in (("linear", 4), ("tanh", 4), ("tanh", 8)):
        rnn = ElmanRNNRegressor(hidden_size, nonlinearity=nonlinearity,
                                random_state=args.seed)
        start, cpu = time.perf_counter(), time.process_time()
        rnn.fit(X, y)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        ratio = mse_ratio(rnn.predict(X_test), y_test, optimum)
        rows.append((f"skorch {nonlinearity} h={hidden_size}", ratio, seconds,
                     len(rnn.history_)))
        if nonlinearity == "linear":
            # One start on both sides: the default n_init="auto" runs four.
            rnn = ElmanRNNRegressor(hidden_size, nonlinearity="linear", n_init=1,
                                    random_state=args.seed)
            start, cpu = time.perf_counter(), time.process_time()
            rnn.fit(X, y)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            rows.append((f"skorch {nonlinearity} h={hidden_size} n_init=1",
                         mse_ratio(rnn.predict(X_test), y_test, optimum), seconds,
                         len(rnn.history_)))
            lbfgs = rnn.net_.optimizer_.defaults
            start, plain_cpu = time.perf_counter(), time.process_time()
            predict = plain_torch_fit(
                X, y, hidden_size=hidden_size, epochs=len(rnn.history_),
                validation_fraction=rnn.validation_fraction, max_iter=lbfgs["max_iter"],
                max_eval=lbfgs["max_eval"], history_size=lbfgs["history_size"],
                seed=args.seed)
            plain_seconds = time.perf_counter() - start
            plain_cpu = time.process_time() - plain_cpu
            rows.append((f"plain torch {nonlinearity} h={hidden_size} n_init=1",
                         mse_ratio(predict(X_test), y_test, optimum), plain_seconds,
                         len(rnn.history_)))
            # CPU time is the steadier measure when other processes share the cores.
            print(f"  {nonlinearity} skorch / plain torch time: wall "
                  f"{seconds / plain_seconds:.2f}, CPU {cpu / plain_cpu:.2f}")

    print("\nforecasting, held-out one-step MSE / optimum, training seconds, epochs")
    table = report.table("forecasting", "Forecasting: held-out MSE / optimum and training "
                         "time", f"two_rotations, X_t = y_(t-1), T = {n_train:,} "
                         "(independent held-out series)")
    for name, ratio, seconds, epochs in rows:
        print(f"  {name:36s} {ratio:8.4f} {seconds:7.1f} s {epochs:4d}")
        # The plain loop's reference is the estimator's run with the same single start.
        ours = {r[0]: r for r in rows}.get(name.replace("plain torch", "skorch"))
        tool = "plain torch loop" if name.startswith("plain") else "skkalman"
        label = name.split(" ", 1)[1] if tool == "skkalman" else name.split(" ", 2)[2]
        table.row(tool, f"MSE / optimum ({label})", ratio, None if ours is None else ours[1],
                  note=f"{epochs} epochs")
        table.row(tool, f"fit seconds ({label})", seconds,
                  None if ours is None else ours[2])

    # Input-driven: X = white-noise inputs; the optimum is the true model's E[y_t | x_1..t].
    X, y, system = make_lds(system="two_rotations", n_inputs=2, n_samples=2 * n_train,
                            lengths=[n_train, n_train], process_noise=0.01,
                            random_state=args.seed)
    (X, X_test), (y, y_test) = np.split(X, 2), np.split(y, 2)
    optimum = np.mean((KalmanFilterRegressor.from_params(**system.params).predict(X_test)
                       - y_test) ** 2)
    print("\ninput-driven (X = white-noise inputs, process noise 0.01), held-out MSE / "
          "optimum (true model's predict)")
    for nonlinearity in ("linear", "tanh"):
        rnn = ElmanRNNRegressor(4, nonlinearity=nonlinearity, random_state=args.seed)
        start = time.perf_counter()
        rnn.fit(X, y)
        seconds = time.perf_counter() - start
        ratio = mse_ratio(rnn.predict(X_test), y_test, optimum)
        print(f"  {nonlinearity:6s} h=4: {ratio:7.4f} x optimum, {seconds:5.1f} s")
        driven = report.table("input_driven", "Input-driven: held-out MSE / optimum",
                              f"two_rotations, 2 white-noise inputs, T = {n_train:,}")
        driven.row("skkalman", f"MSE / optimum ({nonlinearity} h=4)", ratio)
        driven.row("skkalman", f"fit seconds ({nonlinearity} h=4)", seconds)
        if nonlinearity == "linear":
            error = eigenvalue_error(rnn.W_hh_, system.A)
            print(f"    eigenvalue error of W_hh_: {error:.4f} (target < 0.02)")
            driven.row("skkalman", "eigenvalue error of W_hh_ (linear h=4)", error)
            print("    true:   ", np.round(np.sort_complex(system.eigenvalues), 3))
            print("    learned:", np.round(np.sort_complex(np.linalg.eigvals(rnn.W_hh_)), 3))
    report.write(args.json)
    return 0


if __name__ == "__main__":
    main()
