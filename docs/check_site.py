"""Check the built documentation site: internal links and images, and screenshots of the
main pages in headless Chromium.

    python docs/check_site.py [--site docs/_build/html] [--out docs/_build/screenshots]

Every ``href`` and ``src`` of every page that points inside the site must name a file that
exists and, with a ``#fragment``, an ``id`` in that file; the command prints each broken one
and exits 1 if there is any. Then, when a ``chromium`` (Debian's package) or
``chromium-browser`` is on the path, it saves a full-width screenshot of each main page as
PNG in ``--out`` for a person to look at. The test suite runs the link check only.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

MAIN_PAGES = ["index.html", "getting-started.html", "concepts.html", "guide/tables.html",
              "guide/samplers.html", "guide/likelihoods.html", "auto_examples/index.html",
              "auto_examples/quickstart.html", "api/index.html", "api/sdescore.html",
              "api/sdescore.models.score.html", "benchmarks.html"]


class _Page(HTMLParser):
    """The ids a page defines and the links and images it points to."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and tag in ("a", "img", "link", "script"):
                self.targets.append(attrs[key])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(site: Path) -> list[str]:
    """'PAGE -> TARGET (why)' for each internal link or image of the site that leads nowhere."""
    site = Path(site).resolve()
    pages = {path: _parse(path) for path in site.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        for target in page.targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith(("mailto:", "javascript:")):
                continue
            file = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if file.is_dir():
                file = file / "index.html"
            where = f"{path.relative_to(site)} -> {target}"
            if not file.exists():
                broken.append(f"{where} (no such file)")
            elif parts.fragment and file.suffix == ".html":
                if unquote(parts.fragment) not in pages[file].ids:
                    broken.append(f"{where} (no such anchor)")
    return broken


def screenshots(site: Path, out: Path) -> list[Path]:
    """A PNG of each of MAIN_PAGES, taken by headless Chromium (none without one)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium on the path: screenshots skipped", file=sys.stderr)
        return []
    out.mkdir(parents=True, exist_ok=True)
    taken = []
    for name in MAIN_PAGES:
        target = out / (name.replace("/", "_").removesuffix(".html") + ".png")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", "--window-size=1280,2000", "--virtual-time-budget=10000",
                        f"--screenshot={target}", (site / name).resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
        taken.append(target)
    return taken


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check the built docs site.")
    parser.add_argument("--site", default="docs/_build/html", type=Path)
    parser.add_argument("--out", default="docs/_build/screenshots", type=Path)
    args = parser.parse_args(argv)
    missing = [name for name in MAIN_PAGES if not (args.site / name).exists()]
    broken = broken_links(args.site) + [f"{name} (main page not built)" for name in missing]
    for line in broken:
        print(line)
    for path in screenshots(args.site, args.out):
        print(f"screenshot {path}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
