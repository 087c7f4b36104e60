"""Filter + smoother throughput: skkalman against statsmodels and pykalman.

Data: ``make_lds(system="two_rotations", n_samples=100_000, random_state=0)`` (4 states,
2 outputs, Q = R = 0.1 I), every tool given the true parameters. The target (issue 3):
skkalman's filter + smoother at most 2x statsmodels' compiled one and at least 30x faster
than pykalman, with outputs equal to pykalman's to 1e-8.

pykalman is slow: it runs on the first ``--pykalman-samples`` rows (default 10,000) and its
time is scaled linearly to the full length (its cost per row is constant); the output says
so. Outputs are compared on those rows, with skkalman run on the same rows.

A second scenario makes a fraction of the rows (default 1%) missing at random: every gap
breaks the steady state and is followed by a transient computed row by row.

    python benchmarks/bench_filter_smoother.py [--n-samples 100000] [--pykalman-samples 10000]
        [--plain-samples 20000] [--missing 0.01] [--repeat 5] [--quick] [--json PATH]

``--quick`` runs small sizes (seconds); ``--json PATH`` writes the figures for the docs.
"""

import argparse

import numpy as np
from _reference import pykalman_model, statsmodels_smoother
from _report import Report, best_time

from skkalman._kalman import StateSpaceParams, kalman_filter, rts_smoother
from skkalman.datasets import make_lds


def run_skkalman(params, X, y, steady_state=True):
    fr = kalman_filter(params, X, y, steady_state=steady_state)
    return fr, rts_smoother(params, fr, steady_state=steady_state)


def run_statsmodels(system, y):
    return statsmodels_smoother(system, y).smooth()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--pykalman-samples", type=int, default=10_000)
    parser.add_argument("--plain-samples", type=int, default=20_000)
    parser.add_argument("--missing", type=float, default=0.01,
                        help="fraction of rows made missing in the scenario with gaps")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.n_samples, args.pykalman_samples, args.plain_samples = 5000, 1000, 1000
        args.repeat = 1
    report = Report(__file__, quick=args.quick)

    X, y, system = make_lds(system="two_rotations", n_samples=args.n_samples, random_state=0)
    params = StateSpaceParams(**system.params)
    T = args.n_samples
    print(f"two_rotations, T = {T:,}, 4 states, 2 outputs; best of {args.repeat} runs\n")

    t_sk, (fr, sr) = best_time(lambda: run_skkalman(params, X, y), args.repeat)
    t_sm, sm = best_time(lambda: run_statsmodels(system, y), args.repeat)

    # pykalman's smooth() is one filter pass and one smoother pass: the same work as ours
    # (it leaves out the log-likelihood, which would cost it another filter pass).
    T_pk = min(args.pykalman_samples, T)
    kf = pykalman_model(system)
    t_pk_part, pk_s = best_time(lambda: kf.smooth(y[:T_pk]), 1)
    t_pk = t_pk_part * T / T_pk
    scaled = ("" if T_pk == T else
              f"  (measured {t_pk_part:.2f} s on T = {T_pk:,}, scaled x{T / T_pk:g})")

    print(f"{'tool':<34}{'seconds':>10}{'skkalman faster by':>20}")
    print(f"{'skkalman filter + smoother':<34}{t_sk:>10.3f}{1.0:>19.1f}x")
    print(f"{'statsmodels KalmanSmoother':<34}{t_sm:>10.3f}{t_sm / t_sk:>19.1f}x")
    print(f"{'pykalman smooth (filter + RTS)':<34}{t_pk:>10.3f}{t_pk / t_sk:>19.1f}x{scaled}")
    print(f"\nskkalman / statsmodels time ratio: {t_sk / t_sm:.2f} (target <= 2)")
    speed = report.table("speed", "Filter + smoother time, true parameters",
                         f"two_rotations, 4 states, 2 outputs, T = {T:,}")
    speed.row("skkalman", "seconds", t_sk, t_sk, note="kalman_filter + rts_smoother")
    speed.row("statsmodels", "seconds", t_sm, t_sk, note="KalmanSmoother.smooth")
    speed.row("pykalman", "seconds", t_pk, t_sk, note=f"KalmanFilter.smooth{scaled}")
    print(f"pykalman / skkalman time ratio:    {t_pk / t_sk:.1f} (target >= 30)")

    # Agreement. pykalman on its rows, against skkalman run on the same rows.
    fr_pk, sr_pk = run_skkalman(params, X[:T_pk], y[:T_pk])
    pk_f, pk_ll = kf.filter(y[:T_pk]), kf.loglikelihood(y[:T_pk])
    pk_diffs = {
        "filtered means": np.abs(fr_pk.filtered_means - pk_f[0]).max(),
        "filtered covariances": np.abs(fr_pk.filtered_covariances - pk_f[1]).max(),
        "smoothed means": np.abs(sr_pk.smoothed_means - pk_s[0]).max(),
        "smoothed covariances": np.abs(sr_pk.smoothed_covariances - pk_s[1]).max(),
        "log-likelihood (relative)": abs(fr_pk.log_likelihood - pk_ll) / abs(pk_ll),
    }
    sm_diffs = {
        "filtered means": np.abs(fr.filtered_means - sm.filtered_state.T).max(),
        "filtered covariances": np.abs(
            fr.filtered_covariances - sm.filtered_state_cov.transpose(2, 0, 1)).max(),
        "smoothed means": np.abs(sr.smoothed_means - sm.smoothed_state.T).max(),
        "smoothed covariances": np.abs(
            sr.smoothed_covariances - sm.smoothed_state_cov.transpose(2, 0, 1)).max(),
        "log-likelihood (relative)": abs(fr.log_likelihood - sm.llf) / abs(sm.llf),
    }
    print(f"\nmax abs difference against pykalman (T = {T_pk:,}; target 1e-8) "
          f"and statsmodels (T = {T:,}):")
    for name in pk_diffs:
        print(f"  {name:<28}{pk_diffs[name]:>12.2e}{sm_diffs[name]:>12.2e}")
    worst = max(pk_diffs.values())
    print(f"  pykalman agreement: {'OK' if worst <= 1e-8 else 'FAILED'} (worst {worst:.1e})")
    agree = report.table("agreement", "Largest difference from skkalman's outputs",
                         f"two_rotations, T = {T_pk:,} (pykalman), {T:,} (statsmodels)")
    for name in pk_diffs:
        agree.row("pykalman", name, pk_diffs[name])
        agree.row("statsmodels", name, sm_diffs[name])

    # Missing rows break the steady state: each gap is followed by a transient.
    rng = np.random.default_rng(0)
    y_gaps = y.copy()
    y_gaps[rng.random(T) < args.missing] = np.nan
    t_sk_gaps, (fr_gaps, _) = best_time(lambda: run_skkalman(params, X, y_gaps), args.repeat)
    t_sm_gaps, sm_gaps = best_time(lambda: run_statsmodels(system, y_gaps), args.repeat)
    print(f"\nwith {args.missing:.0%} of the rows missing at random: skkalman {t_sk_gaps:.3f} s, "
          f"statsmodels {t_sm_gaps:.3f} s, ratio {t_sk_gaps / t_sm_gaps:.2f}; max abs "
          f"difference of filtered means "
          f"{np.abs(fr_gaps.filtered_means - sm_gaps.filtered_state.T).max():.1e}")
    gaps = f"the same, {args.missing:.0%} of the rows missing"
    speed.row("skkalman", "seconds", t_sk_gaps, t_sk_gaps, data=gaps)
    speed.row("statsmodels", "seconds", t_sm_gaps, t_sk_gaps, data=gaps,
              note="KalmanSmoother.smooth")

    # The steady-state fast path against the plain recursion (on the first rows).
    T_plain = min(args.plain_samples, T)
    t_plain, (fr_plain, sr_plain) = best_time(
        lambda: run_skkalman(params, X[:T_plain], y[:T_plain], steady_state=False), 1)
    fr_fast, sr_fast = run_skkalman(params, X[:T_plain], y[:T_plain])
    fast_vs_plain = max(
        np.abs(fr_fast.filtered_means - fr_plain.filtered_means).max(),
        np.abs(fr_fast.filtered_covariances - fr_plain.filtered_covariances).max(),
        np.abs(sr_fast.smoothed_means - sr_plain.smoothed_means).max(),
        np.abs(sr_fast.smoothed_covariances - sr_plain.smoothed_covariances).max(),
        np.abs(sr_fast.lag_one_covariances - sr_plain.lag_one_covariances).max(),
    )
    print(f"\nskkalman plain recursion (steady_state=False) on T = {T_plain:,}: "
          f"{t_plain:.2f} s; max abs difference from the steady-state path {fast_vs_plain:.1e}")
    report.write(args.json)

if __name__ == "__main__":
    main()
