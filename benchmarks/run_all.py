"""Run every benchmark, keep its figures as JSON, and render the documentation's tables.

    python benchmarks/run_all.py                  # full run into docs/benchmarks/results/
    python benchmarks/run_all.py --quick          # smoke test into build/benchmarks-quick/
    python benchmarks/run_all.py --only bench_peers bench_rnn   # rerun some, keep the rest
    python benchmarks/run_all.py --render-only    # tables from the JSON already there

Each script in ``SCRIPTS`` runs in its own process with ``--json OUT/<script>.json`` (and
``--quick`` in quick mode); its printed output goes to ``OUT/<script>.log``, and
``OUT/run_all.json`` records each script's command, exit status, wall time and the
machine's load. Then :func:`render` turns every JSON file into CSV tables, an ``.rst``
fragment per script and a plot, under ``OUT/rendered/``. The documentation renders the
committed results of a full run (``docs/benchmarks/results/``) the same way when it is
built (``docs/conf.py``), so no figure on the benchmark page is typed by hand. A script
that is missing or fails is reported and the others still run; the exit status is 1 if
any failed.
"""

import argparse
import csv
import datetime
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
FULL_OUT = ROOT / "docs" / "benchmarks" / "results"
QUICK_OUT = ROOT / "build" / "benchmarks-quick"

# script: (arguments of the full run, arguments of the quick run), in the order they run.
SCRIPTS = {
    "bench_peers": ([], ["--quick"]),
    "bench_filter_smoother": ([], ["--quick"]),
    "bench_missing": ([], ["--quick"]),
    "bench_kalman_fit": (["--statsmodels"], ["--quick"]),
    # The two robustness scripts at sizes that keep the whole run near an hour on two
    # shared cores; run them alone for their defaults (50 and 20 systems).
    "bench_kalman_robustness": (["--n-systems", "30", "--n-speed", "10"], ["--quick"]),
    "bench_scales": ([], ["--quick"]),
    "bench_rnn": ([], ["--quick"]),
    "bench_rnn_robustness": (["--kalman", "--n-systems", "8"], ["--quick"]),
    # The simulation studies of DynamicsRecovery on two shared cores: the coverage study on
    # 16 systems x 8 draws in six set-ups and the Kalman model's two with the bootstrap's
    # regions at its default of 50 refits (about an hour, most of it the 12,800 bootstrap
    # refits; the misses sit on a few of systems 8 to 15, which its default of 8 systems
    # never draws), order selection on 6 (about 5 minutes; its default of 20 takes 30).
    "bench_intervals": (["--n-systems", "16", "--n-reps", "8", "--setups",
                         "kalman-input,kalman-forecasting,kalman-series,rnn-input,rnn-forecasting,"
                         "tanh-input,tanh-forecasting,kalman-input-bootstrap,"
                         "kalman-forecasting-bootstrap", "--n-bootstrap", "50",
                         "--n-jobs", "2"], ["--quick"]),
    "bench_order": (["--n-systems", "6"], ["--quick"]),
}
COLUMNS = ["tool", "data", "figure", "value", "skkalman", "ratio", "note"]


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def run(names, out, quick):
    """Run the scripts ``names``; return {name: record} for ``run_all.json``."""
    env = dict(os.environ)
    # The package of this checkout, wherever an installed one points.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    records = {}
    for name in names:
        script = BENCHMARKS / f"{name}.py"
        if not script.is_file():
            print(f"[run_all] {name}: not in this checkout, skipped", flush=True)
            records[name] = {"status": "missing"}
            continue
        full_args, quick_args = SCRIPTS[name]
        json_path = out / f"{name}.json"
        command = [sys.executable, str(script), *(quick_args if quick else full_args),
                   "--json", str(json_path)]
        shown = " ".join(["python", f"benchmarks/{name}.py", *command[2:-2]])
        print(f"[run_all] {shown}", flush=True)
        load_before, start = _load(), time.perf_counter()
        with open(out / f"{name}.log", "w") as log:
            proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  cwd=ROOT)
        seconds = time.perf_counter() - start
        status = "ok" if proc.returncode == 0 and json_path.is_file() else "failed"
        print(f"[run_all]   {status} in {seconds:.0f} s (log: {out / (name + '.log')})",
              flush=True)
        records[name] = {"status": status, "returncode": proc.returncode,
                         "command": shown, "seconds": round(seconds, 1),
                         "load_before": load_before, "load_after": _load(),
                         "finished": datetime.datetime.now(datetime.timezone.utc)
                         .isoformat(timespec="seconds")}
    return records


# -- rendering ------------------------------------------------------------------------------


def _format(value, digits=4):
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value  # "nan", "inf" as written by the scripts
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def _rst_escape(text):
    """Text as reStructuredText shows it literally (tables' cells are parsed as markup):
    ``converged_`` or ``W_hh_`` would otherwise be read as references."""
    text = str(text).replace("\\", "\\\\")
    text = text.replace("*", r"\*").replace("`", r"\`").replace("|", r"\|")
    return re.sub(r"(\w)_(?!\w)", r"\1\\_", text)


def _csv_table(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_rst_escape(row["tool"]), _rst_escape(row["data"]),
                             _rst_escape(row["figure"]), _rst_escape(_format(row["value"])),
                             _rst_escape(_format(row.get("ours"))),
                             _rst_escape(_format(row.get("ratio"), 3)),
                             _rst_escape(row.get("note", ""))])


def _machine_line(report, record):
    machine = report.get("machine", {})
    # Paths of this checkout relative to its root, as a reader would type them.
    command = report.get("command", "").replace(f"{ROOT}{os.sep}", "")
    parts = [f"``{command}``"]
    if report.get("quick"):
        parts.append("**quick mode** (a smoke test: sizes too small to mean anything)")
    parts.append(f"started {report.get('started', '?')}")
    seconds = record.get("seconds", report.get("seconds"))
    if seconds is not None:
        parts.append(f"ran {_format(float(seconds), 3)} s")
    load = machine.get("load_before")
    if load:
        parts.append(f"{machine.get('cpus', '?')} CPUs, load average {load[0]} before and "
                     f"{(machine.get('load_after') or ['?'])[0]} after")
    return "; ".join(parts) + "."


def render_report(report, record, target):
    """An ``.rst`` fragment and one CSV file per table of one script's report."""
    name = report["script"]
    lines = [_machine_line(report, record), ""]
    versions = report.get("versions", {})
    if versions:
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
                  ""]
    for table in report.get("tables", []):
        csv_name = f"{name}__{table['key']}.csv"
        _csv_table(table["rows"], target / csv_name)
        lines += [f".. rubric:: {_rst_escape(table['title'] or table['key'])}", "",
                  f"Data: {_rst_escape(table['data'])}.", "",
                  ".. csv-table::", f"   :file: {csv_name}", "   :header-rows: 1",
                  "   :class: benchmark-table", ""]
    skipped = report.get("skipped", [])
    if skipped:
        lines += ["Not in these tables:", ""]
        for item in skipped:
            where = f" ({item['table']})" if item.get("table") else ""
            lines.append(f"- {item['tool']}{where}: {_rst_escape(item['reason'])}")
        lines.append("")
    return lines


def _rnn_robustness_report(rows):
    """The RNN robustness benchmark writes one row per fit: summarize them as tables."""
    import numpy as np

    try:  # the script's own targets, where it states them
        from bench_rnn_robustness import TARGETS as targets
    except ImportError:  # pragma: no cover
        targets = {}
    table = {"key": "summary", "title": "Held-out MSE / optimum over random systems",
             "data": f"{len({r['system'] for r in rows})} random systems", "rows": []}
    groups = {}
    for r in rows:
        key = (r["setup"], r["nonlinearity"], r["hidden_size"] // max(r["n"], 1))
        groups.setdefault(key, []).append(r)
    for (setup, nonlinearity, multiple), sel in sorted(groups.items()):
        ratios = np.array([r["ratio"] for r in sel], dtype=float)
        data = f"{setup}, hidden_size = {multiple} n"
        tool = f"skkalman {nonlinearity}"
        for stat, value in [("median", np.median(ratios)),
                            ("90th pct", np.percentile(ratios, 90)),
                            ("worst", ratios.max())]:
            table["rows"].append({"tool": tool, "data": data, "figure": f"MSE / opt, {stat}",
                                  "value": float(value), "ours": None, "ratio": None,
                                  "note": f"{len(sel)} fits"})
        target = targets.get((setup, nonlinearity))
        if target is not None:
            table["rows"].append({"tool": tool, "data": data,
                                  "figure": f"fraction with MSE / opt <= {target}",
                                  "value": float(np.mean(ratios <= target)), "ours": None,
                                  "ratio": None, "note": "the issue's target"})
        table["rows"].append({"tool": tool, "data": data, "figure": "converged_ (count)",
                              "value": sum(bool(r.get("converged")) for r in sel),
                              "ours": None, "ratio": None, "note": f"of {len(sel)}"})
        seconds = np.array([r["seconds"] for r in sel], dtype=float)
        table["rows"].append({"tool": tool, "data": data, "figure": "fit seconds, median",
                              "value": float(np.median(seconds)), "ours": None,
                              "ratio": None, "note": f"worst {seconds.max():.1f} s"})
        for key, label in [("eigenvalue_error", "eigenvalue error, median"),
                           ("kalman_eigenvalue_error", "Kalman MLE eigenvalue error, median")]:
            values = [r[key] for r in sel if key in r]
            if values:
                table["rows"].append({"tool": tool if key == "eigenvalue_error"
                                      else "skkalman Kalman", "data": data, "figure": label,
                                      "value": float(np.median(values)), "ours": None,
                                      "ratio": None, "note": ""})
    return {"script": "bench_rnn_robustness", "tables": [table], "skipped": []}


def _plot_peers(report, target):
    """Time and accuracy of every peer relative to skkalman, one panel per comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for table in report.get("tables", []):
        rows = [r for r in table["rows"] if r["figure"] in ("seconds", "fit seconds")
                and isinstance(r.get("ratio"), float) and r["tool"] != "skkalman"]
        if rows:
            panels.append((table["title"], rows))
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.2 + 0.45 * sum(
        len(rows) + 1 for _, rows in panels)), squeeze=False)
    for ax, (title, rows) in zip(axes[:, 0], panels, strict=True):
        tools = [r["tool"] for r in rows]
        ratios = [r["ratio"] for r in rows]
        ax.barh(tools, ratios, color=["C3" if x > 1 else "C2" for x in ratios])
        ax.axvline(1.0, color="k", lw=1)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        for y, x in enumerate(ratios):
            ax.text(x, y, f" {x:.3g}x", va="center", fontsize=8)
    axes[-1, 0].set_xlabel("time relative to skkalman (log scale; > 1: slower than skkalman)")
    fig.tight_layout()
    path = target / "bench_peers_time.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def render(results, target, image_prefix=""):
    """Render every ``<script>.json`` in ``results`` into ``target`` (CSV, .rst, .png).

    Every script of ``SCRIPTS`` gets a fragment ``target/<script>.rst``, saying so when its
    JSON is absent, so the documentation's includes always resolve. ``image_prefix`` is
    the folder of ``target`` as the including document sees it (Sphinx resolves image
    paths from the including document, docutils' tables from the included file).
    """
    results, target = Path(results), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    index_path = results / "run_all.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    records = index.get("scripts", {})
    for name in SCRIPTS:
        path = results / f"{name}.json"
        record = records.get(name, {})
        if not path.is_file():
            lines = [f"Not in these results: run ``python benchmarks/run_all.py --only "
                     f"{name}``" + (f" (last attempt: {record['status']})."
                                    if record.get("status") else "."), ""]
        else:
            report = json.loads(path.read_text())
            if isinstance(report, list):  # one row per fit: summarized here
                summary = _rnn_robustness_report(report)
                summary.update(command=record.get("command", ""),
                               started=record.get("finished", "?"))
                report = summary
            lines = render_report(report, record, target)
            if name == "bench_peers":
                image = _plot_peers(report, target)
                if image:
                    lines += [f".. image:: {image_prefix}{image}",
                              "   :alt: time relative to skkalman",
                              ""]
        (target / f"{name}.rst").write_text("\n".join(lines) + "\n")
    # Each script's own time (run_all's record, or the seconds its report measured), so
    # that scripts rerun with --only add up with the others.
    seconds = {}
    for name in SCRIPTS:
        path = results / f"{name}.json"
        if name in records and "seconds" in records[name]:
            seconds[name] = float(records[name]["seconds"])
        elif path.is_file():
            report = json.loads(path.read_text())
            if isinstance(report, dict) and "seconds" in report:
                seconds[name] = float(report["seconds"])
    if seconds:
        total = sum(seconds.values())
        kind = "last full run" if not index.get("quick") else "last (quick) run"
        text = (f"The {kind} of the {len(seconds)} scripts took {_format(total, 3)} s in all "
                f"({_format(total / 60, 3)} min) on {index.get('cpus', '?')} CPUs shared "
                "with other work; each table below gives its script's command, time and "
                "the machine's load.")
    else:
        text = "No run recorded yet."
    (target / "run_all.rst").write_text(text + "\n")
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="every script's quick mode (checks the pipeline, in minutes)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default: {FULL_OUT.relative_to(ROOT)}, or "
                             f"{QUICK_OUT.relative_to(ROOT)} with --quick)")
    parser.add_argument("--only", nargs="+", choices=list(SCRIPTS), default=None)
    parser.add_argument("--skip", nargs="+", choices=list(SCRIPTS), default=[])
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or (QUICK_OUT if args.quick else FULL_OUT)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    if not args.render_only:
        names = [n for n in (args.only or SCRIPTS) if n not in args.skip]
        index_path = out / "run_all.json"
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
        start, load = time.perf_counter(), _load()
        records = run(names, out, args.quick)
        scripts = {**index.get("scripts", {}), **records}
        index = {"quick": args.quick, "cpus": os.cpu_count(), "load_before": load,
                 "scripts": scripts,
                 # The whole run's time: the sum over every script whose figures are kept.
                 "seconds": round(sum(r.get("seconds", 0.0) for r in scripts.values()), 1),
                 "this_invocation_seconds": round(time.perf_counter() - start, 1)}
        index_path.write_text(json.dumps(index, indent=1) + "\n")
        failed = [n for n, r in records.items() if r["status"] == "failed"]
    target = render(out, out / "rendered")
    print(f"[run_all] tables in {target}")
    if failed:
        print(f"[run_all] failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
