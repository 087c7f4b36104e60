"""Benchmark scripts run end to end in their quick mode (their figures are not asserted:
timings belong to the scripts' reports, never to tests)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["bench_missing.py", "bench_kalman_robustness.py",
                                    "bench_scales.py"])
def test_quick_mode_runs(script):
    pytest.importorskip("statsmodels")
    pytest.importorskip("pykalman")
    # The package of this checkout, wherever an installed one points.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "statsmodels" in proc.stdout


@pytest.mark.parametrize("script, says", [("bench_intervals.py", "not weakly identified"),
                                          ("bench_order.py", "true order found")])
def test_quick_mode_of_the_simulation_studies_runs(script, says, tmp_path):
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json",
         str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=path),
    )
    assert proc.returncode == 0, proc.stderr
    assert says in proc.stdout
    assert (tmp_path / "report.json").exists()


def test_committed_results_render_every_script(tmp_path):
    """The benchmark page's tables come from the committed JSON of the last full run: every
    script has its fragment with rows (none reduced to "not in these results"), and the
    total time adds up the scripts'."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    target = run_all.render(run_all.FULL_OUT, tmp_path)
    for name in run_all.SCRIPTS:
        text = (target / f"{name}.rst").read_text()
        assert "Not in these results" not in text, name
        tables = [line.split(":file:")[1].strip() for line in text.splitlines()
                  if ":file:" in line]
        assert tables, name
        for table in tables:  # a header and at least one row each
            assert len((target / table).read_text().strip().splitlines()) >= 2, table
    summary = (target / "run_all.rst").read_text()
    assert f"of the {len(run_all.SCRIPTS)} scripts took" in summary
