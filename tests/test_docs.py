"""The documentation: the site builds with warnings as errors (the gallery's examples run in
it at budgets of a few seconds), every public name is in its API reference, no internal
link or image leads nowhere, BENCHMARKS.md is what the result files give, and the Python
examples on the pages (``docs/run_examples.py``: their training budgets cut to 1 s so that
the suite stays short) and in the docstrings run."""
import doctest
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sdescore

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytest.importorskip("sphinx")
sys.path.insert(0, str(DOCS))
from check_site import broken_links  # noqa: E402
from conftest import DOCS_JOBS, start_docs_jobs  # noqa: E402
from run_examples import pages  # noqa: E402


@pytest.fixture(scope="module")
def docs_jobs(tmp_path_factory):
    """The session's background docs jobs (conftest.py), started here if they were not."""
    if not DOCS_JOBS:
        DOCS_JOBS.update(out=(out := tmp_path_factory.mktemp("docs")), **start_docs_jobs(out))
    return DOCS_JOBS


@pytest.fixture(scope="module")
def site(docs_jobs):
    """The built site, waited for."""
    code = docs_jobs["build"].wait()
    assert code == 0, (docs_jobs["out"] / "build.log").read_text()[-5000:]
    return docs_jobs["out"] / "html"


@pytest.fixture(scope="module")
def page_results(docs_jobs):
    """{page: None or the traceback of its examples}, waited for."""
    docs_jobs["pages"].wait()
    results = docs_jobs["out"] / "pages.json"
    assert results.exists(), (docs_jobs["out"] / "pages.log").read_text()[-5000:]
    return json.loads(results.read_text())


MODULES = ["sdescore"] + [info.name for info in pkgutil.walk_packages(sdescore.__path__, "sdescore.")
                          if not any(part.startswith("_") for part in info.name.split("."))]


def public_names():
    """(module, name) for every name of the package's and each public submodule's __all__."""
    return [(module, name) for module in MODULES
            for name in getattr(importlib.import_module(module), "__all__", [])]


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


def test_every_public_name_is_in_the_api_reference(site):
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    inventory = getattr(inventory, "data", inventory)      # a dict before Sphinx 8.2
    entries = {name for kind, items in inventory.items() if kind.startswith("py:") for name in items}
    assert "sdescore.training.fits.fit" in entries
    missing = []
    for module, name in public_names():
        obj = getattr(importlib.import_module(module), name)
        documented = f"{module}.{name}" in entries or any(
            entry.rsplit(".", 1)[-1] == name and _resolve(entry) is obj for entry in entries)
        page = (site / "api" / f"{module}.html").read_text()
        if not documented or not re.search(rf">{re.escape(name)}<", page):
            missing.append(f"{module}.{name}")
    assert not missing, missing


def test_no_constant_shows_its_first_sentence_as_a_type(site):
    """napoleon reads a colon in the first line of a constant's ``#:`` comment or docstring
    as "type: description" and prints the sentence's halves swapped under "Type"; none of
    ours has a type field, so a "Type" on a constant's entry is that misreading."""
    misread = []
    for page in (site / "api").glob("*.html"):
        for entry in re.findall(r'<dl class="py data">(.*?)</dl>', page.read_text(), re.S):
            if re.search(r">Type<", entry):
                misread.append(re.search(r'id="([^"]+)"', entry).group(1))
    assert not misread, misread


def test_no_internal_link_or_image_leads_nowhere(site):
    assert (site / "_images").is_dir() or list(site.rglob("*.png"))
    assert broken_links(site) == []


def test_the_benchmarks_page_is_the_result_files():
    run = subprocess.run([sys.executable, "-m", "benchmarks.report", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_benchmark_commands_are_shown_whole_and_paste_back():
    """Each result file's command, as BENCHMARKS.md shows it (broken before options with a
    backslash), is the same words when the shell joins its lines, and only a line that is
    one option with its values runs past the width."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.report import COMMAND_WIDTH, shell_lines
    for result in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        command = json.loads(result.read_text())["command"]
        shown = shell_lines(command)
        assert shown.replace(" \\\n", " ").split() == command.split(), result.name
        for line in shown.splitlines():
            words = line.rstrip(" \\").split()
            assert len(line) <= COMMAND_WIDTH + 6 or words[0].startswith("--") and not any(
                word.startswith("--") for word in words[1:]), (result.name, line)


@pytest.mark.parametrize("page", [str(p.relative_to(DOCS)) for p in pages()])
def test_the_examples_on_a_page_run(page, page_results):
    assert page in page_results
    assert page_results[page] is None, page_results[page]


@pytest.mark.parametrize("module", [m for m in MODULES if ">>> " in
                                    Path(importlib.import_module(m).__file__).read_text()])
def test_the_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
