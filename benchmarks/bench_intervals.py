"""Coverage of the eigenvalue intervals of DynamicsRecovery, by simulation.

For each set-up, ``--n-systems`` random systems are drawn (``make_lds(system="random")``,
the documented distribution) and each is simulated ``--n-reps`` times with fresh noise;
every repetition is fitted (the true number of states), its effective eigenvalues are
recovered with ``eigenvalues_cov_``, and each true eigenvalue is checked against the
nominal 95% region of its matched estimate: the ellipse ``d^T Sigma^-1 d <= 5.99``
(chi-square, 2 dof) for a complex estimate, the interval ``|d_re| <= 1.96 sd`` for a real
one (a conjugate pair counted once). The figures: the coverage of each system (median,
worst, share of systems in [0.90, 0.98]), the pooled coverage, and the ratio of the
predicted to the empirical standard deviation of the estimates (1 is right).

Set-ups: the Kalman model, the linear RNN and the tanh RNN, each input-driven (``X`` =
known inputs) and forecasting (``X_t = y_{t-1}``, ``feedback_columns``; the truth is the
system's ``A``); the Kalman model also models the series alone (``kalman-series``: no
inputs and no feedback, ``X`` of zero columns, the forecasting set-up's systems), where
it learns the modes from the noise's autocorrelation. A tanh network's eigenvalues are
those of its linearization along the trajectory (``DynamicsRecovery``'s default), whose
regions carry the slopes' dependence on the weights; on data from a linear system its
truth is ``A`` too. The Kalman set-ups' regions come from the observed information
(``uncertainty="asymptotic"``), the RNNs' from the Gauss-Newton sandwich; the
``...-bootstrap`` set-ups fit the same draws and take the bootstrap's regions instead
(``uncertainty="bootstrap"``, ``--n-bootstrap`` refits on ``--n-jobs`` processes: the
Kalman model's parametric bootstrap, the RNNs' residual one).
They are not among the defaults (each fit costs ``--n-bootstrap`` fits).

Usage::

    PYTHONPATH=. python benchmarks/bench_intervals.py [--quick] [--n-systems 8]
        [--n-reps 12] [--n-samples 2000] [--first-system 1000] [--first-rep 0]
        [--setups kalman-input,...]
        [--kalman-n-init 1] [--n-bootstrap 30] [--n-jobs 1] [--json PATH]

``--first-system`` draws other systems than the page's (seeds 1000, 1001, ...), to check
a rule set on those; ``--first-rep`` starts at a later draw of each system (draw ``r`` is
the same data, and the same model seed, in every run), to add draws to an earlier run's.
``--kalman-n-init 3`` fits the Kalman set-ups with ``n_init=3`` (all three raced subspace
starts continued to their maxima) instead of the default.

Each set-up's pooled coverage is also split by ``DynamicsRecovery.weakly_identified_``:
the modes it flags as hardly shown by the data, and the others. Of the others, the 95%
intervals of ``DynamicsRecovery.mode_intervals`` are scored too: the modulus of every true
mode, the frequency (hence the period) of the oscillating ones.

``--quick`` (CI, under a minute): two systems, three repetitions, the Kalman set-ups (one
with 5 bootstrap refits) and the linear RNN forecasting at 600 steps.
"""

import argparse
import sys
import time
import warnings

import numpy as np
from _report import Report
from scipy.linalg import LinAlgWarning
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning

from skkalman import DynamicsRecovery, ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.datasets import lagged_targets, make_lds

SETUPS = ("kalman-input", "kalman-forecasting", "kalman-series", "rnn-input",
          "rnn-forecasting", "tanh-input", "tanh-forecasting")
BOOTSTRAP_SETUPS = ("kalman-input-bootstrap", "kalman-forecasting-bootstrap",
                    "kalman-series-bootstrap",
                    "rnn-input-bootstrap", "rnn-forecasting-bootstrap",
                    "tanh-input-bootstrap", "tanh-forecasting-bootstrap")
# Chi-square 95% quantiles: 2 dof for a complex eigenvalue, 1 dof for a real one.
_CHI2_95 = {2: 5.991, 1: 3.841}


def _forecasting(setup):
    return "forecasting" in setup


def _series(setup):
    return "series" in setup


def draw_system(seed, setup, max_states):
    """A random system of the set-up (inputs for input-driven, none for the others)."""
    n_inputs = 0 if _forecasting(setup) or _series(setup) else 1 + seed % 2
    rng = np.random.default_rng(seed)
    n_states = int(rng.integers(1, max_states + 1))
    # The RNN has no direct path (y_t = W_hy h_t): a D != 0 costs it n_targets more hidden
    # units, so with as many units as states it misses a mode. Its input-driven systems
    # have D = 0, which measures the intervals, not that limit.
    direct = False if setup.startswith(("rnn-input", "tanh-input")) else None
    _, _, system = make_lds(system="random", n_states=n_states, n_inputs=n_inputs,
                            direct_feedthrough=direct, n_samples=10, random_state=seed)
    return system


def simulate(system, n_samples, seed, setup):
    """``X, y, feedback_columns`` of one repetition: the same system, fresh noise."""
    rng = np.random.RandomState(seed)
    truth = KalmanFilterRegressor.from_params(**system.params)
    X = rng.standard_normal((n_samples + 1, system.B.shape[1]))
    y, _ = truth.sample(X, random_state=rng)
    y = y.reshape(len(y), -1)
    if _forecasting(setup):
        X, y, _ = lagged_targets(y)
        return X, y, list(range(y.shape[1]))
    return X[1:], y[1:], None


def make_recovery(setup, n_states, seed, feedback, args):
    model = make_model(setup, n_states, seed, args.kalman_n_init)
    if setup.endswith("bootstrap"):
        return DynamicsRecovery(model, feedback_columns=feedback, uncertainty="bootstrap",
                                n_bootstrap=args.n_bootstrap, n_jobs=args.n_jobs,
                                random_state=seed)
    return DynamicsRecovery(model, feedback_columns=feedback)


def make_model(setup, n_states, seed, kalman_n_init=1):
    if setup.startswith("kalman"):
        return KalmanFilterRegressor(n_states, n_init=kalman_n_init)
    nonlinearity = "tanh" if setup.startswith("tanh") else "linear"
    return ElmanRNNRegressor(n_states, nonlinearity=nonlinearity, random_state=seed)


def coverage_of(estimates, covariances, truth, weak=None):
    """Per true mode (a pair once): covered?, the matched estimate, its region, flagged?,
    the estimate's index."""
    rows, cols = linear_sum_assignment(np.abs(estimates[:, None] - truth[None, :]))
    results = []
    for r, c in zip(rows, cols, strict=True):
        if truth[c].imag < 0:
            continue  # its conjugate is counted
        d = np.array([estimates[r].real - truth[c].real, estimates[r].imag - truth[c].imag])
        S = covariances[r]
        if not np.all(np.isfinite(S)):
            results.append((None, c, estimates[r], S, None, r))
            continue
        if abs(estimates[r].imag) > 0:
            d2, dof = d @ np.linalg.pinv(S) @ d, 2
            if abs(d[1]) > 0 and S[1, 1] <= 0:
                d2 = np.inf
        else:
            d2, dof = (d[0] ** 2 / S[0, 0] if S[0, 0] > 0 else np.inf), 1
            if abs(truth[c].imag) > 0:
                # A real estimate of a complex pair: the region (a segment) misses it.
                d2 = np.inf
        flagged = None if weak is None else bool(weak[r])
        results.append((bool(d2 <= _CHI2_95[dof]), c, estimates[r], S, flagged, r))
    return results


def _inside(value, interval):
    return bool(interval[0] <= value <= interval[1])


def run_setup(setup, args, table):
    per_system, pooled, sd_ratios, no_interval, seconds = [], [], [], 0, []
    identified, weak = [], []  # pooled hits split by DynamicsRecovery.weakly_identified_
    # mode_intervals' 95% intervals of the modes not flagged: modulus (every mode) and
    # frequency (the oscillating ones, whose period it gives).
    modulus_hits, frequency_hits = [], []
    for k in range(args.n_systems):
        system = draw_system(args.first_system + k, setup, args.max_states)
        truth = system.eigenvalues
        hits, by_mode = [], {}
        for rep in range(args.first_rep, args.first_rep + args.n_reps):
            X, y, feedback = simulate(system, args.n_samples, 10_000 * k + rep, setup)
            recovery = make_recovery(setup, system.A.shape[0], rep, feedback, args)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                # (EM's normal equations on a nearly noise-free forecasting start)
                warnings.simplefilter("ignore", LinAlgWarning)
                recovery.fit(X, y)
            seconds.append(time.perf_counter() - start)
            modes = recovery.mode_intervals()
            for result in coverage_of(recovery.eigenvalues_, recovery.eigenvalues_cov_,
                                      truth, recovery.weakly_identified_):
                if result[0] is None:
                    no_interval += 1
                    continue
                covered, mode, estimate, S, flagged, index = result
                hits.append(covered)
                (weak if flagged else identified).append(covered)
                if not flagged:
                    modulus_hits.append(_inside(abs(truth[mode]),
                                                modes.modulus_interval[index]))
                    if truth[mode].imag != 0:
                        frequency_hits.append(_inside(abs(np.angle(truth[mode])),
                                                      modes.frequency_interval[index]))
                by_mode.setdefault(mode, []).append((estimate, S))
        for values in by_mode.values():
            if len(values) < 3:
                continue
            est = np.array([v[0] for v in values])
            predicted = np.sqrt(np.mean([np.trace(v[1]) for v in values]))
            empirical = np.sqrt(np.var(est.real, ddof=1) + np.var(est.imag, ddof=1))
            if empirical > 0:
                sd_ratios.append(predicted / empirical)
        if hits:
            per_system.append(np.mean(hits))
            pooled += hits
        print(f"  {setup} system {k} ({system.A.shape[0]} states, moduli "
              f"{np.round(np.sort(np.abs(truth))[::-1], 3).tolist()}): coverage "
              f"{np.mean(hits) if hits else float('nan'):.2f} of {len(hits)}", flush=True)
    per_system = np.array(per_system)
    summary = dict(
        median=float(np.median(per_system)) if per_system.size else np.nan,
        worst=float(per_system.min()) if per_system.size else np.nan,
        in_band=float(np.mean((per_system >= 0.9) & (per_system <= 0.98)))
        if per_system.size else np.nan,
        pooled=float(np.mean(pooled)) if pooled else np.nan,
        pooled_identified=float(np.mean(identified)) if identified else np.nan,
        pooled_weak=float(np.mean(weak)) if weak else np.nan,
        weak_share=len(weak) / len(pooled) if pooled else np.nan,
        modulus_identified=float(np.mean(modulus_hits)) if modulus_hits else np.nan,
        frequency_identified=float(np.mean(frequency_hits)) if frequency_hits else np.nan,
        sd_ratio=float(np.median(sd_ratios)) if sd_ratios else np.nan,
        sd_ratio_range=(float(np.min(sd_ratios)), float(np.max(sd_ratios)))
        if sd_ratios else (np.nan, np.nan),
        no_interval=no_interval, seconds=float(np.median(seconds)),
    )
    print(f"{setup}: per-system coverage median {summary['median']:.3f}, worst "
          f"{summary['worst']:.3f}, in [0.90, 0.98]: {summary['in_band']:.0%}; pooled "
          f"{summary['pooled']:.3f} ({len(pooled)} modes); not weakly identified "
          f"{summary['pooled_identified']:.3f} ({len(identified)}), weakly identified "
          f"{summary['pooled_weak']:.3f} ({len(weak)}); their modulus / frequency "
          f"intervals {summary['modulus_identified']:.3f} ({len(modulus_hits)}) / "
          f"{summary['frequency_identified']:.3f} ({len(frequency_hits)}); "
          f"predicted/empirical sd median "
          f"{summary['sd_ratio']:.2f} (range {summary['sd_ratio_range'][0]:.2f}-"
          f"{summary['sd_ratio_range'][1]:.2f}); modes without interval "
          f"{no_interval}; {summary['seconds']:.1f} s a fit", flush=True)
    notes = dict(sd_ratio="predicted / empirical sd",
                 weak_share="share of modes in weakly_identified_",
                 modulus_identified="mode_intervals' modulus, modes not flagged",
                 frequency_identified="mode_intervals' frequency, oscillating modes "
                                      "not flagged")
    for figure in ("median", "worst", "in_band", "pooled", "pooled_identified",
                   "pooled_weak", "weak_share", "modulus_identified",
                   "frequency_identified", "sd_ratio"):
        table.row("skkalman", f"{setup}: {figure}", summary[figure],
                  note=notes.get(figure, "coverage of nominal 95% regions"))
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-systems", type=int, default=8)
    parser.add_argument("--n-reps", type=int, default=12)
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--max-states", type=int, default=4)
    parser.add_argument("--first-rep", type=int, default=0,
                        help="first draw of each system (0: the page's)")
    parser.add_argument("--first-system", type=int, default=1000,
                        help="seed of the first system (the others follow it)")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--kalman-n-init", type=int, default=1)
    parser.add_argument("--n-bootstrap", type=int, default=30)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    report = Report(__file__, quick=args.quick)
    setups = args.setups.split(",")
    if args.quick:
        args.n_systems, args.n_reps, args.n_samples, args.max_states = 2, 3, 600, 2
        args.n_bootstrap = 5
        setups = ["kalman-input", "kalman-forecasting", "kalman-forecasting-bootstrap",
                  "rnn-forecasting"]
    unknown = sorted(set(setups) - set(SETUPS + BOOTSTRAP_SETUPS))
    if unknown:
        parser.error(f"unknown set-ups {unknown}; choose from {SETUPS + BOOTSTRAP_SETUPS}")
    table = report.table("coverage", "Coverage of the 95% eigenvalue regions",
                         f"{args.n_systems} random systems x {args.n_reps} repetitions, "
                         f"T={args.n_samples}, 1-{args.max_states} states"
                         + (f"; systems from seed {args.first_system}"
                            if args.first_system != 1000 else "")
                         + (f"; draws from {args.first_rep}" if args.first_rep else "")
                         + (f"; Kalman n_init={args.kalman_n_init}"
                            if args.kalman_n_init != 1 else "")
                         + (f"; bootstrap set-ups: {args.n_bootstrap} refits"
                            if any(s.endswith("bootstrap") for s in setups) else ""))
    for setup in setups:
        run_setup(setup, args, table)
    report.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
