"""Run the Python examples of the documentation pages.

    python docs/run_examples.py OUT.json [--budget SECONDS]

Each page's ```python blocks run in order, in one fresh namespace per page, in a temporary
working folder, with every ``max_time=N`` cut to ``--budget`` seconds (default 1) so that a
check of all pages stays short. OUT.json maps each page (relative to docs/) to null when its
examples ran, or to the traceback of the failure. Exit status 1 if any page failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def pages() -> list[Path]:
    """The pages with Python examples (BENCHMARKS.md's include aside)."""
    found = [p for p in DOCS.rglob("*.md") if "_build" not in p.parts and "auto_examples" not in p.parts]
    return sorted(p for p in found if "```python" in p.read_text())


def page_code(page: Path, budget: float) -> str:
    """The page's ```python blocks, in order, with each max_time cut to ``budget``."""
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    return re.sub(r"max_time=\d+(\.\d+)?", f"max_time={budget:g}", "\n".join(blocks))


def run(page: Path, budget: float) -> str | None:
    """None when the page's examples run, else the traceback."""
    start = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            exec(compile(page_code(page, budget), str(page), "exec"), {"__name__": "docs_page"})
        except Exception:  # noqa: BLE001 - any failure is the page's result
            return traceback.format_exc()
        finally:
            os.chdir(start)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the docs pages' Python examples.")
    parser.add_argument("out", type=Path, help="the JSON file of results")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds for each max_time")
    args = parser.parse_args(argv)
    results = {str(page.relative_to(DOCS)): run(page, args.budget) for page in pages()}
    args.out.write_text(json.dumps(results, indent=1))
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
