"""Write the API reference: one page per public module of sdescore, from its ``__all__``.

Each public object is documented once, on the page of the module that defines it (its
"home"); a module that re-exports it (``sdescore.fit`` is ``sdescore.training.fits.fit``)
lists the name with a link to that entry and its first docstring line, so every name of
every ``__all__`` appears in the reference and no cross-reference has two targets.
A module is public when no part of its dotted name starts with ``_``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import sdescore

PACKAGE = "sdescore"


def public_modules() -> list[str]:
    """The dotted names of sdescore's public modules, the package first."""
    names = [PACKAGE]
    for info in pkgutil.walk_packages(sdescore.__path__, PACKAGE + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names, key=lambda name: (name != PACKAGE, name))


def exported(module_name: str) -> list[str]:
    """The module's ``__all__`` (empty when it has none)."""
    return list(getattr(importlib.import_module(module_name), "__all__", []))


def _assigns(module_name: str, name: str) -> bool:
    """Whether the module's source assigns ``name`` at its top level."""
    try:
        source = inspect.getsource(importlib.import_module(module_name))
    except (OSError, TypeError):
        return False
    return re.search(rf"^{re.escape(name)}\s*(:[^=\n]*)?=", source, re.M) is not None


def homes(modules: list[str]) -> dict[tuple[str, str], str]:
    """(module, name) -> the module whose page documents that object."""
    listing = {module: exported(module) for module in modules}
    result = {}
    for module, names in listing.items():
        for name in names:
            obj = getattr(importlib.import_module(module), name)
            if inspect.ismodule(obj):
                result[module, name] = obj.__name__
                continue
            defined = getattr(obj, "__module__", None) if callable(obj) else None
            if defined in listing and name in listing[defined]:
                result[module, name] = defined
                continue
            assigning = [m for m in modules if name in listing[m] and _assigns(m, name)]
            listed = [m for m in modules if name in listing[m]
                      and getattr(importlib.import_module(m), name) is obj]
            result[module, name] = (assigning or listed)[0]
    return result


def _directive(module: str, name: str) -> str:
    obj = getattr(importlib.import_module(module), name)
    if inspect.isclass(obj):
        return f".. autoclass:: {module}.{name}\n   :members:\n"
    if callable(obj):
        return f".. autofunction:: {module}.{name}\n"
    return f".. autodata:: {module}.{name}\n"


def _summary(module: str, name: str) -> str:
    doc = inspect.getdoc(getattr(importlib.import_module(module), name)) or ""
    obj = getattr(importlib.import_module(module), name)
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return first if callable(obj) or inspect.ismodule(obj) else ""


def page(module: str, where: dict[tuple[str, str], str]) -> str:
    """The reStructuredText of one module's page."""
    title = f"``{module}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module}", "   :no-members:", ""]
    documented = [n for n in exported(module) if where[module, n] == module]
    elsewhere = [n for n in exported(module) if where[module, n] != module]
    if elsewhere:
        lines += ["Names defined elsewhere and exported here:", ""]
        for name in elsewhere:
            home = where[module, name]
            if inspect.ismodule(getattr(importlib.import_module(module), name)):
                lines.append(f"- :doc:`{name} <{home}>`: {_summary(module, name)}")
            else:
                summary = _summary(module, name)
                lines.append(f"- :py:obj:`{name} <{home}.{name}>`" + (f": {summary}" if summary else ""))
        lines.append("")
    for name in documented:
        lines += [_directive(module, name)]
    return "\n".join(lines)


def write(folder: Path) -> None:
    """Write ``folder/index.rst`` and one ``folder/MODULE.rst`` per public module."""
    folder.mkdir(parents=True, exist_ok=True)
    modules = public_modules()
    where = homes(modules)
    for module in modules:
        text = page(module, where)
        target = folder / f"{module}.rst"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    index = ["API reference", "=============", "",
             "Every public module, with each name of its ``__all__``. An object is documented",
             "on the page of the module that defines it; the others link there.", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {module}" for module in modules]
    text = "\n".join(index) + "\n"
    if not (folder / "index.rst").exists() or (folder / "index.rst").read_text() != text:
        (folder / "index.rst").write_text(text)
