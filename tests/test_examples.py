"""Every gallery example runs to the end, and every code block of the user guide runs and
holds its checks (the guide's comparisons with other tools assert what they claim)."""

import re
import runpy
import warnings
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))
GUIDE = sorted((ROOT / "docs" / "user_guide").glob("*.rst"))
# Peer tools the guide shows side by side with skkalman: optional (the bench extra).
OPTIONAL = {"darts", "dynamax", "jax", "filterpy", "simdkalman", "nfoursid", "pykalman",
            "statsmodels", "dask", "distributed"}


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    runpy.run_path(str(path), run_name="__main__")
    assert plt.get_fignums(), "the example draws a figure"
    plt.close("all")


def code_blocks(path):
    """The ``.. code-block:: python`` blocks of an .rst page, dedented, in order."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if re.match(r"\s*\.\. code-block:: python\s*$", lines[i]):
            indent = len(lines[i]) - len(lines[i].lstrip())
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            text = "\n".join(body).strip("\n")
            margin = min(len(x) - len(x.lstrip()) for x in text.splitlines() if x.strip())
            blocks.append((i, "\n".join(x[margin:] for x in text.splitlines())))
        else:
            i += 1
    return blocks


def test_guide_has_code():
    assert GUIDE, "docs/user_guide is missing"
    assert sum(len(code_blocks(page)) for page in GUIDE) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("page", GUIDE, ids=lambda p: p.name)
def test_user_guide_code_runs(page, monkeypatch):
    """The blocks of one page run in order in one namespace, as a reader would run them.

    A block that needs a peer tool which is not installed is skipped (the tools are
    optional); any other failure, or a failed check inside a block, fails the test.
    """
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    namespace, skipped = {"__name__": "__guide__"}, []
    for line, code in code_blocks(page):
        try:
            with warnings.catch_warnings():
                # Peer tools' own deprecation and convergence chatter is not the guide's;
                # a warning raised in the guide's code or in skkalman stays an error.
                warnings.simplefilter("ignore")
                warnings.filterwarnings("error", module=r"(__guide__|skkalman)(\.|$)")
                exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except ModuleNotFoundError as exc:
            if exc.name.split(".")[0] not in OPTIONAL:
                raise
            skipped.append(exc.name)
    plt.close("all")
    if skipped:
        pytest.skip(f"not installed: {', '.join(sorted(set(skipped)))}")
