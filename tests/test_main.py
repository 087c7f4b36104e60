"""The main job: `python -m skkalman` end to end at tiny sizes, and the logic of its verdicts
(intervals, "did the RNN recover A", the naive reading, the pendulum) on hand-made numbers."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from skkalman import _experiment as experiment
from skkalman._experiment import MODELS, RNNS, SETUPS, run_experiment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# The checkout under test, not whichever skkalman is installed: the run starts elsewhere.
ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "skkalman", *args], cwd=cwd, env=env,
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
        (["--random-systems", "-1"], "--random-systems: must be at least 0"),
        (["--seeds", "0"], "--seeds: must be at least 1"),
        (["--sweep-lengths", "500,x"], "--sweep-lengths: expected comma-separated integers"),
        (["--sweep-lengths", "500,10"], "--sweep-lengths: every length must be at least 50"),
        (["--bootstrap", "1"], "--bootstrap: a bootstrap needs at least 2 refits"),
        (["--bootstrap", "-2"], "--bootstrap: must be at least 0"),
    ],
)
def test_bad_options_exit_2_with_a_message(capsys, args, message):
    # In-process: argparse exits before anything is fitted, and no traceback is printed.
    from skkalman.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_same_seed_same_numbers():
    kwargs = dict(quick=True, n_samples=150, n_test=40, seed=3)
    first, second = run_experiment(**kwargs).report, run_experiment(**kwargs).report
    for setup in SETUPS:
        for name in MODELS:
            a, b = first["setups"][setup]["models"][name], second["setups"][setup]["models"][name]
            assert a["eigenvalues"] == b["eigenvalues"]
            assert a["mse"] == b["mse"]


def test_bootstrap_option_gives_only_the_kalman_intervals_from_refits():
    kwargs = dict(quick=True, n_samples=150, n_test=40, seed=3)
    plain = run_experiment(**kwargs).report
    boot = run_experiment(**kwargs, kalman_bootstrap=3).report
    assert plain["config"]["kalman_intervals"] == "observed information"
    assert boot["config"]["kalman_intervals"] == "parametric bootstrap, 3 refits"
    for setup in SETUPS:
        a, b = plain["setups"][setup]["models"], boot["setups"][setup]["models"]
        assert a["kalman"]["eigenvalues"] == b["kalman"]["eigenvalues"]
        assert a["kalman"]["eigenvalue_cov"] != b["kalman"]["eigenvalue_cov"]
        assert np.all(np.isfinite(b["kalman"]["eigenvalue_cov"]))
        for name in RNNS:
            assert a[name]["eigenvalue_cov"] == b[name]["eigenvalue_cov"]
    assert "the Kalman model's intervals from its parametric bootstrap, 3 refits" in (
        experiment.format_markdown(boot, {}))


def test_help_explains_every_option(tmp_path):
    proc = _run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for option in ("--system", "--n-samples", "--n-test", "--hidden-size", "--seed", "--out",
                   "--quick", "--quiet", "--random-systems", "--seeds", "--sweep",
                   "--sweep-lengths", "--nonlinear", "--bootstrap"):
        assert option in proc.stdout


@pytest.mark.slow
def test_every_option_at_tiny_sizes(tmp_path):
    out = tmp_path / "out"
    proc = _run("--quick", "--n-samples", "60", "--n-test", "10", "--random-systems", "1",
                "--seeds", "2", "--seed", "3", "--sweep", "--sweep-lengths", "80,60", "--nonlinear",
                "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for stage in ("== random system 1 of 1 (random_state=3), seed 3",
                  "== random system 1 of 1 (random_state=3), seed 4",
                  "== training length 60", "== training length 80", "== pendulum, small swings",
                  "[pendulum large swings] fitting rnn_tanh"):
        assert stage in proc.stderr
    report = json.loads((out / "report.json").read_text())
    many = report["many"]
    assert [(run["system_seed"], run["seed"]) for run in many["runs"]] == [(3, 3), (3, 4)]
    for setup in SETUPS:
        for name in MODELS:
            stats = many["summary"][setup][name]
            assert stats["n_runs"] == 2
            errors = [run["setups"][setup]["models"][name]["eigenvalue_error"]
                      for run in many["runs"]]
            assert stats["eigenvalue_error"]["median"] == pytest.approx(np.median(errors))
    assert report["sweep"]["lengths"] == [60, 80]
    assert len(report["sweep"]["setups"]["forecasting"]["rnn_tanh"]["eigenvalue_error"]) == 2
    assert set(report["nonlinear"]) == set(experiment.PENDULUM_LEVELS)
    for block in report["nonlinear"].values():
        assert set(block["models"]) == {"kalman", "rnn_linear", "rnn_tanh_fixed_point",
                                        "rnn_tanh_trajectory"}
        assert block["models"]["kalman"]["mse_to_linear"] == 1.0
        assert block["text"].startswith(("small swings", "large swings"))
    naive = report["setups"]["forecasting"]["naive"]
    assert set(naive["models"]) == set(MODELS)
    # Raw W_hh keeps every hidden unit: twice two_rotations' 4 states.
    assert len(naive["models"]["rnn_tanh"]["raw_eigenvalues"]) == 8
    assert len(naive["models"]["rnn_tanh"]["reduced_eigenvalues"]) == 4
    assert report["run"]["wall_time_s"] > 0 and "--nonlinear" in report["run"]["command"]
    markdown = (out / "report.md").read_text()
    for part in ("## The answer", "## Why the raw weights", "## Across random systems (2 runs)",
                 "## How much data each model needs", "## Beyond linear systems",
                 "## How this was made"):
        assert part in markdown
    for name in ("eigenvalues", "forecasts", "naive", "many", "sweep", "nonlinear"):
        assert f"]({name}.png)" in markdown
        assert (out / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "random systems (2 runs)" in proc.stdout and "pendulum:" in proc.stdout


def test_random_system_is_the_same_in_both_setups_and_fixed_by_its_seed():
    forecasting, description = experiment._true_params("random", "forecasting", 7)
    driven, _ = experiment._true_params("random", "input_driven", 7)
    for key in ("A", "C", "Q", "R"):
        np.testing.assert_array_equal(forecasting[key], driven[key])
    assert forecasting["B"].shape[1] == 0 and driven["B"].shape[1] == 2
    # The forecasting prior is the stationary covariance without inputs.
    P0, A = forecasting["initial_state_covariance"], forecasting["A"]
    np.testing.assert_allclose(P0, A @ P0 @ A.T + forecasting["Q"], atol=1e-10)
    other, _ = experiment._true_params("random", "forecasting", 8)
    assert other["A"].shape != A.shape or not np.allclose(other["A"], A)
    assert description.startswith("random stable system")


def test_true_filter_transition_scalar_closed_form():
    # Scalar system: P = a^2 P r / (P + r) + q; the predictor's transition is a r / (P + r).
    a, q, r = 0.9, 0.3, 0.5
    b = r - a**2 * r - q
    P = (-b + np.sqrt(b**2 + 4 * q * r)) / 2
    assert pytest.approx(a**2 * P * r / (P + r) + q) == P
    F = experiment.true_filter_transition(dict(A=[[a]], C=[[1.0]], Q=[[q]], R=[[r]]))
    assert F[0, 0] == pytest.approx(a * r / (P + r), rel=1e-10)


def test_covariances_from_the_recovery_when_it_has_them():
    values = np.array([0.9 + 0.2j, 0.9 - 0.2j, 0.5])
    no_cov = SimpleNamespace(eigenvalues_=values)
    assert experiment._covariances(no_cov) == [None, None, None]
    cov = np.array([np.diag([1e-4, 4e-4]), np.diag([1e-4, 4e-4]), np.full((2, 2), np.nan)])
    with_cov = SimpleNamespace(eigenvalues_=values, eigenvalues_cov_=cov)
    got = experiment._covariances(with_cov)
    assert got[0] == [[1e-4, 0.0], [0.0, 4e-4]] and got[2] is None


def test_interval_formatting_and_membership_on_a_hand_made_covariance():
    cov = [[4e-4, 1e-4], [1e-4, 9e-4]]
    np.testing.assert_allclose(experiment.interval_halfwidths(cov),
                               np.sqrt(5.991 * np.array([4e-4, 9e-4])))
    assert experiment.format_eigenvalue([0.9, 0.2], cov) == "0.900+0.200i (±0.049, ±0.073i)"
    assert experiment.format_eigenvalue([0.9, 0.2]) == "0.900+0.200i"
    # On the ellipse's boundary along an eigenvector: inside just below, outside just above.
    w, V = np.linalg.eigh(cov)
    for scale, expected in ((0.999, True), (1.001, False)):
        step = scale * np.sqrt(5.991 * w[1]) * V[:, 1]
        point = complex(0.9 + step[0], 0.2 + step[1])
        assert experiment.inside_interval(point, 0.9 + 0.2j, cov) is expected
    # A real eigenvalue has no width in Im: any imaginary part is outside.
    flat = [[1e-4, 0.0], [0.0, 0.0]]
    assert experiment.inside_interval(0.51 + 0j, 0.5 + 0j, flat)
    assert not experiment.inside_interval(0.51 + 1e-3j, 0.5 + 0j, flat)


def test_table_shows_intervals_when_the_report_has_them():
    report = {"setups": {"forecasting": dict(
        true_eigenvalues=[[0.9, 0.0]],
        models={"kalman": dict(eigenvalues=[[0.91, 0.0]],
                               eigenvalue_cov=[[[1e-4, 0.0], [0.0, 0.0]]],
                               eigenvalue_error=0.01, mse_ratio=1.0, fit_time=0.1)})}}
    assert "0.910 (±0.024)" in experiment.format_table(report)


def test_table_marks_weakly_identified_modes():
    row = dict(eigenvalues=[[0.91, 0.0], [0.2, 0.0]],
               eigenvalue_cov=[[[1e-4, 0.0], [0.0, 0.0]], [[1e-2, 0.0], [0.0, 0.0]]],
               weakly_identified=[False, True], eigenvalue_error=0.01, mse_ratio=1.0,
               fit_time=0.1)
    report = {"setups": {"forecasting": dict(true_eigenvalues=[[0.9, 0.0], [0.5, 0.0]],
                                             models={"kalman": row})}}
    assert "0.910 (±0.024), 0.200 (±0.245) (weak)" in experiment.format_table(report)
    assert experiment.format_eigenvalues(row).count("(weak)") == 1


def test_verdict_says_when_the_kalman_intervals_rest_on_weak_modes():
    kalman = dict(_row(PAIR, 0.005, covs=[COV, COV]), weakly_identified=[True, True])
    rnn = _row([[0.91, 0.29], [0.91, -0.29]], 0.01, ratio=1.01)
    text = experiment.recovery_verdict("rnn_linear", rnn, kalman, PAIR)["text"]
    assert "flags 2 of its eigenvalues as weakly identified" in text
    kalman["weakly_identified"] = [False, False]
    text = experiment.recovery_verdict("rnn_linear", rnn, kalman, PAIR)["text"]
    assert "weakly" not in text


def _row(eigenvalues, error, ratio=1.0, covs=None):
    return dict(eigenvalues=eigenvalues, eigenvalue_error=error, mse_ratio=ratio,
                eigenvalue_cov=covs)


PAIR = [[0.9, 0.3], [0.9, -0.3]]
COV = [[1e-4, 0.0], [0.0, 1e-4]]  # half-widths 0.0245


def test_verdict_inside_the_kalman_intervals():
    kalman = _row(PAIR, 0.005, covs=[COV, COV])
    rnn = _row([[0.91, 0.29], [0.91, -0.29]], 0.01, ratio=1.01)
    verdict = experiment.recovery_verdict("rnn_linear", rnn, kalman, [[0.9, 0.3], [0.9, -0.3]])
    assert verdict["recovered"] and verdict["basis"] == "interval"
    assert verdict["n_outside"] == 0 and verdict["kalman_covers_truth"] == 2
    assert verdict["text"].startswith("rnn_linear recovered A: all 2 of its eigenvalues lie "
                                      "inside the Kalman model's 95% intervals")
    assert "did not reach" not in verdict["text"]  # 1.01x is within the 2% tolerance


def test_verdict_outside_the_kalman_intervals_names_the_farthest():
    kalman = _row(PAIR, 0.005, covs=[COV, COV])
    rnn = _row([[0.95, 0.3], [0.95, -0.3]], 0.05, ratio=1.3)
    verdict = experiment.recovery_verdict("rnn_tanh", rnn, kalman, [[0.8, 0.3], [0.8, -0.3]])
    assert not verdict["recovered"] and verdict["n_outside"] == 2
    assert verdict["kalman_covers_truth"] == 0  # the truth is 0.1 away: the intervals miss it
    text = verdict["text"]
    assert "rnn_tanh did not recover A: 2 of its 2 eigenvalues lie outside" in text
    assert "0.05 from the Kalman model's 0.900+0.300i" in text and "±0.0245" in text
    assert "hold 0 of the 2 true eigenvalues" in text
    assert "1.300x the optimum's MSE" in text and "did not reach the best forecast" in text


def test_verdict_counts_surplus_modes_as_not_recovered():
    kalman = _row(PAIR, 0.005, covs=[COV, COV])
    rnn = _row(PAIR + [[0.2, 0.0]], 0.2)
    verdict = experiment.recovery_verdict("rnn_linear", rnn, kalman, PAIR)
    assert not verdict["recovered"] and verdict["n_outside"] == 1


def test_verdict_without_intervals_uses_the_kalman_error_as_yardstick():
    truth = [[0.9, 0.3], [0.9, -0.3]]
    for covs in (None, [COV, None]):  # none at all, or one missing
        kalman = _row(PAIR, 0.02, covs=covs)
        close = experiment.recovery_verdict("rnn_linear", _row(PAIR, 0.04), kalman, truth)
        far = experiment.recovery_verdict("rnn_linear", _row(PAIR, 0.041), kalman, truth)
        assert close["recovered"] and close["basis"] == "error" and not far["recovered"]
        assert "no intervals available" in close["text"]
        assert "do not pin A down" not in close["text"]
    loose = experiment.recovery_verdict("rnn_tanh", _row(PAIR, 0.3), _row(PAIR, 0.2), truth)
    assert loose["recovered"] and "do not pin A down for either model" in loose["text"]


def test_naive_text_follows_the_numbers():
    near_filter = dict(raw_error_to_filter=0.2, raw_error_to_A=0.3, reduced_error_to_filter=0.01,
                       reduced_error_to_A=0.3, closed_loop_error_to_A=0.02)
    near_A = dict(raw_error_to_filter=0.3, raw_error_to_A=0.2, reduced_error_to_filter=0.3,
                  reduced_error_to_A=0.01, closed_loop_error_to_A=0.02)
    text = experiment.naive_text(dict(models=dict(kalman=near_filter, rnn_tanh=near_A)))
    first, second = text.splitlines()
    assert first.startswith("kalman: raw A is 0.2 from the true filter's A(I - KC) and 0.3")
    assert first.endswith("Its own dynamics are the filter's A(I - KC), not A: only the closed "
                          "loop reads A.")
    assert second.startswith("rnn_tanh: raw W_hh (every unit) is 0.3 from")
    assert "reduced to a minimal realization, 0.3 and 0.01" in second
    assert second.endswith("(the filter's correction K C is small on these data).")
    neither = dict(near_A, reduced_error_to_filter=0.5, reduced_error_to_A=0.2)
    assert experiment.naive_text(dict(models=dict(rnn_linear=neither))).endswith(
        "Its own dynamics match neither closely on these data.")


def test_summarize_median_and_90th_percentile():
    errors = [0.1, 0.4, 0.2, 0.3, 1.0]
    runs = [{"setups": {"input_driven": {"models": {"rnn_tanh": dict(
        eigenvalue_error=e, mse_ratio=1 + e, verdict=dict(recovered=e < 0.35))}}}}
        for e in errors]
    stats = experiment.summarize(runs)["input_driven"]["rnn_tanh"]
    assert stats["n_runs"] == 5 and stats["recovered"] == 3
    assert stats["eigenvalue_error"] == dict(median=0.3, p90=pytest.approx(0.76))
    assert stats["mse_ratio"]["median"] == pytest.approx(1.3)


@pytest.mark.parametrize(
    ("fixed_error", "tanh_mse", "expected"),
    [
        (0.05, 0.018, ["the analogy holds", "10% lower forecast MSE"]),
        (0.2, 0.0201, ["the analogy fails", "buy nothing measurable"]),
        (0.01, 0.03, ["the analogy holds", "buy nothing: the tanh RNN's forecast MSE is 50% "
                                           "higher"]),
    ],
)
def test_nonlinear_verdict_follows_the_numbers(fixed_error, tanh_mse, expected):
    def row(error, mse):
        return dict(eigenvalue_error=error, mse=mse)

    block = dict(max_angle=1.5, models=dict(
        kalman=row(0.03, 0.021), rnn_linear=row(0.04, 0.02),
        rnn_tanh_fixed_point=row(fixed_error, tanh_mse),
        rnn_tanh_trajectory=row(0.07, tanh_mse)))
    text = experiment.nonlinear_verdict("large swings", block)
    assert text.startswith("large swings (angles up to 1.5 rad): ")
    for part in expected:
        assert part in text
