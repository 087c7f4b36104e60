"""Any finite scale, any level: KalmanFilterRegressor against statsmodels' SARIMAX.

Data: ``make_lds(system="oscillator", ...)`` (2 states, eigenvalues 0.95 exp(+-0.3i), one
output, measurement noise variance 0.1), ``--n-samples`` rows, ``random_state=0``. Three
sweeps, per row: the fit's wall time (best of ``--repeat``), R², the eigenvalue error of
the fitted ``A`` against the truth (:func:`skkalman.metrics.eigenvalue_error`), and whether
the fit reports convergence, or the error it raised:

1. ``y`` times ``10**k`` (no inputs), k from -300 to 300. R² is that of the one-step
   forecasts (``forecast``); the reference is statsmodels' ``SARIMAX(order=(2, 0, 2))``
   (the same model class: a 2-state linear-Gaussian system's output is an ARMA(2, 2)),
   its eigenvalues the inverse AR roots, its R² that of its one-step predictions, with
   the time ratio statsmodels / skkalman. skkalman's limit is deliberate: beyond a spread
   of about 1e+-150 the variance of ``y`` (the scale of ``R_``) leaves float64, and the fit
   says so.
2. ``X`` times ``10**k`` (one white-noise input), ``y`` unchanged: R² of ``predict(X)``
   (the regression on the inputs alone); no reference tool (SARIMAX has no input dynamics).
3. Levels: ``y + L * noise_std`` (``noise_std = sqrt(0.1)``) and ``X + L``, L up to 1e12,
   against the level-free fit: eigenvalue error and R² must not move. SARIMAX gets the
   level through ``trend="c"``.

R² is computed in units of ``y``'s largest magnitude, so its sums of squares stay finite at
every scale.

    python benchmarks/bench_scales.py [--n-samples 1000] [--step 25] [--repeat 3] [--quick]
                                      [--json PATH]

``--quick`` runs a few scales on 300 rows once each, without statsmodels in the levels'
sweep (the test suite runs it); ``--json PATH`` writes the figures for the docs. The
machine is shared: compare within one run.
"""

import argparse
import warnings

import numpy as np
from _report import Report
from _report import best_time as best_of

from skkalman import KalmanFilterRegressor
from skkalman.datasets import make_lds
from skkalman.metrics import eigenvalue_error

NOISE_STD = np.sqrt(0.1)  # make_lds's default measurement noise variance


def r2(y, prediction):
    """R² in units of ``y``'s largest magnitude (no overflow or underflow)."""
    scale = np.max(np.abs(y))
    y, prediction = y / scale, prediction / scale
    return 1.0 - np.mean((y - prediction) ** 2) / np.var(y)




def run_skkalman(X, y, repeat, one_step):
    """(seconds, R², eigenvalue error, converged_) or the error's first words."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, model = best_of(
                lambda: KalmanFilterRegressor(2, random_state=0).fit(X, y), repeat)
    except ValueError as exc:
        return f"ValueError: {exc}"
    prediction = model.forecast(X, y) if one_step else model.predict(X)
    return seconds, r2(y, prediction), model.A_, model.converged_


def run_statsmodels(y, repeat, trend="n"):
    import statsmodels.api as sm

    def fit():
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return sm.tsa.SARIMAX(y, order=(2, 0, 2), trend=trend).fit(disp=False)

    try:
        seconds, result = best_of(fit, repeat)
        with np.errstate(all="ignore"):
            eigenvalues = 1.0 / result.arroots
            score = r2(y, result.predict())
    except Exception as exc:  # noqa: BLE001 (a reference tool's failure is a result)
        return f"{type(exc).__name__}: {exc}"
    return seconds, score, eigenvalues, bool(result.mle_retvals["converged"])


def record(table, tool, data, outcome, A_true, ours=None):
    """Rows of one fit in the JSON report: time, R², eigenvalue error (or the error)."""
    if isinstance(outcome, str):
        table.row(tool, "fit", None, data=data, note=outcome[:120])
        return
    seconds, score, A, converged = outcome
    with np.errstate(all="ignore"):
        error = eigenvalue_error(A, A_true) if np.all(np.isfinite(A)) else np.nan
    mine = ours if ours is not None and not isinstance(ours, str) else None
    note = "" if converged else "not converged"
    table.row(tool, "fit seconds", seconds, mine and mine[0], data=data, note=note)
    table.row(tool, "R²", score, mine and mine[1], data=data, ratio=False)
    if mine is not None:
        with np.errstate(all="ignore"):
            ours_error = (eigenvalue_error(mine[2], A_true)
                          if np.all(np.isfinite(mine[2])) else np.nan)
    table.row(tool, "eigenvalue error", error, ours_error if mine is not None else None,
              data=data, ratio=False)


def cells(outcome, A_true):
    if isinstance(outcome, str):
        return f"{outcome[:44]:<44s}"
    seconds, score, A, converged = outcome
    with np.errstate(all="ignore"):
        error = eigenvalue_error(A, A_true) if np.all(np.isfinite(A)) else np.nan
    score = f"{score:9.3f}" if abs(score) < 1e4 else f"{score:9.1e}"
    return f"{seconds:7.2f} {score} {error:9.3f} {str(converged):>9s}         "


HEAD = f"{'fit s':>7s} {'R2':>9s} {'eig err':>9s} {'converged':>9s}         "


def sweep_y(exponents, n_samples, repeat, report):
    _, y, system = make_lds(system="oscillator", n_samples=n_samples, random_state=0)
    X = np.zeros((n_samples, 0))
    print(f"\n1. y times 10**k, no inputs ({n_samples} rows); R2 of one-step forecasts")
    print(f"{'k':>5s} | skkalman {HEAD}| statsmodels SARIMAX(2,0,2) {HEAD}| time sm/sk")
    for k in exponents:
        scaled = y * 10.0**k
        ours = run_skkalman(X, scaled, repeat, one_step=True)
        theirs = run_statsmodels(scaled, repeat)
        table = report.table("y", "y times 10**k (no inputs); R² of one-step forecasts",
                             "oscillator")
        record(table, "skkalman", f"y x 1e{k}", ours, system.A)
        record(table, "statsmodels", f"y x 1e{k}", theirs, system.A, ours=ours)
        ratio = (f"{theirs[0] / ours[0]:9.2f}x"
                 if not isinstance(ours, str) and not isinstance(theirs, str) else "")
        print(f"{k:5d} |          {cells(ours, system.A)}|"
              f"                            {cells(theirs, system.A)}| {ratio}")


def sweep_x(exponents, n_samples, repeat, report):
    X, y, system = make_lds(system="oscillator", n_inputs=1, n_samples=n_samples,
                            random_state=0)
    print(f"\n2. X times 10**k, one input ({n_samples} rows); R2 of predict(X)")
    print(f"{'k':>5s} | skkalman {HEAD}")
    for k in exponents:
        ours = run_skkalman(X * 10.0**k, y, repeat, one_step=False)
        record(report.table("x", "X times 10**k (one input); R² of predict(X)", "oscillator"),
               "skkalman", f"X x 1e{k}", ours, system.A)
        print(f"{k:5d} |          {cells(ours, system.A)}")


def sweep_levels(levels, n_samples, repeat, report, reference=True):
    X, y, system = make_lds(system="oscillator", n_inputs=1, n_samples=n_samples,
                            random_state=0)
    _, y_alone, _ = make_lds(system="oscillator", n_samples=n_samples, random_state=0)
    print(f"\n3. levels: y + L * noise_std and X + L ({n_samples} rows); skkalman with one "
          "input (R2 of predict(X)), statsmodels on y alone (trend='c', one-step R2)")
    print(f"{'L':>7s} | skkalman {HEAD}| statsmodels SARIMAX(2,0,2) {HEAD}")
    for level in levels:
        ours = run_skkalman(X + level, y + level * NOISE_STD, repeat, one_step=False)
        theirs = (run_statsmodels(y_alone + level * NOISE_STD, repeat, trend="c")
                  if reference else "(--quick: not run)")
        table = report.table("levels", "levels: y + L noise sd and X + L", "oscillator")
        record(table, "skkalman", f"L = {level:.0e}", ours, system.A)
        if reference:
            record(table, "statsmodels", f"L = {level:.0e}", theirs, system.A, ours=ours)
        print(f"{level:7.0e} |          {cells(ours, system.A)}|"
              f"                            {cells(theirs, system.A)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--step", type=int, default=25, help="step of the exponents k")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    report = Report(__file__, quick=args.quick)
    if args.quick:
        args.n_samples, args.repeat = 300, 1
        exponents = [-300, -150, 0, 150, 300]
        levels = [0.0, 1e8]
    else:
        exponents = list(range(-300, 301, args.step))
        levels = [0.0, 1e4, 1e8, 1e12]
    sweep_y(exponents, args.n_samples, args.repeat, report)
    sweep_x(exponents, args.n_samples, args.repeat, report)
    sweep_levels(levels, args.n_samples, args.repeat, report, reference=not args.quick)
    report.write(args.json)


if __name__ == "__main__":
    main()
