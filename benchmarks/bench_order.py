"""How often DynamicsRecovery(order="auto") finds the true order of random systems.

Each random system (``make_lds(system="random")``, as in ``bench_intervals.py``) is
simulated once and fitted with ``--surplus`` more states (Kalman) or hidden units (linear
RNN) than it has; ``order="auto"`` refits every smaller size and keeps the lowest BIC.
The figures: the share of systems whose chosen order is the true one, and the shares
chosen too small and too large. The true order can be beyond what the data show (a mode
with a tiny input gain, or one hidden under the noise): a smaller choice there is the
right answer for those data, which is why the shares of both errors are printed.

Usage::

    PYTHONPATH=. python benchmarks/bench_order.py [--quick] [--n-systems 20]
        [--n-samples 2000] [--surplus 2] [--setups kalman-input,...] [--json PATH]

``--quick`` (CI, under a minute): two systems of at most two states, both models in the
forecasting set-up, 600 steps, one surplus state.
"""

import argparse
import sys
import time
import warnings
from collections import Counter

import numpy as np
from _report import Report
from bench_intervals import SETUPS as INTERVAL_SETUPS
from bench_intervals import draw_system, make_model, simulate
from scipy.linalg import LinAlgWarning
from sklearn.exceptions import ConvergenceWarning

from skkalman import DynamicsRecovery

# The Kalman model and the linear RNN; order selection for tanh networks is not measured
# here (bench_intervals' tanh set-ups are for its coverage study only).
SETUPS = tuple(setup for setup in INTERVAL_SETUPS if not setup.startswith("tanh"))


def run_setup(setup, args, table):
    differences, seconds = [], []
    for k in range(args.n_systems):
        system = draw_system(2000 + k, setup, args.max_states)
        n_states = system.A.shape[0]
        X, y, feedback = simulate(system, args.n_samples, 20_000 + k, setup)
        model = make_model(setup, n_states + args.surplus, k)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", LinAlgWarning)
            recovery = DynamicsRecovery(model, feedback_columns=feedback,
                                        order="auto").fit(X, y)
        seconds.append(time.perf_counter() - start)
        differences.append(recovery.order_ - n_states)
        print(f"  {setup} system {k}: true order {n_states}, chosen {recovery.order_} "
              f"(BIC {np.round(recovery.bic_ - recovery.bic_.min(), 1).tolist()})",
              flush=True)
    differences = np.array(differences)
    found, under, over = (np.mean(differences == 0), np.mean(differences < 0),
                          np.mean(differences > 0))
    print(f"{setup}: true order found in {found:.0%} of {len(differences)} systems, too "
          f"small in {under:.0%}, too large in {over:.0%} (chosen - true: "
          f"{dict(sorted(Counter(differences.tolist()).items()))}); "
          f"{np.median(seconds):.1f} s a selection", flush=True)
    for figure, value in (("found", found), ("too small", under), ("too large", over)):
        table.row("skkalman", f"{setup}: {figure}", value, note="share of systems")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-systems", type=int, default=20)
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--max-states", type=int, default=4)
    parser.add_argument("--surplus", type=int, default=2)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    report = Report(__file__, quick=args.quick)
    setups = args.setups.split(",")
    if args.quick:
        args.n_systems, args.n_samples, args.max_states, args.surplus = 2, 600, 2, 1
        setups = ["kalman-forecasting", "rnn-forecasting"]
    unknown = sorted(set(setups) - set(SETUPS))
    if unknown:
        parser.error(f"unknown set-ups {unknown}; choose from {SETUPS}")
    table = report.table("order", "Order chosen by order='auto' (BIC)",
                         f"{args.n_systems} random systems, T={args.n_samples}, "
                         f"1-{args.max_states} states, {args.surplus} surplus")
    for setup in setups:
        run_setup(setup, args, table)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
