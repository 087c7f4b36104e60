"""``python -m skkalman``: the RNN-versus-Kalman experiment from the command line.

Argument parsing and output only; the experiment itself is
:func:`skkalman._experiment.run_experiment`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from ._experiment import format_table, plot_eigenvalues, plot_forecasts, run_experiment
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


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m skkalman",
        description=(
            "Fit a Kalman model and linear and tanh Elman RNNs to data from a known "
            "linear system, recover the transition matrix A from each, and compare them "
            "with the truth: eigenvalues, eigenvalue error, held-out one-step MSE relative "
            "to the Kalman filter with the true parameters, and fit time. Writes "
            "report.json, eigenvalues.png and forecasts.png to the output folder."
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

    def start(self, setup, name):
        self._tic = time.perf_counter()
        print(f"[{setup}] fitting {name} ...", file=self.stream, flush=True)

    def done(self, setup, name, row):
        print(f"[{setup}] {name}: eigenvalue error {row['eigenvalue_error']:.4f}, "
              f"MSE/optimal {row['mse_ratio']:.4f} ({row['fit_time']:.1f} s)",
              file=self.stream, flush=True)

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
    progress = None if args.quiet else _Progress(sys.stderr)
    result = run_experiment(
        args.system, n_samples=args.n_samples, n_test=args.n_test,
        hidden_size=args.hidden_size, seed=args.seed, quick=args.quick, progress=progress,
    )
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result.report, indent=2) + "\n")
    plot_eigenvalues(result.report, out / "eigenvalues.png")
    plot_forecasts(result.traces, out / "forecasts.png")
    print(format_table(result.report))
    print(f"report and plots written to {out.resolve()}/ "
          "(report.json, eigenvalues.png, forecasts.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
