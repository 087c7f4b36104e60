"""ElmanRNNRegressor's defaults against the optimal forecast, on random systems.

Systems: ``make_lds(system="random", random_state=k)`` for k = 0, 1, ... (the distribution
documented in :func:`skkalman.datasets.make_lds`: 1-6 states, 1-3 outputs, eigenvalue
moduli up to 0.99, process-to-measurement noise ratio 1e-3 to 1e2), in two set-ups:

- *forecasting*: the system has no inputs (``n_inputs=0``); the network sees the previous
  measurements, ``X_t = y_{t-1}``. The optimum is the true model's one-step forecast
  ``E[y_t | y_1..t-1]``: ``KalmanFilterRegressor.from_params(**system.params).forecast``.
- *input-driven*: white-noise inputs (``n_inputs = 1 + k % 2``) drive the system; the
  network sees the inputs only. Its optimum is therefore the true model's
  ``predict(X) = E[y_t | x_1..t]`` (the Kalman forecast, which also uses past
  measurements, is out of the network's reach).

Each series has ``n_train + n_test`` steps (one more in forecasting, for the first lag).
The network is fitted on the first ``n_train`` rows with its defaults (only
``hidden_size``, ``nonlinearity`` and ``random_state`` are set); its predictions and the
optimum both run over the whole series, and the MSE is taken on the last ``n_test`` rows.
Hidden sizes: ``n`` and ``2 n``, where ``n`` is the number of hidden units a linear network
needs to represent the optimum exactly: the number of states in forecasting, and the
number of states plus ``rank(D)`` input-driven (an Elman network's output has no direct
path from ``x_t``, so a feedthrough ``D`` costs one state at eigenvalue 0 per rank).

Printed per set-up, activation and hidden size: held-out MSE / optimum (median, 90th
percentile, worst, fraction within the target: 1.01 linear, 1.03 tanh forecasting, 1.05
tanh input-driven), fit seconds; for linear networks with ``hidden_size = n``, the error
of the recovered eigenvalues (``skkalman.metrics.eigenvalue_error``): of the closed loop
(``DynamicsRecovery(feedback_columns=...)``) in forecasting, of ``W_hh`` input-driven,
against the true ``A``'s (with ``rank(D)`` zeros). Next to it, ``--kalman`` prints the
same error of ``KalmanFilterRegressor(n)`` fitted on the same rows: many random systems
have modes that 10,000 steps do not identify, and the maximum-likelihood fit shows which.

Run: ``python benchmarks/bench_rnn_robustness.py --kalman`` (20 systems, n_train =
10,000: 160 network fits and 20 Kalman fits, about 45 minutes on two busy cores);
``--quick`` is the smoke test CI runs (seconds). ``--json PATH`` writes every row.
"""

import argparse
import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skkalman import DynamicsRecovery, ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.datasets import lagged_targets, make_lds
from skkalman.metrics import eigenvalue_error

TARGETS = {("forecasting", "linear"): 1.01, ("input_driven", "linear"): 1.01,
           ("forecasting", "tanh"): 1.03, ("input_driven", "tanh"): 1.05}


def setup_data(setup, k, n_train, n_test):
    """Training rows, the whole series, the optimal predictions and the truth."""
    if setup == "forecasting":
        _, y_raw, system = make_lds(system="random", n_inputs=0,
                                    n_samples=n_train + n_test + 1, random_state=k)
        y_raw = y_raw.reshape(len(y_raw), -1)
        oracle = KalmanFilterRegressor.from_params(**system.params)
        # The optimum sees the same past as the network: the whole series from its start.
        optimal = oracle.forecast(np.zeros((len(y_raw), 0)), y_raw).reshape(len(y_raw), -1)
        X, y, _ = lagged_targets(y_raw)
        optimal = optimal[1:]
        extra_zeros = 0
    else:
        X, y, system = make_lds(system="random", n_inputs=1 + k % 2,
                                n_samples=n_train + n_test, random_state=k)
        y = y.reshape(len(y), -1)
        oracle = KalmanFilterRegressor.from_params(**system.params)
        optimal = oracle.predict(X).reshape(len(y), -1)
        extra_zeros = int(np.linalg.matrix_rank(system.D))
    n = system.A.shape[0] + extra_zeros
    true_eigenvalues = np.concatenate([system.eigenvalues, np.zeros(extra_zeros)])
    return X, y, optimal, system, n, true_eigenvalues


def recovered_error(rnn, setup, X, y, true_eigenvalues):
    feedback = list(range(y.shape[1])) if setup == "forecasting" else None
    recovery = DynamicsRecovery(rnn, prefit=True, feedback_columns=feedback).fit(X, y)
    return eigenvalue_error(recovery.eigenvalues_, true_eigenvalues)


def run_case(setup, k, args):
    X, y, optimal, system, n, true_eig = setup_data(setup, k, args.n_train, args.n_test)
    held_out = slice(args.n_train, None)
    optimum = np.mean((optimal[held_out] - y[held_out]) ** 2)
    X_train, y_train = X[:args.n_train], y[:args.n_train]
    rows = []
    for nonlinearity in ("linear", "tanh"):
        for multiple in args.multiples:
            rnn = ElmanRNNRegressor(multiple * n, nonlinearity=nonlinearity, random_state=k,
                                    **args.rnn_params)
            tic = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                rnn.fit(X_train, y_train)
            seconds = time.perf_counter() - tic
            pred = rnn.predict(X).reshape(len(y), -1)
            row = dict(setup=setup, system=k, n=n, n_outputs=y.shape[1],
                       nonlinearity=nonlinearity, hidden_size=multiple * n,
                       multiple=multiple, seconds=seconds, epochs=len(rnn.history_),
                       converged=bool(rnn.converged_), warned=bool(caught),
                       ratio=float(np.mean((pred[held_out] - y[held_out]) ** 2) / optimum),
                       noise_ratio=float(system.Q[0, 0] / system.R[0, 0]))
            if nonlinearity == "linear" and multiple == 1:
                row["eigenvalue_error"] = recovered_error(rnn, setup, X_train, y_train,
                                                          true_eig)
                if args.kalman and setup == "forecasting":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        kf = KalmanFilterRegressor(system.A.shape[0], random_state=k).fit(
                            np.zeros((args.n_train, 0)), y_train)
                    row["kalman_eigenvalue_error"] = eigenvalue_error(kf.A_, system.A)
            rows.append(row)
            print(f"  {setup:12s} system {k:2d} n={n} {nonlinearity:6s} "
                  f"h={multiple * n:2d}: MSE/opt {row['ratio']:.4f}  "
                  + (f"eig {row['eigenvalue_error']:.4f}  " if "eigenvalue_error" in row
                     else "")
                  + (f"(Kalman MLE {row['kalman_eigenvalue_error']:.4f})  "
                     if "kalman_eigenvalue_error" in row else "")
                  + f"{seconds:5.1f} s, {row['epochs']} epochs"
                  + ("" if row["converged"] else ", not converged"), flush=True)
    return rows


def summarize(rows):
    lines = []
    for setup in ("forecasting", "input_driven"):
        for nonlinearity in ("linear", "tanh"):
            for multiple in sorted({r["multiple"] for r in rows}):
                sel = [r for r in rows if (r["setup"], r["nonlinearity"], r["multiple"])
                       == (setup, nonlinearity, multiple)]
                if not sel:
                    continue
                ratio = np.array([r["ratio"] for r in sel])
                target = TARGETS[setup, nonlinearity]
                seconds = np.array([r["seconds"] for r in sel])
                line = (f"{setup:12s} {nonlinearity:6s} hidden={multiple}n  cases {len(sel):3d}"
                        f"  MSE/opt median {np.median(ratio):.4f}  p90 "
                        f"{np.percentile(ratio, 90):.4f}  worst {ratio.max():.4f}  "
                        f"<= {target}: {np.mean(ratio <= target):.0%}  fit s median "
                        f"{np.median(seconds):.1f} max {seconds.max():.1f}  converged "
                        f"{np.mean([r['converged'] for r in sel]):.0%}")
                eig = [r["eigenvalue_error"] for r in sel if "eigenvalue_error" in r]
                if eig:
                    line += (f"\n{'':12s} {'':6s} eigenvalue error median {np.median(eig):.4f}"
                             f"  <= 0.02: {np.mean(np.array(eig) <= 0.02):.0%}")
                    kalman = [r["kalman_eigenvalue_error"] for r in sel
                              if "kalman_eigenvalue_error" in r]
                    if kalman:
                        line += (f"   (Kalman MLE: median {np.median(kalman):.4f}, <= 0.02: "
                                 f"{np.mean(np.array(kalman) <= 0.02):.0%})")
                lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 small systems")
    parser.add_argument("--n-systems", type=int, default=20)
    parser.add_argument("--first-system", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--setups", nargs="+", default=["forecasting", "input_driven"],
                        choices=["forecasting", "input_driven"])
    parser.add_argument("--kalman", action="store_true",
                        help="also fit KalmanFilterRegressor (forecasting, eigenvalues)")
    parser.add_argument("--json", help="write every row to this file")
    args = parser.parse_args(argv)
    args.multiples = (1, 2)
    args.rnn_params = {}
    if args.quick:
        args.n_systems, args.n_train, args.n_test = 2, 400, 200
        args.multiples = (1,)
        args.rnn_params = dict(max_epochs=3)
    rows = []
    for k in range(args.first_system, args.first_system + args.n_systems):
        for setup in args.setups:
            rows += run_case(setup, k, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    print("\nheld-out MSE / optimum over systems "
          f"{args.first_system}..{args.first_system + args.n_systems - 1}, "
          f"n_train={args.n_train}, n_test={args.n_test}")
    print(summarize(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
