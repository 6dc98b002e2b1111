"""Lazy package namespaces (PEP 562): ``import deepeft`` costs milliseconds, a name is imported on first use.

A package ``__init__`` lists its public names as ordinary relative imports inside ``if TYPE_CHECKING:`` (what
readers, IDEs and mypy see) and calls :func:`attach`; at run time that block is read once from the package's
source and each name is imported from its module on first attribute access (``de.kernel``, ``from deepeft import
kernel``), then cached in the package namespace. ``dir(package)`` lists them; any submodule is an attribute too
(``deepeft.theory``). Names imported outside the block are ordinary eager imports.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["attach"]


def _lazy_block(path: str) -> dict[str, tuple[str, str | None]]:
    """{public name: (relative module, attribute or None for a submodule)} from the ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    out: dict[str, tuple[str, str | None]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.level == 1:
                for a in stmt.names:
                    if stmt.module is None:  # from . import submodule
                        out[a.asname or a.name] = ("." + a.name, None)
                    else:
                        out[a.asname or a.name] = ("." + stmt.module, a.name)
    return out


def _keep_functions_over_submodules(package: str, table: dict[str, tuple[str, str | None]]) -> None:
    """A public function named like its own module (``theory.dntk.dntk``, ``diagnostics.diagnose.diagnose``): importing
    the submodule makes the import system set the package attribute to the *module* (``setattr(package, "dntk",
    <module>)``), which would then shadow the function for every later ``package.dntk`` — depending on import order.
    The package's module class swaps such an assignment for the function, as an eager ``from .dntk import dntk`` did."""
    same = {name: attr for name, (module, attr) in table.items() if attr is not None and module == "." + name}
    if not same:
        return

    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in same and isinstance(value, types.ModuleType):
                value = getattr(value, same[name])
            super().__setattr__(name, value)

    sys.modules[package].__class__ = _Package


def attach(
    namespace: dict[str, Any], extra: tuple[str, ...] = (), computed: dict[str, Callable[[], Any]] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose ``__init__`` has the globals ``namespace``.

    ``extra``: submodules reachable as attributes (``deepeft.lattice``) without being in the block;
    ``computed``: names whose value a function computes on first use (``__version__``).
    """
    computed = dict(computed or {})
    package = namespace["__name__"]
    table = _lazy_block(namespace["__file__"])
    for sub in extra:
        table.setdefault(sub, ("." + sub, None))
    _keep_functions_over_submodules(package, table)

    def __getattr__(name: str) -> Any:
        if name in computed:
            namespace[name] = value = computed[name]()
            return value
        try:
            module, attr = table[name]
        except KeyError:  # any submodule is an attribute, as after an eager import of the package
            if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
            module, attr = "." + name, None
        mod = importlib.import_module(module, package)
        value = mod if attr is None else getattr(mod, attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table) | set(computed))

    return __getattr__, __dir__
