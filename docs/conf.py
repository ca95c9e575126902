"""Sphinx configuration for the sdescore documentation site.

Build: ``sphinx-build -W docs docs/_build/html`` from the repository root (the README's
command). The API pages under ``docs/api/`` are written by ``api_pages.py`` at every
build from the package's ``__all__`` lists; the gallery runs ``examples/`` through
sphinx-gallery (``gallery_args.py``: with ``SDESCORE_DOCS_QUICK=1``, what the test suite
sets, its examples run at budgets of a few seconds).
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import api_pages  # noqa: E402
import gallery_args  # noqa: E402

import sdescore  # noqa: E402

project = "sdescore"
author = "the sdescore developers"
copyright = "2026, the sdescore developers"
release = sdescore.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5",
                    "auto_examples/*.codeobj.json"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# Math renders with MathJax 3 from its CDN; SDESCORE_DOCS_MATHJAX2 names a local MathJax 2
# (e.g. Debian's libjs-mathjax: /usr/share/javascript/mathjax/MathJax.js) for a site viewed
# offline, as check_site.py's screenshots are.
if os.environ.get("SDESCORE_DOCS_MATHJAX2"):
    mathjax_path = (Path(os.environ["SDESCORE_DOCS_MATHJAX2"]).resolve().as_uri()
                    + "?config=TeX-AMS-MML_HTMLorMML")
    mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                                   "processEscapes": True, "processClass": "math|output_area",
                                   "ignoreClass": "document"}}

html_theme = "furo"
html_title = f"sdescore {release}"
html_static_path = ["_static"]
html_css_files = ["tables.css"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Arguments", "params_style")]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": gallery_args.RUN_PATTERN,
    "reset_argv": "gallery_args.argv",
    "run_stale_examples": gallery_args.QUICK,   # the test suite runs every example every time
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
}


def setup(app):
    app.connect("builder-inited", lambda app: api_pages.write(HERE / "api"))
