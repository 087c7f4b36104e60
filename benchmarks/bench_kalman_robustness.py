"""Does KalmanFilterRegressor reach the maximum of the likelihood on systems it has never seen?

Part 1, random systems. ``make_lds(system="random", random_state=seed)`` draws a stable
system (1-6 states, 1-3 outputs, 0-2 inputs, eigenvalue moduli up to 0.99 with complex
pairs, process-to-measurement noise ratio 1e-3 to 1e2: see ``make_lds``'s Notes). For each
seed the benchmark also draws (from the same seed) the training length T in [2000,
10000], whether 20% of the measurements are missing (one system in four), and the number
of sequences (1 to 5). ``KalmanFilterRegressor(n_states=true n)`` is fitted with its
defaults, and the benchmark prints, per system and as a distribution (median, 90th
percentile, worst):

* ``fit - truth``: training log-likelihood of the fit minus that of the true parameters.
  Where the fit's prior is not learned (no more sequences than states) both are
  conditioned on the first 50 rows of each sequence, so that neither prior counts. The
  maximum likelihood is never below the truth's: a negative value is a fit that stopped
  short (target: >= -1).
* ``search gain``: what an independent search still finds from the fit's answer: scipy's
  L-BFGS-B over every free matrix (plain entries, Cholesky factors of the covariances; no
  state-basis normalization), on the same exact log-likelihood the fit maximizes (the
  package's filter; gradient by Fisher's identity), run to its own tight tolerances
  (target: < 0.1 nat).
* ``eig err``: ``skkalman.metrics.eigenvalue_error`` of ``A_`` against the truth.
* ``MSE/opt``: held-out one-step forecast MSE (the next 2,000 rows of the last sequence,
  each model's filter run over the whole sequence) relative to the true parameters'.
* fit time, iterations, and whether the fit says it converged.
* ``n_init=3``: a second fit that continues the race's three subspace starts to their
  certified maxima instead of the leader alone, and keeps the likeliest: how much
  higher it ends than the default (0 where the default's maximum is the best of the
  three; more is a local maximum the default settled for), its eigenvalue error and its
  time (``--skip-n-init`` leaves it out).

Part 2, real data bundled with statsmodels, each fitted by this package and by
statsmodels in the same model class (same states, same initialization of the state):
printed as both log-likelihoods and both times (see ``bench_real_data``).

Part 3, speed: the fit time on 20 random 4-state systems of 10,000 rows (targets: median
2 s, worst 10 s), and statsmodels' MLE of the same model class on one of them.

    python benchmarks/bench_kalman_robustness.py [--n-systems 50] [--first-seed 0]
        [--quick] [--skip-real] [--skip-search] [--skip-n-init] [--n-speed 20]
        [--skip-speed] [--json PATH]

``--quick`` (CI) runs 3 small systems, one speed system and sunspots.
"""

import argparse
import time
import warnings

import numpy as np
from _report import Report
from scipy import optimize

from skkalman import KalmanFilterRegressor
from skkalman._kalman import StateSpaceParams
from skkalman._kalman.em import e_step, expected_gradient
from skkalman._kalman.search import stationary_prior
from skkalman.datasets import make_lds
from skkalman.metrics import eigenvalue_error

CONDITION_ROWS = 50
HELD_OUT = 2000


def draw_problem(seed, quick):
    """One random system and its training/held-out data (everything from ``seed``)."""
    rng = np.random.default_rng(10_000 + seed)
    T = int(rng.integers(300, 700)) if quick else int(rng.integers(2000, 10_001))
    n_sequences = int(rng.integers(1, 6))
    missing = bool(rng.random() < 0.25)
    lengths = np.full(n_sequences, T // n_sequences)
    lengths[-1] += T - lengths.sum() + HELD_OUT
    X, y, system = make_lds(system="random", n_samples=int(lengths.sum()),
                            lengths=lengths, random_state=seed)
    y = y.reshape(len(y), -1)
    y_train = y.copy()
    if missing:
        y_train[rng.random(y.shape) < 0.2] = np.nan
    train_lengths = lengths.copy()
    train_lengths[-1] -= HELD_OUT
    n_train = int(train_lengths.sum())
    return dict(X=X, y=y, y_train=y_train, system=system, lengths=lengths,
                train_lengths=train_lengths, n_train=n_train, missing=missing)


def conditional_log_likelihood(model, X, y, lengths, condition):
    """``log p(y | X)``, less that of the first ``CONDITION_ROWS`` rows of each sequence."""
    total = model.log_likelihood(X, y, lengths=lengths)
    if not condition:
        return total
    start = 0
    for n in lengths:
        rows = slice(start, start + min(CONDITION_ROWS, n))
        total -= model.log_likelihood(X[rows], y[rows])
        start += n
    return total


def independent_search(model, X, y, lengths, max_iter=3000, return_params=False):
    """Gain of scipy's L-BFGS-B from the fitted model, on the same objective.

    Free: every matrix the fit estimates (A, B, C, D, Q, R and the intercept; the prior
    when it is learned, or else the stationary prior the fit uses), in plain coordinates:
    entries, and Cholesky factors of the covariances.
    """
    n, m = model.A_.shape[0], model.C_.shape[0]
    y = np.asarray(y, dtype=float).reshape(len(y), -1)
    learned_prior = len(lengths) > n
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    sequences = [(Xa[s], y[s]) for s in _slices(lengths)]
    x_mean = Xa.mean(axis=0)
    x_cov = np.cov(Xa, rowvar=False, bias=True).reshape(Xa.shape[1], Xa.shape[1])
    names = ["A", "B", "C", "D", "Q", "R"] + (["initial_state_mean",
                                                "initial_state_covariance"]
                                               if learned_prior else [])
    covariances = {"Q", "R", "initial_state_covariance"}
    varies = np.ptp(X, axis=0) > 0

    def full(model):
        return StateSpaceParams(
            A=model.A_, B=np.hstack([model.B_, np.zeros((n, 1))]), C=model.C_,
            D=np.hstack([model.D_, model.intercept_[:, None]]), Q=model.Q_, R=model.R_,
            initial_state_mean=model.initial_state_mean_,
            initial_state_covariance=model.initial_state_covariance_)

    def pack(p):
        parts = []
        for name in names:
            v = getattr(p, name)
            if name in covariances:
                parts.append(np.linalg.cholesky(v + 1e-300 * np.eye(len(v)))[
                    np.tril_indices(len(v))])
            elif name == "B":
                parts.append(v[:, :-1][:, varies].ravel())
            elif name == "D":
                parts.append(v[:, np.r_[varies, True]].ravel())
            else:
                parts.append(v.ravel())
        return np.concatenate(parts)

    base = full(model)

    def unpack(theta):
        i, changes = 0, {}
        for name in names:
            v = getattr(base, name).copy()
            if name in covariances:
                k = len(v) * (len(v) + 1) // 2
                L = np.zeros_like(v)
                L[np.tril_indices(len(v))] = theta[i:i + k]
                changes[name] = L @ L.T
                grad_map = None  # noqa: F841
            elif name == "B":
                k = n * int(varies.sum())
                v[:, :-1][:, varies] = theta[i:i + k].reshape(n, -1)
                changes[name] = v
            elif name == "D":
                cols = np.r_[varies, True]
                k = m * int(cols.sum())
                v[:, cols] = theta[i:i + k].reshape(m, -1)
                changes[name] = v
            else:
                k = v.size
                changes[name] = theta[i:i + k].reshape(v.shape)
            i += k
        p = base.replace(**changes)
        if not learned_prior:
            m0, P0 = stationary_prior(p.A, p.B, p.Q, x_mean, x_cov)
            p = p.replace(initial_state_mean=m0, initial_state_covariance=P0)
        return p

    feasible = {}

    def outside(theta):
        # L-BFGS-B's line search needs finite values: outside the domain (an unstable A
        # under a stationary prior, a failed factorization), a steep bowl around the last
        # feasible point sends it back.
        if "theta" not in feasible:
            return np.inf, np.zeros_like(theta)
        d = theta - feasible["theta"]
        return feasible["f"] + 1e4 * (1.0 + d @ d), 2e4 * d

    def objective(theta):
        try:
            p = unpack(theta)
            stats, ll = e_step(p, sequences)
            g = expected_gradient(stats, p)
        except Exception:  # noqa: BLE001 (any failure: outside the domain)
            return outside(theta)
        if not np.isfinite(ll):
            return outside(theta)
        feasible.update(theta=theta.copy(), f=-ll)
        if not learned_prior:
            g = _through_stationary(g, p, x_mean, x_cov)
        parts = []
        for name in names:
            G = g[name]
            if name in covariances:
                L = np.linalg.cholesky(getattr(p, name))
                parts.append((2.0 * G @ L)[np.tril_indices(len(L))])
            elif name == "B":
                parts.append(G[:, :-1][:, varies].ravel())
            elif name == "D":
                parts.append(G[:, np.r_[varies, True]].ravel())
            else:
                parts.append(G.ravel())
        return -ll, -np.concatenate(parts)

    theta0 = pack(base)
    f0 = objective(theta0)[0]
    if "theta" not in feasible:
        return np.nan
    with np.errstate(all="ignore"):
        result = optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B",
                                   options={"maxiter": max_iter, "ftol": 1e-15,
                                            "gtol": 1e-9, "maxcor": 30})
    gain = max(f0 - result.fun, 0.0)
    return (gain, unpack(result.x)) if return_params else gain


def _through_stationary(g, p, x_mean, x_cov):
    from scipy import linalg

    A, B = p.A, p.B
    m0, P0 = p.initial_state_mean, p.initial_state_covariance
    n = A.shape[0]
    v = linalg.solve((np.eye(n) - A).T, g["initial_state_mean"])
    X = linalg.solve_discrete_lyapunov(A.T, g["initial_state_covariance"])
    X = 0.5 * (X + X.T)
    g = dict(g)
    g["A"] = g["A"] + np.outer(v, m0) + 2.0 * X @ A @ P0
    g["B"] = g["B"] + np.outer(v, x_mean) + 2.0 * X @ B @ x_cov
    g["Q"] = g["Q"] + X
    return g


def _slices(lengths):
    ends = np.cumsum(lengths)
    return [slice(int(e - k), int(e)) for e, k in zip(ends, lengths, strict=True)]


def forecast_mse(model, problem):
    X, y, lengths = problem["X"], problem["y"], problem["lengths"]
    prediction = model.forecast(X, y, lengths=lengths).reshape(y.shape)
    held = slice(problem["n_train"], None)
    return float(np.mean((prediction[held] - y[held]) ** 2))


def bench_random_systems(args):
    print("\n== Random systems: fit with defaults, n_states = true n ==")
    header = (f"{'seed':>4} {'n':>2} {'m':>2} {'p':>2} {'T':>6} {'seq':>3} {'miss':>4} "
              f"{'fit-truth':>10} {'search':>9} {'eig err':>8} {'MSE/opt':>8} "
              f"{'time s':>7} {'iter':>5} conv  {'init3 +':>8} {'eig err':>8} {'time s':>7}")
    print(header)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.n_systems):
        problem = draw_problem(seed, args.quick)
        system, n_train = problem["system"], problem["n_train"]
        X_tr, y_tr = problem["X"][:n_train], problem["y_train"][:n_train]
        lengths = problem["train_lengths"]
        n = system.A.shape[0]
        model = KalmanFilterRegressor(n)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(X_tr, y_tr, lengths=lengths)
        seconds = time.perf_counter() - start
        truth = KalmanFilterRegressor.from_params(**system.params)
        condition = len(lengths) <= n
        gap = (conditional_log_likelihood(model, X_tr, y_tr, lengths, condition)
               - conditional_log_likelihood(truth, X_tr, y_tr, lengths, condition))
        gain = (independent_search(model, X_tr, y_tr, lengths)
                if not args.skip_search else np.nan)
        eig = eigenvalue_error(model.A_, system.A)
        ratio = forecast_mse(model, problem) / forecast_mse(truth, problem)
        restarts, restart_eig, restart_seconds = np.nan, np.nan, np.nan
        if not args.skip_n_init:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                three = KalmanFilterRegressor(n, n_init=3).fit(X_tr, y_tr, lengths=lengths)
            restart_seconds = time.perf_counter() - start
            restarts = (three.log_likelihood(X_tr, y_tr, lengths=lengths)
                        - model.log_likelihood(X_tr, y_tr, lengths=lengths))
            restart_eig = eigenvalue_error(three.A_, system.A)
        rows.append(dict(gap=gap, gain=gain, eig=eig, ratio=ratio, seconds=seconds,
                         converged=model.converged_, n=n, T=n_train, restarts=restarts,
                         restart_eig=restart_eig, restart_seconds=restart_seconds))
        warned = "W" if caught else ""
        print(f"{seed:4d} {n:2d} {system.C.shape[0]:2d} {system.B.shape[1]:2d} "
              f"{n_train:6d} {len(lengths):3d} {'20%' if problem['missing'] else '-':>4} "
              f"{gap:10.3f} {gain:9.4f} {eig:8.4f} {ratio:8.5f} {seconds:7.2f} "
              f"{model.n_iter_:5d} {model.converged_!s:5s}{warned:1s} {restarts:8.3f} "
              f"{restart_eig:8.4f} {restart_seconds:7.2f}", flush=True)
    summarize(rows)
    table = args.report.table("random_systems", "Random systems: distribution over systems",
                              f"{len(rows)} random systems (seeds {args.first_seed}..), "
                              "fit with defaults, n_states = true n")
    for key, figure in [("gap", "fit - truth log-likelihood (nats)"),
                        ("gain", "independent search gain (nats)"), ("eig", "eigenvalue error"),
                        ("ratio", "held-out MSE / optimum"), ("seconds", "fit seconds")]:
        values = np.array([r[key] for r in rows], dtype=float)
        low = key == "gap"  # the worst gap is the lowest
        for stat, value in [("median", np.nanmedian(values)),
                            ("90th pct" if not low else "10th pct",
                             np.nanpercentile(values, 10 if low else 90)),
                            ("worst", np.nanmin(values) if low else np.nanmax(values))]:
            table.row("skkalman", f"{figure}, {stat}", value)
    table.row("skkalman", "converged_ (count)", sum(r["converged"] for r in rows),
              note=f"of {len(rows)}")
    if not args.skip_n_init:
        restarts = np.array([r["restarts"] for r in rows])
        ratio = np.array([r["restart_seconds"] / r["seconds"] for r in rows])
        table.row("skkalman", "n_init=3 above the default by > 0.1 nat (count)",
                  int(np.sum(restarts > 0.1)), note=f"of {len(rows)}: local maxima")
        table.row("skkalman", "n_init=3 above the default (nats), worst", restarts.max())
        higher = restarts > 0.1
        if higher.any():
            eig = np.array([[r["eig"], r["restart_eig"]] for r in rows])[higher]
            table.row("skkalman", "eigenvalue error where n_init=3 is higher: default, "
                      "median", np.median(eig[:, 0]))
            table.row("skkalman", "eigenvalue error where n_init=3 is higher: n_init=3, "
                      "median", np.median(eig[:, 1]))
        restart_eig = np.array([r["restart_eig"] for r in rows])
        table.row("skkalman", "eigenvalue error with n_init=3, 90th pct",
                  np.percentile(restart_eig, 90))
        table.row("skkalman", "n_init=3 time / default time, median", np.median(ratio))
    return rows


def summarize(rows):
    def dist(key, worst):
        values = np.array([r[key] for r in rows], dtype=float)
        return (f"median {np.nanmedian(values):9.4f}   90th pct "
                f"{np.nanpercentile(values, 90 if worst == 'max' else 10):9.4f}   worst "
                f"{(np.nanmax(values) if worst == 'max' else np.nanmin(values)):9.4f}")

    print(f"\n  {len(rows)} systems")
    print(f"  fit - truth (nats)    {dist('gap', 'min')}   (target >= -1: "
          f"{sum(r['gap'] >= -1 for r in rows)}/{len(rows)})")
    print(f"  search gain (nats)    {dist('gain', 'max')}   (target < 0.1: "
          f"{sum(r['gain'] < 0.1 for r in rows)}/{len(rows)})")
    print(f"  eigenvalue error      {dist('eig', 'max')}")
    print(f"  held-out MSE / opt    {dist('ratio', 'max')}")
    print(f"  fit time (s)          {dist('seconds', 'max')}")
    print(f"  converged_            {sum(r['converged'] for r in rows)}/{len(rows)}")
    restarts = np.array([r["restarts"] for r in rows], dtype=float)
    if np.isfinite(restarts).any():
        ratio = np.array([r["restart_seconds"] / r["seconds"] for r in rows])
        higher = restarts > 0.1
        print(f"  n_init=3 above default by > 0.1 nat on {higher.sum()}/{len(rows)} "
              f"(by {np.round(np.sort(restarts[higher]), 2).tolist()}); time / default: "
              f"median {np.median(ratio):.2f}, worst {ratio.max():.2f}")
        restart_eig = np.array([r["restart_eig"] for r in rows], dtype=float)
        print(f"  eigenvalue error with n_init=3  median {np.median(restart_eig):.4f}   "
              f"90th pct {np.percentile(restart_eig, 90):.4f}   worst {restart_eig.max():.4f}")
        for r in (r for r, up in zip(rows, higher, strict=True) if up):
            print(f"    where higher: eigenvalue error {r['eig']:.4f} -> {r['restart_eig']:.4f}")


# --- Part 2: real data, next to statsmodels in the same model class ------------------------


def statsmodels_general_model(y, n_states, start):
    """statsmodels ``MLEModel`` of the same class: free ``A, C``, intercept, full ``Q, R``.

    Stationary initialization of the state (skkalman's prior when it is not learned),
    parameters as entries and log-Cholesky factors, maximized by statsmodels' default
    L-BFGS (numerical gradients), started from ``start`` (skkalman's data-driven subspace
    estimate: no knowledge of skkalman's answer).
    """
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    n, m = n_states, y.shape[1]
    tril_n, tril_m = np.tril_indices(n), np.tril_indices(m)

    class General(MLEModel):
        def __init__(self, endog):
            super().__init__(endog, k_states=n)
            self.ssm["selection"] = np.eye(n)
            self.initialize_stationary()

        @property
        def param_names(self):
            return [f"p{i}" for i in range(n * n + m * n + m + len(tril_n[0])
                                           + len(tril_m[0]))]

        def update(self, params, **kwargs):
            params = super().update(params, **kwargs)
            i = 0
            A = params[i:i + n * n].reshape(n, n)
            i += n * n
            C = params[i:i + m * n].reshape(m, n)
            i += m * n
            d = params[i:i + m]
            i += m
            Lq = np.zeros((n, n))
            Lq[tril_n] = params[i:i + len(tril_n[0])]
            i += len(tril_n[0])
            Lr = np.zeros((m, m))
            Lr[tril_m] = params[i:]
            Lq[np.diag_indices(n)] = np.exp(np.diag(Lq))
            Lr[np.diag_indices(m)] = np.exp(np.diag(Lr))
            self.ssm["transition"] = A
            self.ssm["design"] = C
            self.ssm["obs_intercept"] = d[:, None]
            self.ssm["state_cov"] = Lq @ Lq.T
            self.ssm["obs_cov"] = Lr @ Lr.T

        def loglike(self, params, *args, **kwargs):
            A = np.asarray(params[:n * n]).reshape(n, n)
            if np.max(np.abs(np.linalg.eigvals(A))) >= 1.0:
                return -1e12  # no stationary initialization: outside the model class
            return super().loglike(params, *args, **kwargs)

    def log_chol(S):
        L = np.linalg.cholesky(S)
        L[np.diag_indices_from(L)] = np.log(np.diag(L))
        return L[np.tril_indices_from(L)]

    start_params = np.concatenate([start.A_.ravel(), start.C_.ravel(), start.intercept_,
                                   log_chol(start.Q_), log_chol(start.R_)])
    model = General(y)
    return model, start_params


def bench_real_data(args):
    import statsmodels.api as sm

    print("\n== Real data (statsmodels' data sets): skkalman against statsmodels' MLE in the "
          "same model class ==")
    print("   general n-state model, free A, C, intercept, Q, R; stationary prior (both)")
    macro = sm.datasets.macrodata.load_pandas().data
    sunspots = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    co2 = sm.datasets.co2.load_pandas().data["co2"].to_numpy()
    cases = [
        ("sunspots 1700-1958", sunspots[:259], 2),
        ("real GDP growth", 100 * np.diff(np.log(macro["realgdp"].to_numpy())), 3),
        ("real GDP growth", 100 * np.diff(np.log(macro["realgdp"].to_numpy())), 4),
        ("unemployment", macro["unemp"].to_numpy(), 2),
    ]
    if not args.quick:
        cases.append(("CO2 weekly (59 missing)", co2, 4))
    else:
        cases = cases[:1]
    print(f"  {'data':<24s} {'n':>2} {'skkalman ll':>13} {'time s':>7} "
          f"{'statsmodels ll':>15} {'time s':>7} {'difference':>10}")
    for name, series, n in cases:
        y = series.reshape(-1, 1)
        X = np.zeros((len(y), 0))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = KalmanFilterRegressor(n).fit(X, y)
        ours = time.perf_counter() - start
        ll = model.log_likelihood(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            initial = KalmanFilterRegressor(n, n_iter=0).fit(X, y)
            sm_model, start_params = statsmodels_general_model(y, n, initial)
            start = time.perf_counter()
            result = sm_model.fit(start_params, method="lbfgs", maxiter=5000, disp=False)
            theirs = time.perf_counter() - start
        print(f"  {name:<24s} {n:2d} {ll:13.3f} {ours:7.2f} {result.llf:15.3f} "
              f"{theirs:7.2f} {ll - result.llf:10.3f}  conv={model.converged_}", flush=True)
        table = args.report.table("real_data", "Real data against statsmodels' MLE (same "
                                  "model class, stationary prior)", "statsmodels data sets")
        where = f"{name}, {n} states"
        table.row("skkalman", "log-likelihood", ll, ll, data=where, ratio=False)
        table.row("statsmodels", "log-likelihood", result.llf, ll, data=where, ratio=False,
                  note=f"difference {result.llf - ll:.3f} nats")
        table.row("skkalman", "fit seconds", ours, ours, data=where)
        table.row("statsmodels", "fit seconds", theirs, ours, data=where,
                  note="MLEModel, L-BFGS from skkalman's start")
    if not args.quick:
        bench_co2_against_unobserved_components(co2, args.report)


def bench_co2_against_unobserved_components(co2, report):
    """CO2 weekly: a local linear trend + one 52-week harmonic (4 states) in statsmodels'
    UnobservedComponents (diffuse prior) against skkalman's general 4-state model.

    The classes differ in their prior (UnobservedComponents' exact diffuse initialization
    leaves its first observations out of the likelihood; skkalman's stationary prior
    cannot hold a unit root), so both are compared conditioned on the first 10 weeks.
    """
    import statsmodels.api as sm

    y = co2.reshape(-1, 1)
    X = np.zeros((len(y), 0))
    start = time.perf_counter()
    uc = sm.tsa.UnobservedComponents(co2, level="lltrend",
                                     freq_seasonal=[{"period": 52, "harmonics": 1}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uc_result = uc.fit(disp=False, maxiter=2000)
    uc_time = time.perf_counter() - start
    k = 10
    uc_conditional = float(np.sum(uc_result.llf_obs[k:]))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = KalmanFilterRegressor(4).fit(X, y)
    ours = time.perf_counter() - start
    conditional = model.log_likelihood(X, y) - model.log_likelihood(X[:k], y[:k])
    period = [2 * np.pi / abs(np.angle(w)) for w in np.linalg.eigvals(model.A_)
              if abs(w.imag) > 1e-9]
    print(f"  CO2 weekly, conditioned on the first {k} weeks: skkalman {conditional:.3f} "
          f"({ours:.2f} s, oscillation period {np.round(period[:1], 1)} weeks), "
          f"UnobservedComponents {uc_conditional:.3f} ({uc_time:.2f} s), difference "
          f"{conditional - uc_conditional:.3f}")
    table = report.table("real_data", "", "")
    where = f"CO2 weekly, 4 states, conditioned on the first {k} weeks"
    table.row("skkalman", "log-likelihood", conditional, conditional, data=where,
              ratio=False, note="general 4-state model")
    table.row("statsmodels", "log-likelihood", uc_conditional, conditional, data=where,
              ratio=False, note=f"UnobservedComponents(lltrend + 52-week harmonic); difference "
                   f"{uc_conditional - conditional:.3f} nats")
    table.row("skkalman", "fit seconds", ours, ours, data=where)
    table.row("statsmodels", "fit seconds", uc_time, ours, data=where)


# --- Part 3: speed at T = 10,000 with 4 states --------------------------------------------


def bench_speed(args):
    """Fit time on random 4-state systems of 10,000 rows, next to statsmodels' MLE."""
    n_systems = 1 if args.quick else args.n_speed
    T = 1000 if args.quick else 10_000
    print(f"\n== Speed: {n_systems} random systems with 4 states, T = {T} (one sequence, "
          "complete data) ==")
    times, converged = [], 0
    for seed in range(n_systems):
        X, y, system = make_lds(system="random", n_states=4, n_samples=T,
                                random_state=1000 + seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = KalmanFilterRegressor(4).fit(X, y)
        times.append(time.perf_counter() - start)
        converged += model.converged_
    times = np.array(times)
    print(f"  skkalman fit time: median {np.median(times):.2f} s, worst {times.max():.2f} s "
          f"(targets: 2 s, 10 s); converged {converged}/{n_systems}")
    table = args.report.table("speed", "Fit time on random 4-state systems",
                              f"{n_systems} random 4-state systems, T = {T:,}")
    table.row("skkalman", "fit seconds, median", np.median(times))
    table.row("skkalman", "fit seconds, worst", times.max())
    table.row("skkalman", "converged_ (count)", converged, note=f"of {n_systems}")
    if args.skip_statsmodels_speed or args.quick:
        return
    X, y, system = make_lds(system="random", n_states=4, n_outputs=1, n_inputs=0,
                            n_samples=T, random_state=1000)
    y2 = y.reshape(-1, 1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = KalmanFilterRegressor(4).fit(np.zeros((T, 0)), y2)
    t_ours = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        initial = KalmanFilterRegressor(4, n_iter=0).fit(np.zeros((T, 0)), y2)
        sm_model, start_params = statsmodels_general_model(y2, 4, initial)
        start = time.perf_counter()
        result = sm_model.fit(start_params, method="lbfgs", maxiter=5000, disp=False)
    t_sm = time.perf_counter() - start
    print(f"  same class, one output, no inputs: skkalman {t_ours:.2f} s (ll "
          f"{ours.log_likelihood(np.zeros((T, 0)), y2):.3f}), statsmodels MLE {t_sm:.2f} s "
          f"(ll {result.llf:.3f}): {t_sm / t_ours:.1f}x skkalman's time")
    where = "random 4-state system (seed 1000), 1 output, no inputs"
    table.row("statsmodels", "fit seconds", t_sm, t_ours, data=where,
              note="MLEModel, L-BFGS from skkalman's start")
    table.row("skkalman", "fit seconds", t_ours, t_ours, data=where)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-systems", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-n-init", action="store_true")
    parser.add_argument("--n-speed", type=int, default=20)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-statsmodels-speed", action="store_true")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    args.report = Report(__file__, quick=args.quick)
    if args.quick:
        args.n_systems = min(args.n_systems, 3)
    if args.n_systems > 0:  # --n-systems 0: only the speed and real-data parts
        bench_random_systems(args)
    if not args.skip_speed:
        bench_speed(args)
    if not args.skip_real:
        bench_real_data(args)
    args.report.write(args.json)


if __name__ == "__main__":
    main()
