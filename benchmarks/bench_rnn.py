"""ElmanRNNRegressor against the optimum and against a plain torch training loop.

Forecasting set-up: the 4-state ``two_rotations`` system (2 outputs), ``X_t = y_{t-1}``,
T = 10,000 training steps and an independent held-out series of the same length. The
optimum one-step forecast is the Kalman filter with the true parameters; every MSE is
printed as a ratio to it. The plain loop trains the same torch module on the same windows
with the same settings, without skorch or the estimator, so the time ratio is the price of
the scikit-learn/skorch layer. Input-driven set-up: white-noise inputs, small process
noise; the linear RNN's ``W_hh_`` eigenvalues against the true ``A``'s.

Run: ``python benchmarks/bench_rnn.py`` (about 3 minutes on 2 idle cores).
"""

import argparse
import time

import numpy as np
import torch
from scipy import linalg

from skkalman import ElmanRNNRegressor
from skkalman._rnn.data import make_windows, split_rows
from skkalman._rnn.module import ElmanRNN, MaskedMSELoss
from skkalman.datasets import lagged_targets, make_lds
from skkalman.metrics import eigenvalue_error

N_TRAIN = 10_000


def forecasting_data(seed):
    _, y, system = make_lds(system="two_rotations", n_samples=2 * (N_TRAIN + 1),
                            lengths=[N_TRAIN + 1, N_TRAIN + 1], random_state=seed)
    X, y, lengths = lagged_targets(y, lengths=system.lengths)
    n = lengths[0]
    return (X[:n], y[:n]), (X[n:], y[n:]), system


def optimal_forecast(system, y):
    """One-step forecasts E[y_t | y_1..t-1] of the true model (skkalman's if available)."""
    try:
        from skkalman import KalmanFilterRegressor

        kf = KalmanFilterRegressor.from_params(**system.params)
        return kf.forecast(np.zeros((y.shape[0], 0)), y), "KalmanFilterRegressor"
    except (ImportError, AttributeError, NotImplementedError):
        pass
    # Steady-state Kalman filter: P is the stationary one-step prediction covariance.
    A, C, Q, R = system.A, system.C, system.Q, system.R
    P = linalg.solve_discrete_are(A.T, C.T, Q, R)
    K = P @ C.T @ np.linalg.inv(C @ P @ C.T + R)
    s = system.initial_state_mean.copy()
    out = np.empty_like(y)
    for t in range(y.shape[0]):
        out[t] = C @ s
        s = A @ (s + K @ (y[t] - out[t]))
    return out, "inline steady-state Kalman filter"


def plain_torch_fit(X, y, *, hidden_size, nonlinearity, max_epochs, lr, batch_size, bptt,
                    warm_up, validation_fraction, seed):
    """The same training as ElmanRNNRegressor's, as a bare torch loop (no validation pass)."""
    lengths = np.array([X.shape[0]])
    n_train = split_rows(lengths, validation_fraction)
    Xw, yw = make_windows(X, y, lengths, np.zeros_like(lengths), n_train, bptt=bptt,
                          warm_up=warm_up)
    Xw, yw = torch.from_numpy(Xw), torch.from_numpy(yw)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = ElmanRNN(X.shape[1], y.shape[1], hidden_size, nonlinearity,
                          x_mean=X.mean(0), x_scale=X.std(0), y_mean=y.mean(0),
                          y_scale=y.std(0))
    criterion = MaskedMSELoss(y.std(0))
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)
    for _ in range(max_epochs):
        for idx in torch.randperm(len(Xw), generator=generator).split(batch_size):
            opt.zero_grad()
            loss = criterion(module(Xw[idx]), yw[idx])
            loss.backward()
            opt.step()
        schedule.step()
    with torch.no_grad():
        return module.eval()


def mse_ratio(pred, y, optimum):
    return np.mean((pred - y) ** 2) / optimum


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()
    # Both paths train on one thread (the estimator does so for small networks itself).
    torch.set_num_threads(1)
    # Pay torch's one-off imports (the optimizers load torch._dynamo) before timing.
    _, y_warm, _ = make_lds(n_samples=50, random_state=0)
    ElmanRNNRegressor(2, max_epochs=1).fit(np.zeros((50, 1)), y_warm)

    (X, y), (X_test, y_test), system = forecasting_data(args.seed)
    best, source = optimal_forecast(system, y_test)
    optimum = np.mean((best - y_test) ** 2)
    print(f"optimum (true-parameter Kalman forecast, {source}): held-out MSE {optimum:.5f}")
    print(f"predicting the last value: {mse_ratio(X_test, y_test, optimum):.3f} x optimum")

    rows = []
    for nonlinearity, hidden_size in (("linear", 4), ("tanh", 4), ("tanh", 8)):
        rnn = ElmanRNNRegressor(hidden_size, nonlinearity=nonlinearity,
                                random_state=args.seed)
        start, cpu = time.perf_counter(), time.process_time()
        rnn.fit(X, y)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        ratio = mse_ratio(rnn.predict(X_test), y_test, optimum)
        rows.append((f"skorch {nonlinearity} h={hidden_size}", ratio, seconds))
        if not args.skip_plain and hidden_size == 4:
            params = {k: rnn.get_params()[k] for k in (
                "max_epochs", "lr", "batch_size", "bptt", "warm_up", "validation_fraction")}
            start, plain_cpu = time.perf_counter(), time.process_time()
            module = plain_torch_fit(X, y, hidden_size=hidden_size,
                                     nonlinearity=nonlinearity, seed=args.seed, **params)
            plain_seconds = time.perf_counter() - start
            plain_cpu = time.process_time() - plain_cpu
            with torch.no_grad():
                pred = module(torch.from_numpy(X_test.astype(np.float32))[None])[0].numpy()
            rows.append((f"plain torch {nonlinearity} h={hidden_size}",
                         mse_ratio(pred, y_test, optimum), plain_seconds))
            # CPU time is the steadier measure when other processes share the cores.
            print(f"  {nonlinearity} skorch / plain torch time: wall "
                  f"{seconds / plain_seconds:.2f}, CPU {cpu / plain_cpu:.2f}")

    print("\nforecasting, held-out one-step MSE / optimum, training seconds")
    for name, ratio, seconds in rows:
        print(f"  {name:28s} {ratio:8.4f} {seconds:7.1f} s")

    # Input-driven: X = white-noise inputs; the optimum is the true model's E[y_t | x_1..t].
    X, y, system = make_lds(system="two_rotations", n_inputs=2, n_samples=2 * N_TRAIN,
                            lengths=[N_TRAIN, N_TRAIN], process_noise=0.01,
                            random_state=args.seed)
    (X, X_test), (y, y_test) = np.split(X, 2), np.split(y, 2)
    from skkalman import KalmanFilterRegressor

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
        if nonlinearity == "linear":
            error = eigenvalue_error(rnn.W_hh_, system.A)
            print(f"    eigenvalue error of W_hh_: {error:.4f} (target < 0.02)")
            print("    true:   ", np.round(np.sort_complex(system.eigenvalues), 3))
            print("    learned:", np.round(np.sort_complex(np.linalg.eigvals(rnn.W_hh_)), 3))


if __name__ == "__main__":
    main()
