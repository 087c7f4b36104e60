"""The RNN-versus-Kalman experiment, as a function that returns a report.

Two set-ups on one embedded system (see :mod:`skkalman.datasets`):

- *forecasting*: the models see only the measured series; inputs are the previous
  measurements (``X_t = y_{t-1}``) and the target is ``y_t``. The learned transition is
  that of a predictor, so the dynamics are read from the closed loop in which each output
  is fed back as the next input (``DynamicsRecovery(feedback_columns=...)``).
- *input-driven*: white-noise inputs ``X`` drive the system; the target is ``y``. The
  transition is read from the model directly.

Each model is fitted on a training sequence and scored on a held-out one: one-step mean
squared error relative to the Kalman filter that knows the true parameters (the optimum),
and the error of its recovered eigenvalues against the true ones.
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .datasets import SYSTEMS, lagged_targets, make_lds
from .metrics import match_eigenvalues

__all__ = ["ExperimentResult", "run_experiment"]

SETUPS = ("forecasting", "input_driven")
MODELS = ("kalman", "rnn_linear", "rnn_tanh")

# Full-size and --quick settings. The full run stays under two minutes on two cores; the
# quick one trains the RNNs to a coarse plateau (relative tolerance 1%), in seconds.
_SIZES = {
    False: dict(n_samples=10_000, n_test=2_000, rnn_params={}),
    True: dict(n_samples=1_200, n_test=300, rnn_params=dict(tol=1e-2, n_iter_no_change=2)),
}
# Input-driven set-up: inputs dominate, so the transition shows through the input response.
_INPUT_DRIVEN = dict(n_inputs=2, process_noise=0.01, measurement_noise=0.1)


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns.

    Attributes
    ----------
    report : dict
        JSON-ready numbers: the configuration, the true system and, for each set-up and
        model, recovered eigenvalues (``[re, im]`` pairs), eigenvalue error, held-out
        one-step MSE, its ratio to the optimum, and fit time in seconds.
    traces : dict
        For plots: per set-up, the held-out targets (``"y"``), the optimal predictions
        (``"optimal"``) and each model's predictions, as arrays.
    """

    report: dict
    traces: dict = field(default_factory=dict)


def _complex_pairs(values):
    return [[float(v.real), float(v.imag)] for v in np.asarray(values, dtype=complex)]


def _models(n_states, hidden_size, seed, rnn_params, progress):
    from .kalman import KalmanFilterRegressor
    from .rnn import ElmanRNNRegressor

    rnn_options = dict(hidden_size=hidden_size, random_state=seed, **rnn_params)
    models = {"kalman": KalmanFilterRegressor(n_states=n_states, random_state=seed)}
    for nonlinearity in ("linear", "tanh"):
        name = f"rnn_{nonlinearity}"
        callbacks = None if progress is None else [("progress", progress.epoch_callback(name))]
        models[name] = ElmanRNNRegressor(
            nonlinearity=nonlinearity, callbacks=callbacks, **rnn_options
        )
    return models


def _split(X, y, lengths):
    """First sequence for training, second held out."""
    n_train = int(lengths[0])
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def _setup_data(setup, system_name, n_samples, n_test, seed):
    """Training/test arrays of one set-up, and the optimal one-step predictions."""
    from .kalman import KalmanFilterRegressor

    if setup == "forecasting":
        # One extra row per sequence: the first has no lagged input and is dropped.
        _, y_raw, system = make_lds(system=system_name, n_samples=n_samples + n_test + 2,
                                    lengths=[n_samples + 1, n_test + 1], random_state=seed)
        X, y, lengths = lagged_targets(y_raw, system.lengths)
        oracle = KalmanFilterRegressor.from_params(**system.params)
        # The optimum sees the same past as the models: the whole held-out series, scored
        # on the rows that have a lagged input (all but the first).
        y_test_raw = y_raw[system.lengths[0]:]
        optimal = oracle.forecast(np.zeros((len(y_test_raw), 0)), y_test_raw)[1:]
        feedback = list(range(y.shape[1] if y.ndim == 2 else 1))
    else:
        X, y, system = make_lds(system=system_name, n_samples=n_samples + n_test,
                                lengths=[n_samples, n_test], random_state=seed,
                                **_INPUT_DRIVEN)
        lengths = system.lengths
        oracle = KalmanFilterRegressor.from_params(**system.params)
        # With no measurements fed back, the best prediction is E[y_t | x_1..t].
        optimal = oracle.predict(X[n_samples:])
        feedback = None
    train, test = _split(X, y, lengths)
    return system, train, test, optimal, feedback


def run_experiment(system="two_rotations", *, n_samples=None, n_test=None, hidden_size=None,
                   seed=0, quick=False, progress=None):
    """Fit the Kalman model and linear and tanh Elman RNNs; recover ``A`` from each.

    Parameters
    ----------
    system : str, default="two_rotations"
        One of :data:`skkalman.datasets.SYSTEMS`.
    n_samples : int, default=None
        Training length (10,000, or 1,200 with ``quick``).
    n_test : int, default=None
        Held-out length (2,000, or 300 with ``quick``).
    hidden_size : int, default=None
        RNN hidden units; twice the true number of states when None. Surplus units are
        cheap, make training land on a good optimum more often, and are truncated away
        (the recovery keeps a minimal realization with the true number of states).
    seed : int, default=0
        Seeds the data and every model: the same seed gives the same report.
    quick : bool, default=False
        Small sizes and a coarse stopping tolerance, for smoke tests (seconds, not
        minutes).
    progress : object, default=None
        Receives ``start(setup, model)`` / ``done(setup, model, row)`` calls and provides
        ``epoch_callback(name)`` (a skorch callback); None is silent.

    Returns
    -------
    result : ExperimentResult

    Examples
    --------
    >>> result = run_experiment(quick=True, n_samples=100, n_test=20)
    >>> sorted(result.report["setups"])
    ['forecasting', 'input_driven']
    >>> sorted(result.report["setups"]["forecasting"]["models"])
    ['kalman', 'rnn_linear', 'rnn_tanh']
    """
    from .dynamics import DynamicsRecovery

    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; choose one of {SYSTEMS}.")
    sizes = _SIZES[bool(quick)]
    n_samples = sizes["n_samples"] if n_samples is None else int(n_samples)
    n_test = sizes["n_test"] if n_test is None else int(n_test)
    if n_samples < 50 or n_test < 10:
        raise ValueError(f"n_samples must be >= 50 and n_test >= 10, got {n_samples} and "
                         f"{n_test}.")

    report = {
        "config": dict(system=system, n_samples=n_samples, n_test=n_test,
                       hidden_size=hidden_size, seed=seed, quick=bool(quick)),
        "setups": {},
    }
    traces = {}
    for setup in SETUPS:
        truth, (X_tr, y_tr), (X_te, y_te), optimal, feedback = _setup_data(
            setup, system, n_samples, n_test, seed)
        n_states = truth.A.shape[0]
        hidden = hidden_size or 2 * n_states
        report["config"]["hidden_size"] = hidden
        optimal_mse = float(np.mean((np.asarray(y_te) - optimal) ** 2))
        rows = {}
        traces[setup] = {"y": np.asarray(y_te), "optimal": optimal}
        models = _models(n_states, hidden, seed, sizes["rnn_params"], progress)
        for name, model in models.items():
            if progress is not None:
                progress.start(setup, name)
            # order: a minimal realization with the true number of states, so surplus
            # modes (an RNN's extra units, a closed loop's direct-path states) are
            # truncated by their Hankel singular values rather than counted as errors.
            recovery = DynamicsRecovery(model, feedback_columns=feedback, order=n_states)
            tic = time.perf_counter()
            # A fit that did not converge says so in the report (and the table) rather
            # than as a warning in the middle of the progress lines.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                recovery.fit(X_tr, y_tr)
            fit_time = time.perf_counter() - tic
            notes = [str(w.message) for w in caught
                     if issubclass(w.category, ConvergenceWarning)]
            for w in caught:
                if not issubclass(w.category, ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            prediction = recovery.estimator_.predict(X_te)
            mse = float(np.mean((np.asarray(y_te) - prediction) ** 2))
            match = match_eigenvalues(recovery.eigenvalues_, truth.A)
            rows[name] = dict(
                eigenvalues=_complex_pairs(recovery.eigenvalues_),
                eigenvalue_error=match.error,
                mse=mse,
                mse_ratio=mse / optimal_mse,
                fit_time=fit_time,
                converged=bool(getattr(recovery.estimator_, "converged_", True)),
                notes=notes,
            )
            traces[setup][name] = prediction
            if progress is not None:
                progress.done(setup, name, rows[name])
        report["setups"][setup] = dict(
            true_eigenvalues=_complex_pairs(truth.eigenvalues),
            optimal_mse=optimal_mse,
            feedback_columns=feedback,
            models=rows,
        )
    return ExperimentResult(report=report, traces=traces)


def format_table(report):
    """The report as a plain-text table, one row per set-up and model."""
    lines = []
    for setup, block in report["setups"].items():
        true = ", ".join(_format_eigenvalue(v) for v in block["true_eigenvalues"])
        lines.append(f"{setup.replace('_', '-')} set-up   true eigenvalues: {true}")
        lines.append(f"  {'model':<11} {'eig. error':>10} {'MSE/optimal':>12} {'fit (s)':>8}"
                     "   recovered eigenvalues")
        for name, row in block["models"].items():
            eig = ", ".join(_format_eigenvalue(v) for v in row["eigenvalues"])
            flag = "" if row.get("converged", True) else "   (not converged)"
            lines.append(f"  {name:<11} {row['eigenvalue_error']:>10.4f} "
                         f"{row['mse_ratio']:>12.4f} {row['fit_time']:>8.1f}   {eig}{flag}")
        lines.append("")
    return "\n".join(lines)


def _format_eigenvalue(pair):
    re, im = pair
    return f"{re:.3f}{im:+.3f}i" if abs(im) > 5e-4 else f"{re:.3f}"


def _pyplot():
    """pyplot on the file-only Agg backend: the plots are written, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_eigenvalues(report, path):
    """Eigenvalues of the truth and every model on the complex plane, per set-up."""
    plt = _pyplot()

    setups = list(report["setups"])
    fig, axes = plt.subplots(1, len(setups), figsize=(5.5 * len(setups), 5.2))
    markers = {"kalman": "s", "rnn_linear": "^", "rnn_tanh": "v"}
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    for ax, setup in zip(np.atleast_1d(axes), setups, strict=True):
        block = report["setups"][setup]
        ax.plot(circle.real, circle.imag, color="0.7", lw=1)
        true = np.array(block["true_eigenvalues"])
        ax.scatter(true[:, 0], true[:, 1], s=160, facecolors="none", edgecolors="k",
                   linewidths=1.5, label="truth", zorder=3)
        for name, row in block["models"].items():
            eig = np.array(row["eigenvalues"])
            ax.scatter(eig[:, 0], eig[:, 1], marker=markers.get(name, "o"), s=45, zorder=4,
                       label=f"{name} (error {row['eigenvalue_error']:.3f})")
        ax.set_aspect("equal")
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.axhline(0, color="0.85", lw=0.8)
        ax.axvline(0, color="0.85", lw=0.8)
        ax.set_title(f"{setup.replace('_', '-')} set-up")
        ax.set_xlabel("Re")
        ax.set_ylabel("Im")
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle("Recovered eigenvalues of A against the truth (unit circle in grey)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_forecasts(traces, path, n_steps=150):
    """Held-out data against each model's one-step predictions (first output)."""
    plt = _pyplot()

    setups = list(traces)
    fig, axes = plt.subplots(len(setups), 1, figsize=(11, 3.4 * len(setups)), squeeze=False)
    for ax, setup in zip(axes[:, 0], setups, strict=True):
        trace = traces[setup]
        y = np.asarray(trace["y"]).reshape(len(trace["y"]), -1)[:n_steps, 0]
        t = np.arange(len(y))
        ax.plot(t, y, "k.", ms=3, label="held-out data")
        for name in MODELS:
            if name in trace:
                pred = np.asarray(trace[name]).reshape(len(trace[name]), -1)[:n_steps, 0]
                ax.plot(t, pred, lw=1, label=name)
        # Drawn last, dashed: the models' lines lie on it where they are good.
        optimal = np.asarray(trace["optimal"]).reshape(len(trace["optimal"]), -1)
        ax.plot(t, optimal[:n_steps, 0], "k--", lw=1, label="optimal (true Kalman filter)")
        ax.set_title(f"{setup.replace('_', '-')} set-up: one-step predictions, output 1")
        ax.set_xlabel("time step (held-out sequence)")
        ax.legend(loc="upper right", fontsize=8, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
