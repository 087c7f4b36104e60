"""The figures a benchmark script prints, kept as JSON for the documentation.

A script creates one :class:`Report`, adds a row beside each figure it prints, and writes
the file named by its ``--json`` option. ``benchmarks/run_all.py`` collects the files and
renders them as the tables of ``docs/benchmarks.rst``; nothing on that page is typed by
hand. A row names the tool, the data, the figure, its value, skkalman's value of the same
figure in the same run and their ratio (``value / ours``).
"""

import contextlib
import datetime
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

# Packages whose versions go into every report (those installed).
_VERSIONS = ("skkalman", "numpy", "scipy", "scikit-learn", "torch", "skorch", "numba",
             "statsmodels", "pykalman", "filterpy", "simdkalman", "nfoursid", "dynamax",
             "jax", "darts")


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _number(value):
    """A JSON-safe float (NaN and infinities as strings), ints and strings unchanged."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    value = float(value)
    return value if math.isfinite(value) else str(value)


def best_time(func, repeat=1):
    """Smallest wall time of ``repeat`` calls (the least disturbed on a shared machine)
    and the last call's result."""
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def versions():
    found = {}
    for name in _VERSIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


class Table:
    """Rows of one comparison (one data set, one task)."""

    def __init__(self, key, title, data):
        self.key, self.title, self.data = key, title, data
        self.rows = []

    def row(self, tool, figure, value, ours=None, *, data=None, note="", ratio=True):
        """One figure of one tool, with skkalman's figure beside it when comparable.

        ``ratio=False`` leaves the ratio out where it means nothing (log-likelihoods).
        """
        wanted, ratio = ratio, None
        if wanted and ours is not None and value is not None:
            with_ratio = isinstance(value, (int, float)) and isinstance(ours, (int, float))
            if with_ratio and ours != 0 and math.isfinite(ours) and math.isfinite(value):
                ratio = value / ours
        self.rows.append({"tool": tool, "data": data or self.data, "figure": figure,
                          "value": _number(value), "ours": _number(ours),
                          "ratio": _number(ratio), "note": note})
        return self

    def as_dict(self):
        return {"key": self.key, "title": self.title, "data": self.data, "rows": self.rows}


class Report:
    """Everything one run of a benchmark script measured, and how it was run."""

    def __init__(self, script, quick=False):
        self.script = Path(script).stem
        self.quick = bool(quick)
        self.tables = {}
        self.skipped = []
        self._start = time.perf_counter()
        self._started = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        self._load_before = _load()

    def table(self, key, title, data):
        """The table ``key`` (created on first use)."""
        if key not in self.tables:
            self.tables[key] = Table(key, title, data)
        return self.tables[key]

    def skip(self, tool, reason, table=None):
        """A tool that did not run, and why (not installed, cannot express the model)."""
        self.skipped.append({"tool": tool, "table": table, "reason": reason})

    def as_dict(self):
        return {
            "script": self.script,
            "command": " ".join([f"python benchmarks/{Path(sys.argv[0]).name}",
                                 *sys.argv[1:]]),
            "quick": self.quick,
            "started": self._started,
            "seconds": round(time.perf_counter() - self._start, 1),
            "machine": {"cpus": os.cpu_count(), "load_before": self._load_before,
                        "load_after": _load(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "versions": versions(),
            "tables": [table.as_dict() for table in self.tables.values()],
            "skipped": self.skipped,
        }

    def write(self, path):
        """Write the report to ``path`` (nothing when ``path`` is None)."""
        if path is None:
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1) + "\n")
