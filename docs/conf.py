"""Sphinx configuration: numpydoc API pages, the user guide, a sphinx-gallery of examples
and the benchmark page rendered from the benchmarks' JSON.

The build needs no network: intersphinx inventories that cannot be fetched are left out
(the references to those projects then render as plain text), see ``_intersphinx``.
"""

import concurrent.futures
import os
import sys
import urllib.request
from pathlib import Path

import skkalman

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "benchmarks"))

project = "skkalman"
author = "skkalman developers"
release = version = skkalman.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
exclude_patterns = ["_build", "auto_examples/*.ipynb", "benchmarks/results",
                    "benchmarks/_generated"]
html_theme = "alabaster"

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("skkalman",),
    # An example that raises fails the build (sphinx-gallery's default, stated).
    "abort_on_example_error": True,
}

# -- intersphinx, with or without a network ---------------------------------------------
INTERSPHINX = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "scipy": "https://docs.scipy.org/doc/scipy",
    "sklearn": "https://scikit-learn.org/stable",
    "skorch": "https://skorch.readthedocs.io/en/stable",
}
# Downloaded inventories are kept here (outside the source tree, reused offline).
INVENTORY_CACHE = DOCS / "_build" / "intersphinx"


def _intersphinx(projects, cache, timeout=5.0):
    """Map each project to a local copy of its inventory, fetched when the network allows.

    A project whose inventory can be neither fetched nor found in ``cache`` (from an
    earlier build) is left out, so that an offline build passes with warnings as errors;
    its references render as plain text instead of links. ``SKKALMAN_DOCS_OFFLINE=1``
    skips the download attempts.
    """
    cache.mkdir(parents=True, exist_ok=True)
    offline = os.environ.get("SKKALMAN_DOCS_OFFLINE", "") not in ("", "0")

    def fetch(name, url):
        path = cache / f"{name}.inv"
        if not offline:
            try:
                with urllib.request.urlopen(f"{url}/objects.inv", timeout=timeout) as r:
                    data = r.read()
                if data.startswith(b"# Sphinx inventory version"):
                    path.write_bytes(data)
            except OSError:
                pass  # no network: an earlier copy, or nothing
        return name, url, path if path.is_file() else None

    # In parallel: offline, each attempt may wait for its timeout.
    with concurrent.futures.ThreadPoolExecutor(len(projects)) as pool:
        found = list(pool.map(lambda item: fetch(*item), projects.items()))
    missing = [name for name, _, path in found if path is None]
    if missing:
        print(f"intersphinx: no inventory for {', '.join(missing)} (offline?); their "
              "references render as plain text")
    return {name: (url, str(path)) for name, url, path in found if path is not None}


intersphinx_mapping = _intersphinx(INTERSPHINX, INVENTORY_CACHE)

# -- the benchmark page ---------------------------------------------------------------------
# Tables and plots rendered from the committed JSON of the last full benchmark run
# (``python benchmarks/run_all.py``); nothing on the page is typed by hand.
import run_all  # noqa: E402  (benchmarks/, on the path above)

run_all.render(DOCS / "benchmarks" / "results", DOCS / "benchmarks" / "_generated",
               image_prefix="/benchmarks/_generated/")
