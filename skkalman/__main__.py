"""``python -m skkalman``: the RNN-versus-Kalman experiment from the command line.

Argument parsing and output only; the experiment itself is
:func:`skkalman._experiment.run_experiment`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from . import _experiment as experiment
from .datasets import SYSTEMS

__all__ = ["main"]

DEFAULT_OUT = "skkalman_output"


def _positive_int(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _bootstrap_refits(text):
    value = _positive_int(0)(text)
    if value == 1:
        raise argparse.ArgumentTypeError("a bootstrap needs at least 2 refits (0: off), got 1")
    return value


def _lengths(text):
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 500,2000,20000, got {text!r}"
        ) from None
    if not values or min(values) < 50:
        raise argparse.ArgumentTypeError(f"every length must be at least 50, got {text!r}")
    return sorted(set(values))


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m skkalman",
        description=(
            "Fit a Kalman model and linear and tanh Elman RNNs to data from a known "
            "linear system, recover the transition matrix A from each, and compare them "
            "with the truth: eigenvalues, eigenvalue error, held-out one-step MSE relative "
            "to the Kalman filter with the true parameters, and fit time; say from the "
            "numbers whether each RNN recovered A (inside the Kalman model's 95% "
            "intervals where available), and show a forecaster's raw W_hh next to the true "
            "filter's A(I - KC). Options add random systems and seeds, a training-length "
            "sweep and a nonlinear system (a pendulum). Writes report.md, report.json and "
            "PNG plots to the output folder."
        ),
    )
    parser.add_argument("--system", choices=SYSTEMS, default="two_rotations",
                        help="embedded system that generates the data (default: %(default)s)")
    parser.add_argument("--n-samples", type=_positive_int(50), default=None,
                        help="training time steps per set-up (default: 10000, or 1200 "
                             "with --quick)")
    parser.add_argument("--n-test", type=_positive_int(10), default=None,
                        help="held-out time steps (default: 2000, or 300 with --quick)")
    parser.add_argument("--hidden-size", type=_positive_int(1), default=None,
                        help="RNN hidden units (default: twice the system's number of states; "
                             "the recovered dynamics keep that number of states)")
    parser.add_argument("--seed", type=_positive_int(0), default=0,
                        help="seed for the data and every model; the same seed gives the "
                             "same numbers (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT),
                        help="folder for report.json and the plots, created if needed "
                             "(default: ./%(default)s)")
    parser.add_argument("--random-systems", type=_positive_int(0), default=0, metavar="N",
                        help="also run on N random systems (make_lds(system='random', "
                             "random_state=seed+i)) and report the median and 90th "
                             "percentile of each model's errors (default: %(default)s)")
    parser.add_argument("--seeds", type=_positive_int(1), default=1, metavar="K",
                        help="data and model seeds per random system: seed .. seed+K-1 "
                             "(default: %(default)s)")
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep the training length on --system and plot each "
                             "model's error against it")
    parser.add_argument("--sweep-lengths", type=_lengths, metavar="T1,T2,...",
                        default=[500, 1000, 2000, 5000, 10000, 20000],
                        help="training lengths of --sweep (default: 500,1000,2000,5000,"
                             "10000,20000)")
    parser.add_argument("--nonlinear", action="store_true",
                        help="also fit the models to a damped pendulum (small and large "
                             "swings) and compare the tanh RNN's linearizations with the "
                             "true Jacobian at rest")
    parser.add_argument("--bootstrap", type=_bootstrap_refits, default=0, metavar="N",
                        help="the Kalman model's eigenvalue intervals from a parametric "
                             "bootstrap of N refits instead of its observed information "
                             "(honest where a mode is weakly identified; N more fits per "
                             "set-up; default: %(default)s, off)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few epochs: a smoke test in seconds")
    parser.add_argument("--quiet", action="store_true",
                        help="print nothing while training; only the final table")
    return parser


class _Progress:
    """Prints one line per model, and each RNN's epochs as they pass."""

    def __init__(self, stream):
        self.stream = stream
        self._tic = None

    def stage(self, text):
        print(f"== {text}", file=self.stream, flush=True)

    def start(self, setup, name):
        self._tic = time.perf_counter()
        print(f"[{setup}] fitting {name} ...", file=self.stream, flush=True)

    def done(self, setup, name, row):
        # The pendulum has no optimal filter to divide by: its rows carry the MSE itself.
        mse = (f"MSE/optimal {row['mse_ratio']:.4f}" if "mse_ratio" in row
               else f"MSE {row['mse']:.4g}")
        print(f"[{setup}] {name}: eigenvalue error {row['eigenvalue_error']:.4f}, {mse} "
              f"({row['fit_time']:.1f} s)", file=self.stream, flush=True)

    def epoch_callback(self, name):
        from skorch.callbacks import Callback

        class EpochLine(Callback):
            # Holds only the label: the estimator deep-copies its callbacks when cloned.
            def __init__(self, label):
                self.label = label

            def on_epoch_end(self, net, **kwargs):
                row = net.history[-1]
                valid = row.get("valid_loss", float("nan"))
                line = (f"  {self.label} epoch {row['epoch']:>3}  train loss "
                        f"{row['train_loss']:.4f}  valid loss {valid:.4f}")
                stream = sys.stderr
                if stream.isatty():
                    print("\r" + line, end="", file=stream, flush=True)
                elif row["epoch"] % 10 == 0:
                    print(line, file=stream, flush=True)

            def on_train_end(self, net, **kwargs):
                if sys.stderr.isatty():
                    print(file=sys.stderr, flush=True)

        return EpochLine(name)


def main(argv=None):
    """Run the experiment; return the process exit code."""
    args = _parser().parse_args(argv)
    tic = time.perf_counter()
    progress = None if args.quiet else _Progress(sys.stderr)
    sizes = dict(n_samples=args.n_samples, n_test=args.n_test, hidden_size=args.hidden_size,
                 quick=args.quick, progress=progress, kalman_bootstrap=args.bootstrap)
    result = experiment.run_experiment(args.system, seed=args.seed, **sizes)
    report = result.report
    if args.random_systems:
        report["many"] = experiment.run_many(args.random_systems, args.seeds,
                                             first_seed=args.seed, **sizes)
    if args.sweep:
        report["sweep"] = experiment.run_sweep(
            args.system, args.sweep_lengths, seed=args.seed,
            **{k: v for k, v in sizes.items() if k != "n_samples"})
    if args.nonlinear:
        report["nonlinear"] = experiment.run_nonlinear(
            seed=args.seed, **{k: v for k, v in sizes.items()
                               if k not in ("hidden_size", "kalman_bootstrap")})
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    figures = {"eigenvalues": "eigenvalues.png", "forecasts": "forecasts.png",
               "naive": "naive.png"}
    experiment.plot_eigenvalues(report, out / figures["eigenvalues"])
    experiment.plot_forecasts(result.traces, out / figures["forecasts"])
    experiment.plot_naive(report, out / figures["naive"])
    for key, plot in (("many", experiment.plot_many), ("sweep", experiment.plot_sweep),
                      ("nonlinear", experiment.plot_nonlinear)):
        if key in report:
            figures[key] = f"{key}.png"
            plot(report[key], out / figures[key])
    report["run"] = dict(command=" ".join(["python -m skkalman", *(argv if argv is not None
                                                                    else sys.argv[1:])]),
                         wall_time_s=time.perf_counter() - tic)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(experiment.format_markdown(report, figures) + "\n")
    print(experiment.format_table(report))
    if "many" in report:
        print(f"random systems ({len(report['many']['runs'])} runs):")
        print(experiment.format_summary(report["many"]["summary"]))
        print(experiment.many_text(report["many"]["summary"]) + "\n")
    if "sweep" in report:
        print("training-length sweep:")
        print(experiment.sweep_text(report["sweep"]) + "\n")
    if "nonlinear" in report:
        print("pendulum:")
        print("\n".join(block["text"] for block in report["nonlinear"].values()) + "\n")
    written = ", ".join(["report.md", "report.json", *figures.values()])
    print(f"report and plots written to {out.resolve()}/ ({written}) in "
          f"{report['run']['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
