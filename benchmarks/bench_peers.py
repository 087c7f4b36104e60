"""Every peer tool on the same data in the same run, each figure as a ratio to skkalman's.

Four comparisons, each run on one data set shared by every tool that can do the task:

1. ``filter_smoother``: filtering and RTS smoothing with the true parameters of
   ``make_lds(system="two_rotations", random_state=0)`` (4 states, 2 outputs, no inputs),
   T = ``--n-filter`` rows (20,000). Tools: ``KalmanFilterRegressor.from_params(...)``
   ``.filter`` + ``.smooth``; statsmodels' ``KalmanSmoother.smooth``; pykalman's
   ``KalmanFilter.smooth``; filterpy's ``KalmanFilter.batch_filter(update_first=True)`` +
   ``rts_smoother``; simdkalman's ``KalmanFilter.smooth``; dynamax's ``lgssm_smoother``
   (JAX on the CPU in float64, compiled before timing). Figures: seconds (best of
   ``--repeat``), and the largest difference of the smoothed means from skkalman's.
2. ``learn``: learning a 4-state model from the first ``--n-train`` (10,000) rows of
   ``make_lds(system="two_rotations", random_state=1)`` with no knowledge of the truth;
   scored on the next ``--n-test`` (5,000) rows: one-step forecast MSE relative to the
   filter with the true parameters, and the eigenvalue error of the learned transition
   matrix (``skkalman.metrics.eigenvalue_error``). Tools: ``KalmanFilterRegressor(4)``
   (defaults); statsmodels' ``MLEModel`` with the same model (free A, C, Cholesky factors
   of Q, R; L-BFGS from skkalman's subspace estimate, as in ``bench_kalman_fit.py``);
   pykalman's EM (``--pykalman-iter`` iterations, all matrices); nfoursid (10 block rows);
   darts' ``KalmanForecaster(dim_x=4)`` (N4SID through nfoursid, its own Kalman filter);
   dynamax's ``LinearGaussianSSM.fit_em`` (``--dynamax-iter`` iterations, emission bias
   like skkalman's intercept, float64). simdkalman's EM learns Q, R and the prior with
   ``A`` and ``H`` held, so it is on the Nile table instead.
3. ``nile``: Durbin & Koopman's local-level model of the Nile's flow (``A = C = 1``; prior
   mean the first observation, variance 1e7), whose maximum-likelihood variances are
   published: R = 15099, Q = 1469.1. Tools: ``KalmanFilterRegressor(1, fixed=...,
   tol=1e-6)``; statsmodels' ``UnobservedComponents("llevel")`` (exact diffuse prior);
   pykalman's EM of Q and R with the prior held (``--pykalman-nile-iter``); simdkalman's EM
   step by step with the prior held (same number of iterations). dynamax's EM cannot hold
   ``A`` and ``C`` (all parameters are learned or none), so it is left out here.
4. ``rnn``: forecasting the ``learn`` series from its own past (``X_t = y_{t-1}``) with an
   Elman network: ``ElmanRNNRegressor`` (defaults, tanh, 8 hidden units) against darts'
   ``RNNModel(model="RNN")`` (an Elman cell, 8 hidden units, trained on windows of
   ``--darts-window`` steps, ``--darts-epochs`` epochs, one-step forecasts from the last
   window by ``historical_forecasts``). Figures: held-out MSE / optimum and fit seconds.

A tool that is not installed is skipped and the report says so (``pip install -e
".[bench]"`` installs them all). The machine is shared: compare ratios within one run.

    python benchmarks/bench_peers.py [--quick] [--json PATH] [--only filter learn nile rnn]
"""

import argparse
import copy
import importlib.util
import warnings

import numpy as np
from _reference import innovations_forecasts, pykalman_model, statsmodels_smoother
from _report import Report, best_time

from skkalman import ElmanRNNRegressor, KalmanFilterRegressor
from skkalman.datasets import lagged_targets, make_lds
from skkalman.metrics import eigenvalue_error

PUBLISHED_NILE = {"R": 15099.0, "Q": 1469.1}  # Durbin & Koopman (2012), section 2.10




def available(report, tool, module, table):
    """Whether ``module`` imports; if not, the report says the tool was skipped."""
    if importlib.util.find_spec(module) is None:
        report.skip(tool, f"not installed ({module} not found)", table)
        print(f"  {tool:<30s} skipped: not installed")
        return False
    return True


def failed(report, tool, table, exc):
    report.skip(tool, f"failed: {type(exc).__name__}: {exc}", table)
    print(f"  {tool:<30s} failed: {type(exc).__name__}: {exc}")


def use_jax_float64():
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")


# -- 1. filtering and smoothing -------------------------------------------------------------


def bench_filter_smoother(report, args):
    T = args.n_filter
    X, y, system = make_lds(system="two_rotations", n_samples=T, random_state=0)
    p = system.params
    data = f"two_rotations, 4 states, 2 outputs, T = {T:,}, true parameters"
    table = report.table("filter_smoother", "Filtering and smoothing with known parameters",
                         data)
    print(f"\n== filter + smoother: {data} ==")
    model = KalmanFilterRegressor.from_params(**p)

    def ours():
        model.filter(X, y)
        return model.smooth(X, y)[0]

    ours()  # compiled kernels loaded once, like every peer's warm-up below
    t_ours, smoothed = best_time(ours, args.repeat)
    table.row("skkalman", "seconds", t_ours, t_ours,
              note="KalmanFilterRegressor.from_params(...).filter + .smooth")
    print(f"  {'skkalman':<30s} {t_ours:8.3f} s")

    def add(tool, seconds, means, call):
        diff = float(np.max(np.abs(np.asarray(means) - smoothed)))
        table.row(tool, "seconds", seconds, t_ours, note=call)
        table.row(tool, "max |smoothed mean - skkalman's|", diff, note=call)
        print(f"  {tool:<30s} {seconds:8.3f} s  ({seconds / t_ours:6.1f}x)  max diff "
              f"{diff:.1e}")

    if available(report, "statsmodels", "statsmodels", table.key):
        def statsmodels_smooth():
            return statsmodels_smoother(system, y).smooth().smoothed_state.T

        seconds, means = best_time(statsmodels_smooth, args.repeat)
        add("statsmodels", seconds, means, "KalmanSmoother.smooth")

    if available(report, "pykalman", "pykalman", table.key):
        kf = pykalman_model(system)
        seconds, (means, _) = best_time(lambda: kf.smooth(y), 1)
        add("pykalman", seconds, means, "KalmanFilter.smooth (one run)")

    if available(report, "filterpy", "filterpy", table.key):
        from filterpy.kalman import KalmanFilter as FilterPyKF

        def filterpy_smooth():
            kf = FilterPyKF(dim_x=4, dim_z=2)
            kf.F, kf.H, kf.Q, kf.R = p["A"], p["C"], p["Q"], p["R"]
            kf.x = p["initial_state_mean"].copy()
            kf.P = p["initial_state_covariance"].copy()
            # update_first: its prior is the state at the first row, as skkalman's.
            means, covs, _, _ = kf.batch_filter(y, update_first=True)
            return kf.rts_smoother(means, covs)[0]

        seconds, means = best_time(filterpy_smooth, 1)
        add("filterpy", seconds, means,
            "KalmanFilter.batch_filter(update_first=True) + rts_smoother (one run)")

    if available(report, "simdkalman", "simdkalman", table.key):
        import simdkalman

        kf = simdkalman.KalmanFilter(state_transition=p["A"], process_noise=p["Q"],
                                     observation_model=p["C"], observation_noise=p["R"])

        def simdkalman_smooth():
            return kf.smooth(y[None], initial_value=p["initial_state_mean"],
                             initial_covariance=p["initial_state_covariance"]).states.mean[0]

        seconds, means = best_time(simdkalman_smooth, args.repeat)
        add("simdkalman", seconds, means, "KalmanFilter.smooth")

    if available(report, "dynamax", "dynamax", table.key):
        try:
            use_jax_float64()
            import jax.numpy as jnp
            from dynamax.linear_gaussian_ssm import LinearGaussianSSM

            lgssm = LinearGaussianSSM(4, 2, has_dynamics_bias=False,
                                      has_emissions_bias=False)
            params, _ = lgssm.initialize(
                initial_mean=jnp.asarray(p["initial_state_mean"]),
                initial_covariance=jnp.asarray(p["initial_state_covariance"]),
                dynamics_weights=jnp.asarray(p["A"]), dynamics_covariance=jnp.asarray(p["Q"]),
                emission_weights=jnp.asarray(p["C"]), emission_covariance=jnp.asarray(p["R"]))
            emissions = jnp.asarray(y)

            def dynamax_smooth():
                post = lgssm.smoother(params, emissions)
                return np.asarray(post.smoothed_means.block_until_ready())

            dynamax_smooth()  # compile first: the timing is of the compiled smoother
            seconds, means = best_time(dynamax_smooth, args.repeat)
            add("dynamax", seconds, means,
                "LinearGaussianSSM.smoother (jit, float64, CPU; compile not timed)")
        except Exception as exc:  # noqa: BLE001 - a peer's failure is a finding, not a crash
            failed(report, "dynamax", table.key, exc)


# -- 2. learning ----------------------------------------------------------------------------


def learning_data(n_train, n_test):
    X, y, system = make_lds(system="two_rotations", n_samples=n_train + n_test + 1,
                            random_state=1)
    return X, y, system


def bench_learn(report, args):
    n_train, n_test = args.n_train, args.n_test
    X, y, system = learning_data(n_train, n_test)
    X, y = X[1:], y[1:]  # the rnn table uses the row before as the first lag
    held_out = slice(n_train, None)
    data = (f"two_rotations (seed 1), 4 states, 2 outputs; fit on T = {n_train:,}, "
            f"scored on the next {n_test:,}")
    table = report.table("learn", "Learning a 4-state model from the measurements", data)
    print(f"\n== learning: {data} ==")
    truth = KalmanFilterRegressor.from_params(**system.params)
    best_mse = forecast_mse(truth.forecast(X, y), y, held_out)

    t_ours, model = best_time(lambda: KalmanFilterRegressor(4).fit(X[:n_train], y[:n_train]))
    ours = {"seconds": t_ours,
            "mse": forecast_mse(model.forecast(X, y), y, held_out) / best_mse,
            "eig": eigenvalue_error(model.A_, system.A)}

    def add(tool, seconds, mse_ratio, eig, call):
        table.row(tool, "fit seconds", seconds, ours["seconds"], note=call)
        table.row(tool, "held-out MSE / optimum", mse_ratio, ours["mse"], note=call)
        table.row(tool, "eigenvalue error", eig, ours["eig"], note=call)
        print(f"  {tool:<30s} {seconds:8.2f} s  MSE/opt {mse_ratio:8.5f}  eig err {eig:7.4f}"
              f"  ({call})")

    add("skkalman", ours["seconds"], ours["mse"], ours["eig"],
        f"KalmanFilterRegressor(4).fit: n_iter_={model.n_iter_}, "
        f"converged_={model.converged_}")

    def add_params(tool, seconds, A, C, Q, R, call, **extra):
        fitted = KalmanFilterRegressor.from_params(A=A, C=C, Q=Q, R=R, **extra)
        add(tool, seconds, forecast_mse(fitted.forecast(X, y), y, held_out) / best_mse,
            eigenvalue_error(A, system.A), call)

    if args.quick:
        report.skip("statsmodels", "left out of --quick (its numerical-gradient MLE takes "
                    "minutes)", table.key)
    elif available(report, "statsmodels", "statsmodels", table.key):
        from bench_kalman_fit import statsmodels_mle

        seconds, (A, C, Q, R) = best_time(lambda: statsmodels_mle(X[:n_train], y[:n_train]))
        add_params("statsmodels", seconds, A, C, Q, R,
                   "MLEModel, L-BFGS from skkalman's subspace start (bench_kalman_fit.py)")

    if available(report, "pykalman", "pykalman", table.key):
        from pykalman import KalmanFilter

        k = args.pykalman_iter
        kf = KalmanFilter(n_dim_state=4, n_dim_obs=2, random_state=0)
        em_vars = ["transition_matrices", "observation_matrices", "transition_covariance",
                   "observation_covariance", "initial_state_mean", "initial_state_covariance"]
        seconds, kf = best_time(lambda: kf.em(y[:n_train], n_iter=k, em_vars=em_vars))
        add_params("pykalman", seconds, kf.transition_matrices, kf.observation_matrices,
                   kf.transition_covariance, kf.observation_covariance,
                   f"KalmanFilter.em(n_iter={k}), default start",
                   initial_state_mean=kf.initial_state_mean,
                   initial_state_covariance=kf.initial_state_covariance)

    if available(report, "nfoursid", "nfoursid", table.key):
        import pandas as pd
        from nfoursid.nfoursid import NFourSID

        def nfoursid_fit():
            n4 = NFourSID(pd.DataFrame(y[:n_train], columns=["y0", "y1"]),
                          output_columns=["y0", "y1"], num_block_rows=10)
            n4.subspace_identification()
            return n4.system_identification(rank=4)

        seconds, (ss, cov) = best_time(nfoursid_fit)
        # nfoursid's noise covariance is ordered [[R, S^T], [S, Q]] (correlated noises).
        pred = innovations_forecasts(ss.a, ss.c, cov[2:, 2:], cov[:2, :2], cov[2:, :2], y)
        add("nfoursid", seconds, forecast_mse(pred, y, held_out) / best_mse,
            eigenvalue_error(ss.a, system.A),
            "NFourSID(num_block_rows=10).system_identification(rank=4); steady-state "
            "predictor of its model")

    if available(report, "darts", "darts", table.key):
        try:
            seconds, pred = darts_kalman(y, n_train)
            fitted_a = pred.pop("A")
            add("darts", seconds, forecast_mse(pred["forecasts"], y, held_out) / best_mse,
                eigenvalue_error(fitted_a, system.A),
                "KalmanForecaster(dim_x=4).fit; one-step forecasts of its Kalman filter "
                f"(checked against predict(1) at 3 rows: max diff {pred['check']:.1e})")
        except Exception as exc:  # noqa: BLE001
            failed(report, "darts", table.key, exc)

    if available(report, "dynamax", "dynamax", table.key):
        try:
            seconds, fitted, lls = dynamax_em(y[:n_train], args.dynamax_iter)
            if not np.all(np.isfinite(lls)) or not all(
                    np.all(np.isfinite(v)) for v in fitted.values()):
                first = int(np.argmin(np.isfinite(lls))) if not np.all(np.isfinite(lls)) \
                    else len(lls)
                table.row("dynamax", "fit seconds", seconds, ours["seconds"],
                          note=f"fit_em(num_iters={args.dynamax_iter}): NaN log-likelihood "
                               f"from iteration {first}")
                print(f"  {'dynamax':<30s} NaN from EM iteration {first}")
            else:
                add_params("dynamax", seconds, fitted["A"], fitted["C"], fitted["Q"],
                           fitted["R"], f"LinearGaussianSSM.fit_em(num_iters="
                           f"{args.dynamax_iter}), float64, compile included",
                           initial_state_mean=fitted["m0"],
                           initial_state_covariance=fitted["P0"], intercept=fitted["d"])
        except Exception as exc:  # noqa: BLE001
            failed(report, "dynamax", table.key, exc)
    report.skip("simdkalman", "its EM learns Q, R and the prior only (A and H held)",
                table.key)
    report.skip("filterpy", "no parameter learning", table.key)


def forecast_mse(pred, y, rows):
    return float(np.mean((np.asarray(pred)[rows] - y[rows]) ** 2))


def darts_kalman(y, n_train):
    """darts' KalmanForecaster: fit time, and the one-step forecasts of its fitted filter.

    ``predict(1, series=history)`` refilters the whole history at every call (quadratic in
    the held-out length), so the forecasts are read from one pass of the same fitted
    filter (nfoursid's ``Kalman``, deep-copied as darts does), and checked against
    ``predict(1)`` at three rows.
    """
    from darts import TimeSeries
    from darts.models import KalmanForecaster

    series = TimeSeries.from_values(y)
    forecaster = KalmanForecaster(dim_x=4)
    seconds, _ = best_time(lambda: forecaster.fit(series[:n_train]))
    kf = copy.deepcopy(forecaster.darts_kf.kf)
    no_input = np.zeros((0, 1))
    forecasts = np.empty_like(y)
    for t in range(len(y)):
        # y_predicteds[-1] is C x_{t|t-1}: the forecast of row t before its update.
        forecasts[t] = (kf.y_predicteds[-1].ravel() if t else 0.0)
        kf.step(y[t].reshape(-1, 1), no_input)
    check = max(
        float(np.max(np.abs(forecaster.predict(1, series=series[:t]).values()[0]
                            - forecasts[t])))
        for t in (n_train, n_train + 1, len(y) - 1))
    ss = forecaster.darts_kf.kf.state_space
    return seconds, {"forecasts": forecasts, "check": check, "A": ss.a}


def dynamax_em(y, num_iters):
    """dynamax's EM from its default initialization, in float64 on the CPU."""
    use_jax_float64()
    import jax.numpy as jnp
    import jax.random as jr
    from dynamax.linear_gaussian_ssm import LinearGaussianSSM

    lgssm = LinearGaussianSSM(4, y.shape[1], has_dynamics_bias=False)
    params, props = lgssm.initialize(jr.PRNGKey(0))

    def fit():
        fitted, lls = lgssm.fit_em(params, props, jnp.asarray(y), num_iters=num_iters,
                                   verbose=False)
        return fitted, np.asarray(lls.block_until_ready())

    seconds, (fitted, lls) = best_time(fit)
    values = {"A": fitted.dynamics.weights, "C": fitted.emissions.weights,
              "Q": fitted.dynamics.cov, "R": fitted.emissions.cov,
              "m0": fitted.initial.mean, "P0": fitted.initial.cov,
              "d": fitted.emissions.bias}
    return seconds, {k: np.asarray(v, dtype=float) for k, v in values.items()}, lls


# -- 3. Nile --------------------------------------------------------------------------------


def bench_nile(report, args):
    import statsmodels.api as sm

    y = sm.datasets.nile.load_pandas().data["volume"].to_numpy()
    T = len(y)
    data = f"Nile flow 1871-1970 (T = {T}), local level, published R = 15099, Q = 1469.1"
    table = report.table("nile", "The Nile local-level model", data)
    print(f"\n== {data} ==")
    fixed = {"A": [[1.0]], "C": [[1.0]], "initial_state_mean": [y[0]],
             "initial_state_covariance": [[1e7]]}
    X = np.zeros((T, 0))
    # Four significant digits of R and Q need the log-likelihood within ~1e-6 nat of its
    # maximum: tol=1e-6.
    t_ours, model = best_time(lambda: KalmanFilterRegressor(
        1, fit_intercept=False, tol=1e-6, fixed=fixed).fit(X, y), args.repeat)
    ours = {"seconds": t_ours, "R": float(model.R_[0, 0]), "Q": float(model.Q_[0, 0])}

    def add(tool, seconds, R, Q, call):
        table.row(tool, "fit seconds", seconds, ours["seconds"], note=call)
        for name, value in (("R", R), ("Q", Q)):
            error = abs(value / PUBLISHED_NILE[name] - 1)
            table.row(tool, f"{name} (published {PUBLISHED_NILE[name]:g})", value,
                      ours[name], note=call)
            table.row(tool, f"|{name} / published - 1|", error, note=call)
        print(f"  {tool:<30s} {seconds:8.3f} s  R = {R:9.6g}  Q = {Q:9.6g}  ({call})")

    add("skkalman", t_ours, ours["R"], ours["Q"],
        "KalmanFilterRegressor(1, fixed=..., fit_intercept=False, tol=1e-6)")

    from statsmodels.tsa.statespace.structural import UnobservedComponents

    def statsmodels_fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return UnobservedComponents(y, "llevel").fit(disp=False)

    seconds, result = best_time(statsmodels_fit, args.repeat)
    add("statsmodels", seconds, float(result.params[0]), float(result.params[1]),
        'UnobservedComponents(y, "llevel").fit (exact diffuse prior)')

    k = args.pykalman_nile_iter
    if available(report, "pykalman", "pykalman", table.key):
        from pykalman import KalmanFilter

        kf = KalmanFilter(transition_matrices=[[1.0]], observation_matrices=[[1.0]],
                          initial_state_mean=[y[0]], initial_state_covariance=[[1e7]],
                          transition_covariance=[[1.0]], observation_covariance=[[1.0]],
                          em_vars=["transition_covariance", "observation_covariance"])
        seconds, kf = best_time(lambda: kf.em(y, n_iter=k))
        add("pykalman", seconds, float(kf.observation_covariance[0, 0]),
            float(kf.transition_covariance[0, 0]), f"KalmanFilter.em(n_iter={k}), Q and R")

    if available(report, "simdkalman", "simdkalman", table.key):
        import simdkalman

        def simdkalman_em():
            kf = simdkalman.KalmanFilter(1.0, 1.0, 1.0, 1.0)
            for _ in range(k):
                # One EM step at a time: its em() would learn the prior too.
                kf = kf.em(y[None], n_iter=1, initial_value=np.full((1, 1, 1), y[0]),
                           initial_covariance=np.full((1, 1, 1), 1e7))
            return kf

        seconds, kf = best_time(simdkalman_em)
        add("simdkalman", seconds, float(np.ravel(kf.observation_noise)[0]),
            float(np.ravel(kf.process_noise)[0]),
            f"KalmanFilter.em(n_iter=1) x {k}, prior held")
    report.skip("dynamax", "fit_em learns every parameter or none: A = C = 1 cannot be held",
                table.key)
    report.skip("nfoursid", "subspace identification has no fixed-structure model",
                table.key)


# -- 4. RNN ---------------------------------------------------------------------------------


def bench_rnn(report, args):
    n_train, n_test = args.n_train, args.n_test
    X_raw, y_raw, system = learning_data(n_train, n_test)
    X, y, _ = lagged_targets(y_raw)  # row t: X_t = y_{t-1}; the same targets as "learn"
    held_out = slice(n_train, None)
    data = (f"two_rotations (seed 1), forecasting y_t from y_(t-1); fit on T = {n_train:,}, "
            f"scored on the next {n_test:,}")
    table = report.table("rnn", "Elman networks as forecasters", data)
    print(f"\n== RNN: {data} ==")
    truth = KalmanFilterRegressor.from_params(**system.params)
    optimum = truth.forecast(X_raw, y_raw)[1:]
    best_mse = forecast_mse(optimum, y, held_out)

    rnn = ElmanRNNRegressor(8, random_state=0, **args.rnn_params)
    t_ours, _ = best_time(lambda: rnn.fit(X[:n_train], y[:n_train]))
    mse_ours = forecast_mse(rnn.predict(X), y, held_out) / best_mse
    call = "ElmanRNNRegressor(8) (tanh, defaults)"
    table.row("skkalman", "fit seconds", t_ours, t_ours, note=call)
    table.row("skkalman", "held-out MSE / optimum", mse_ours, mse_ours, note=call)
    print(f"  {'skkalman':<30s} {t_ours:8.2f} s  MSE/opt {mse_ours:8.5f}")

    if not available(report, "darts", "darts", table.key):
        return
    try:
        seconds, pred = darts_rnn(y_raw, n_train, args)
        mse = forecast_mse(pred, y, held_out) / best_mse
        call = (f'RNNModel(model="RNN", hidden_dim=8, input_chunk_length='
                f'{args.darts_window}, n_epochs={args.darts_epochs})')
        table.row("darts", "fit seconds", seconds, t_ours, note=call)
        table.row("darts", "held-out MSE / optimum", mse, mse_ours, note=call)
        print(f"  {'darts':<30s} {seconds:8.2f} s  MSE/opt {mse:8.5f}  ({call})")
    except Exception as exc:  # noqa: BLE001
        failed(report, "darts", table.key, exc)


def darts_rnn(y, n_train, args):
    """darts' Elman RNN: fit on the first rows, one-step forecasts of the held-out rows.

    ``y`` is the raw series; its row ``n_train + 1`` is the first held-out target (the
    lagged set-up drops row 0). Returns the fit time and forecasts aligned with the lagged
    rows (NaN where darts made none).
    """
    import logging

    import torch
    from darts import TimeSeries
    from darts.models import RNNModel

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "darts"):
        logging.getLogger(name).setLevel(logging.ERROR)
    series = TimeSeries.from_values(y.astype(np.float32))
    model = RNNModel(
        model="RNN", hidden_dim=8, n_rnn_layers=1, dropout=0.0,
        input_chunk_length=args.darts_window, training_length=args.darts_window + 10,
        n_epochs=args.darts_epochs, batch_size=32, random_state=0,
        pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False,
                           "enable_model_summary": False, "logger": False,
                           "enable_checkpointing": False})
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, _ = best_time(lambda: model.fit(series[:n_train + 1], verbose=False))
            forecasts = model.historical_forecasts(
                series, start=n_train + 1, forecast_horizon=1, stride=1, retrain=False,
                last_points_only=True, verbose=False)
    finally:
        torch.set_num_threads(threads)
    pred = np.full((len(y) - 1, y.shape[1]), np.nan)
    pred[n_train:] = forecasts.values()[-(len(y) - 1 - n_train):]
    return seconds, pred


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--only", nargs="+", choices=["filter", "learn", "nile", "rnn"],
                        default=["filter", "learn", "nile", "rnn"])
    parser.add_argument("--n-filter", type=int, default=20_000)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pykalman-iter", type=int, default=50)
    parser.add_argument("--pykalman-nile-iter", type=int, default=500)
    parser.add_argument("--dynamax-iter", type=int, default=1000)
    parser.add_argument("--darts-window", type=int, default=50)
    parser.add_argument("--darts-epochs", type=int, default=20)
    args = parser.parse_args(argv)
    args.rnn_params = {}
    if args.quick:
        args.n_filter, args.n_train, args.n_test, args.repeat = 1_000, 1_000, 300, 1
        args.pykalman_iter, args.pykalman_nile_iter, args.dynamax_iter = 2, 20, 20
        args.darts_window, args.darts_epochs = 20, 1
        args.rnn_params = {"max_epochs": 3}
    report = Report(__file__, quick=args.quick)
    steps = {"filter": bench_filter_smoother, "learn": bench_learn, "nile": bench_nile,
             "rnn": bench_rnn}
    for name in args.only:
        steps[name](report, args)
        report.write(args.json)  # after each step: a long run keeps what it has
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
