"""Missing data at the speed of complete data: skkalman against statsmodels and pykalman.

Data: ``make_lds(system="two_rotations", n_samples=1_000_000, random_state=0)`` (4 states,
2 outputs, no inputs), every tool given the true parameters, in five scenarios: complete,
1% and 10% of the rows missing (whole rows), 1% and 10% of the entries missing (scattered
single entries: partly observed rows), all at random places. Scattered gaps break the
steady state of the covariance recursion again and again; the targets (issue 11) are
skkalman's filter, smoother, log-likelihood and E-step with missing data within 3x of its
complete-data time, at or below statsmodels' time with 1% missing, and peak memory not
above the complete case's.

Reported, per scenario: best-of-``--repeat`` wall times (the scenarios taking turns, one
call each per round) of ``kalman_filter``,
``rts_smoother`` (on the filter's result), the log-likelihood (``em.log_likelihood``) and
``em.e_step`` (filter + smoother + expected statistics), their ratio to the complete
case, statsmodels' filter, filter + smoother and log-likelihood (best of ``--sm-repeat``)
with the time ratios, and the peak memory allocated by each call (``tracemalloc``). Then
the E-step on ``make_lds(system="random", n_states=4, n_outputs=2, n_inputs=1,
n_samples=10_000, random_state=3)`` with 20% of the entries missing against complete, the
agreement with statsmodels (all scenarios) and pykalman (whole rows missing, on the first
``--pykalman-samples`` rows: it handles no partly observed rows), the steady-state path
against the plain recursion, and the one-time compile cost of the kernels (numba, cached
on disk: a fresh process loads them in a fraction of a second), and of the filter's copy
for 4 states that sequences of ``FIXED_SIZE_ROWS`` rows or more with missing entries run.

    python benchmarks/bench_missing.py [--n-samples 1000000] [--repeat 5] [--sm-repeat 1]
        [--pykalman-samples 10000] [--quick] [--json PATH]

``--quick`` runs everything small (a few seconds; the test suite runs it). The machine is
shared: compare ratios within one run.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np
from _reference import pykalman_model
from _reference import statsmodels_smoother as statsmodels_model
from _report import Report, best_time

from skkalman._kalman import StateSpaceParams, kalman_filter, rts_smoother
from skkalman._kalman._compiled import FIXED_SIZE_ROWS
from skkalman._kalman.em import e_step, log_likelihood
from skkalman.datasets import make_lds

SCENARIOS = [  # name, fraction of whole rows missing, fraction of single entries missing
    ("complete", 0.0, 0.0),
    ("rows 1%", 0.01, 0.0),
    ("rows 10%", 0.10, 0.0),
    ("entries 1%", 0.0, 0.01),
    ("entries 10%", 0.0, 0.10),
]




def peak_memory(func):
    """Peak bytes allocated (as traced by tracemalloc) while `func` runs."""
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def with_missing(y, rows, entries, seed=0):
    rng = np.random.default_rng(seed)
    y = y.copy()
    y[rng.random(y.shape[0]) < rows] = np.nan
    y[rng.random(y.shape) < entries] = np.nan
    return y


def relative_difference(got, want):
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def time_ours(params, X, data, repeat):
    """Best-of-``repeat`` seconds of skkalman's four calls in each scenario of ``data``.

    The scenarios take turns, one call of each per round: a slow spell of the shared
    machine then slows every scenario alike instead of one ratio.
    """
    calls = {}
    for name, y_s in data.items():
        fr = kalman_filter(params, X, y_s)
        calls[name] = [lambda y_s=y_s: kalman_filter(params, X, y_s),
                       lambda fr=fr: rts_smoother(params, fr),
                       lambda y_s=y_s: log_likelihood(params, [(X, y_s)]),
                       lambda y_s=y_s: e_step(params, [(X, y_s)])]
    best = {name: np.full(len(funcs), np.inf) for name, funcs in calls.items()}
    for _ in range(repeat):
        for name, funcs in calls.items():
            for i, func in enumerate(funcs):
                best[name][i] = min(best[name][i], best_time(func)[0])
    return best


def time_scenarios(params, system, X, y, args):
    print(f"{'':<13}{'---------- skkalman: seconds (x complete) ----------':^60}"
          f"{'--- statsmodels: seconds (skkalman faster by) ---':^54}")
    print(f"{'scenario':<13}{'filter':>15}{'smoother':>15}{'log-lik':>15}{'e_step':>15}"
          f"{'filter':>18}{'filter+smooth':>18}{'log-lik':>18}")
    data = {name: with_missing(y, rows, entries) for name, rows, entries in SCENARIOS}
    times = time_ours(params, X, data, args.repeat)
    complete = times["complete"]
    memory = {}
    diffs = {}
    for name, y_s in data.items():
        ours = times[name]
        t_f, t_s, t_l, _ = ours
        fr = kalman_filter(params, X, y_s)
        sr = rts_smoother(params, fr)
        model = statsmodels_model(system, y_s)
        t_sm_f, sm_f = best_time(model.filter, args.sm_repeat)
        t_sm_s, sm_s = best_time(model.smooth, args.sm_repeat)
        t_sm_l, _ = best_time(model.loglike, args.sm_repeat)
        cells = "".join(f"{t:>8.3f} ({t / c:3.1f})" for t, c in zip(ours, complete,
                                                                    strict=True))
        sm_cells = "".join(f"{t_sm:>9.3f} ({t_sm / t:4.1f}x)" for t_sm, t in
                           [(t_sm_f, t_f), (t_sm_s, t_f + t_s), (t_sm_l, t_l)])
        print(f"{name:<13}{cells}{sm_cells}")
        table = args.report.table("scenarios", "Missing data: seconds per call",
                                  f"two_rotations, T = {len(y):,}")
        for call, t, c in zip(("filter", "smoother", "log-likelihood", "e_step"), ours,
                              complete, strict=True):
            table.row("skkalman", f"{call} seconds", t, c, data=name,
                      note="ratio: to the complete data's time")
        for call, t_sm, t in [("filter", t_sm_f, t_f), ("filter + smoother", t_sm_s, t_f + t_s),
                              ("log-likelihood", t_sm_l, t_l)]:
            table.row("statsmodels", f"{call} seconds", t_sm, t, data=name,
                      note="ratio: to skkalman's time")
        memory[name] = (
            peak_memory(lambda y_s=y_s: kalman_filter(params, X, y_s)),
            peak_memory(lambda fr=fr: rts_smoother(params, fr)),
            peak_memory(lambda y_s=y_s: e_step(params, [(X, y_s)])),
            peak_memory(model.smooth),
        )
        diffs[name] = (
            relative_difference(fr.filtered_means, sm_f.filtered_state.T),
            relative_difference(fr.filtered_covariances,
                                sm_f.filtered_state_cov.transpose(2, 0, 1)),
            relative_difference(sr.smoothed_means, sm_s.smoothed_state.T),
            relative_difference(sr.smoothed_covariances,
                                sm_s.smoothed_state_cov.transpose(2, 0, 1)),
            abs(fr.log_likelihood - sm_f.llf) / abs(sm_f.llf),
        )
        del fr, sr, sm_f, sm_s, model

    print("\npeak memory allocated by one call (MB; tracemalloc)")
    print(f"{'scenario':<13}{'filter':>10}{'smoother':>10}{'e_step':>10}"
          f"{'statsmodels smooth':>20}")
    for name, values in memory.items():
        print(f"{name:<13}" + "".join(f"{v / 2**20:>10.1f}" for v in values[:3])
              + f"{values[3] / 2**20:>20.1f}")
    worst = max(max(v[i] / memory["complete"][i] for i in range(3)) for v in memory.values())
    print(f"  most memory with missing data, relative to complete: {worst:.3f} (target <= 1)")
    table = args.report.table("memory", "Peak memory of one call (MB)",
                              f"two_rotations, T = {len(y):,}")
    for name, values in memory.items():
        for call, value, complete_value in zip(("filter", "smoother", "e_step"), values[:3],
                                               memory["complete"][:3], strict=True):
            table.row("skkalman", f"{call} MB", value / 2**20, complete_value / 2**20,
                      data=name, note="ratio: to the complete data's")
        table.row("statsmodels", "smooth MB", values[3] / 2**20, values[1] / 2**20,
                  data=name, note="ratio: to skkalman's smoother")

    print("\nagreement with statsmodels (max abs difference relative to the largest value)")
    print(f"{'scenario':<13}{'filt. means':>13}{'filt. covs':>13}{'smooth means':>13}"
          f"{'smooth covs':>13}{'log-lik':>13}")
    table = args.report.table("agreement", "Largest difference from statsmodels, "
                              "relative to the largest value", f"two_rotations, T = {len(y):,}")
    for name, values in diffs.items():
        print(f"{name:<13}" + "".join(f"{v:>13.1e}" for v in values))
        for figure, value in zip(("filtered means", "filtered covariances", "smoothed means",
                                  "smoothed covariances", "log-likelihood"), values,
                                 strict=True):
            table.row("statsmodels", figure, value, data=name)


def time_e_step(args):
    n_samples = 1_000 if args.quick else 10_000
    X, y, system = make_lds(system="random", n_states=4, n_outputs=2, n_inputs=1,
                            n_samples=n_samples, random_state=3)
    params = StateSpaceParams(**system.params)
    repeat = 3 if args.quick else 20
    e_step(params, [(X, y)])
    t_complete, _ = best_time(lambda: e_step(params, [(X, y)]), repeat)
    y_missing = with_missing(y, 0.0, 0.2)
    t_missing, _ = best_time(lambda: e_step(params, [(X, y_missing)]), repeat)
    print(f"\ne_step, random system (4 states, 2 outputs, 1 input), T = {n_samples:,}: "
          f"complete {t_complete * 1e3:.2f} ms, 20% of entries missing "
          f"{t_missing * 1e3:.2f} ms ({t_missing / t_complete:.1f}x complete)")


def compare_pykalman(params, system, X, y, args):
    T_pk = min(args.pykalman_samples, y.shape[0])
    kf = pykalman_model(system)
    for name, rows, entries in SCENARIOS[:3]:  # pykalman: whole rows only
        y_s = with_missing(y[:T_pk], rows, entries)
        masked = np.ma.masked_invalid(y_s)
        fr = kalman_filter(params, X[:T_pk], y_s)
        sr = rts_smoother(params, fr)
        means_f, covs_f = kf.filter(masked)
        means_s, covs_s = kf.smooth(masked)
        worst = max(np.abs(fr.filtered_means - means_f).max(),
                    np.abs(fr.filtered_covariances - covs_f).max(),
                    np.abs(sr.smoothed_means - means_s).max(),
                    np.abs(sr.smoothed_covariances - covs_s).max())
        ll = abs(fr.log_likelihood - kf.loglikelihood(masked)) / abs(fr.log_likelihood)
        print(f"  pykalman, {name:<11} T = {T_pk:,}: max abs difference of means and "
              f"covariances {worst:.1e}, log-likelihood (relative) {ll:.1e}")


def compare_plain(params, X, y, args):
    T_plain = min(50_000, y.shape[0])
    y_s = with_missing(y[:T_plain], 0.0, 0.01)
    fast = kalman_filter(params, X[:T_plain], y_s)
    plain = kalman_filter(params, X[:T_plain], y_s, steady_state=False)
    fast_s, plain_s = rts_smoother(params, fast), rts_smoother(params, plain,
                                                                 steady_state=False)
    worst = max(relative_difference(a, b) for a, b in
                zip(fast[:4] + fast_s, plain[:4] + plain_s, strict=True))
    print(f"  steady-state path against the plain recursion (entries 1%, T = {T_plain:,}): "
          f"max relative difference {worst:.1e} (target ~1e-12)")


def compile_cost():
    """Seconds to the first results in a fresh process: with an empty numba cache (compile)
    and with the cache that run leaves (load). Then the same for a filter of
    ``FIXED_SIZE_ROWS`` rows with missing entries, which compiles the copy of the filter
    for 4 states (the other kernels loaded from the cache)."""
    code = ("import time; start = time.perf_counter(); import numpy as np;"
            "from skkalman._kalman import StateSpaceParams, kalman_filter, rts_smoother;"
            "from skkalman.datasets import make_lds;"
            "X, y, s = make_lds(system='two_rotations', n_samples={T}, random_state=0);"
            "p = StateSpaceParams(**s.params); y[3::10, 0] = np.nan;"
            "rts_smoother(p, kalman_filter(p, X, y));"
            "print(time.perf_counter() - start)")
    times = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for T in (50, 50, FIXED_SIZE_ROWS, FIXED_SIZE_ROWS):
            out = subprocess.run([sys.executable, "-c", code.replace("{T}", str(T))],
                                 env=env, check=True, capture_output=True, text=True)
            times.append(float(out.stdout))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sm-repeat", type=int, default=1)
    parser.add_argument("--pykalman-samples", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one repeat, no compile-cost measurement")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    args.report = Report(__file__, quick=args.quick)
    if args.quick:
        args.n_samples, args.repeat, args.sm_repeat = 5_000, 2, 1
        args.pykalman_samples = 200

    X, y, system = make_lds(system="two_rotations", n_samples=args.n_samples,
                            random_state=0)
    params = StateSpaceParams(**system.params)
    rts_smoother(params, kalman_filter(params, X[:10], y[:10]))  # load the compiled kernels
    print(f"two_rotations, T = {args.n_samples:,}, 4 states, 2 outputs; best of "
          f"{args.repeat} (skkalman) and {args.sm_repeat} (statsmodels) runs\n")
    time_scenarios(params, system, X, y, args)
    time_e_step(args)
    print("\nagreement")
    compare_pykalman(params, system, X, y, args)
    compare_plain(params, X, y, args)
    if not args.quick:
        cold, warm, cold_fixed, warm_fixed = compile_cost()
        print(f"\nfirst filter + smoother in a fresh process (imports included): {cold:.1f} s "
              f"with an empty numba cache (compiling), {warm:.1f} s once cached; on "
              f"{FIXED_SIZE_ROWS:,} rows with missing entries (the filter's copy for 4 "
              f"states): {cold_fixed:.1f} s compiling it, {warm_fixed:.1f} s once cached")
        table = args.report.table("compile", "First filter + smoother in a fresh process",
                                  "two_rotations, T = 50, imports included")
        table.row("skkalman", "seconds, empty numba cache", cold, warm,
                  note="ratio: to the cached run")
        table.row("skkalman", "seconds, cached", warm, warm)
        table.row("skkalman", f"T = {FIXED_SIZE_ROWS:,}, missing: seconds, 4-state copy "
                  "compiled", cold_fixed, warm_fixed, note="ratio: to the cached run")
        table.row("skkalman", f"T = {FIXED_SIZE_ROWS:,}, missing: seconds, cached",
                  warm_fixed, warm_fixed)
    args.report.write(args.json)


if __name__ == "__main__":
    main()
