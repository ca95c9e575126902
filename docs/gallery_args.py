"""The command-line arguments each gallery example runs with when the docs are built.

Outputs go to ``docs/_build/gallery_files`` (never into ``examples/``). With
``SDESCORE_DOCS_QUICK=1`` (the test suite) the training budgets are cut to a few seconds,
so the gallery shows that each example runs, not what it reaches at its own budget.
The examples that need data files (``imputation.py``, ``mnist.py``) are shown, not run.
"""
import os
from pathlib import Path

OUT = Path(__file__).parent / "_build" / "gallery_files"
QUICK = os.environ.get("SDESCORE_DOCS_QUICK") == "1"

ARGS = {
    "quickstart.py": ["--quiet", "--out", str(OUT / "quickstart.png")]
    + (["--max-time", "3"] if QUICK else []),
    "exact_likelihood.py": ["--quiet", "--out", str(OUT / "exact_likelihood.png")]
    + (["--points", "500"] if QUICK else []),
    "conditional_digits.py": ["--quiet", "--out", str(OUT / "digits")]
    + (["--max-time", "3"] if QUICK else []),
}
RUN_PATTERN = "/(" + "|".join(name[:-3] for name in ARGS) + r")\.py$"


def argv(_gallery_conf, script_vars):
    """sys.argv[1:] for one example (sphinx-gallery's ``reset_argv``)."""
    OUT.mkdir(parents=True, exist_ok=True)
    return ARGS.get(Path(script_vars["src_file"]).name, [])
