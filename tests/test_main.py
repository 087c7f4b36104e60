"""The main job end to end: `python -m skkalman --quick` into a temporary folder."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from skkalman._experiment import MODELS, SETUPS, run_experiment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "skkalman", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_quick_run_writes_report_and_plots(tmp_path):
    out = tmp_path / "out"
    proc = _run("--quick", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[forecasting] fitting kalman" in proc.stderr  # progress is visible
    assert "eig. error" in proc.stdout and str(out) in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert set(report["setups"]) == set(SETUPS)
    for block in report["setups"].values():
        assert set(block["models"]) == set(MODELS)
        assert math.isfinite(block["optimal_mse"]) and block["optimal_mse"] > 0
        for row in block["models"].values():
            for key in ("eigenvalue_error", "mse", "mse_ratio", "fit_time"):
                assert math.isfinite(row[key]), key
            assert np.isfinite(np.array(row["eigenvalues"])).all()
            assert row["mse_ratio"] > 0.9  # nothing beats the optimum by more than noise
    for name in ("eigenvalues.png", "forecasts.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        import matplotlib.image

        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_quiet_prints_only_the_table(tmp_path):
    proc = _run("--quick", "--quiet", "--n-samples", "200", "--n-test", "50", "--out",
                str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fitting" not in proc.stderr and "epoch" not in proc.stderr
    assert "eig. error" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--system", "nope"], "invalid choice: 'nope'"),
        (["--n-samples", "3"], "--n-samples: must be at least 50"),
        (["--hidden-size", "x"], "--hidden-size: expected an integer"),
        (["--seed", "-1"], "--seed: must be at least 0"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_options_exit_2_with_a_message(tmp_path, args, message):
    proc = _run(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_same_seed_same_numbers():
    kwargs = dict(quick=True, n_samples=150, n_test=40, seed=3)
    first, second = run_experiment(**kwargs).report, run_experiment(**kwargs).report
    for setup in SETUPS:
        for name in MODELS:
            a, b = first["setups"][setup]["models"][name], second["setups"][setup]["models"][name]
            assert a["eigenvalues"] == b["eigenvalues"]
            assert a["mse"] == b["mse"]


def test_help_explains_every_option(tmp_path):
    proc = _run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for option in ("--system", "--n-samples", "--n-test", "--hidden-size", "--seed", "--out",
                   "--quick", "--quiet"):
        assert option in proc.stdout
