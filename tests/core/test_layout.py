"""The tree is the architecture: rooms import downwards only and no module imports itself back.

Every `import` counts, including those inside functions and under TYPE_CHECKING: a lazy import
still ties two modules together. Importing `a.b.c` runs package `a.b` first, so it counts for
`a.b` too: that is why `arena_core.ledger` and `arena_core.cli` import none of their modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "arena_core"

# room -> the rooms it may import (besides itself). The kernel is arena_core's top-level modules;
# the ledger sits below it and may use only the kernel's plain values and errors.
BASE = {"arena_core.errors", "arena_core.types", "arena_core.ids"}
ALLOWED = {
    "ledger": {"base"},
    "kernel": {"base", "ledger"},
    "reports": {"base", "kernel", "ledger"},
    "learning": {"base", "kernel", "ledger", "reports"},
    "cluster": {"base", "kernel", "ledger"},
    "testing": {"base", "kernel", "ledger"},
    "cli": {"base", "kernel", "ledger", "reports", "learning", "cluster", "testing"},
}
ROOMS = set(ALLOWED) - {"kernel"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str:
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    return "kernel"


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py") if "versions" not in p.parts}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The arena_core modules a file imports (a name imported from a package counts as the
    submodule when one exists)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "arena_core":
                out.add(name)
                break
    return out


def graph() -> dict[str, set[str]]:
    """Importing `a.b.c` runs `a.b`'s __init__ first, so each import also counts for the
    packages above the imported module."""
    mods = modules()
    known = set(mods)
    out = {}
    for m, p in mods.items():
        deps = set()
        for dep in imports_of(p, known):
            parts = dep.split(".")
            deps.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        out[m] = (deps & known) - {m}
    return out


def test_rooms_import_downwards_only() -> None:
    wrong = []
    for mod, deps in graph().items():
        room = room_of(mod)
        for dep in deps:
            if dep.startswith(f"{mod}."):  # a package importing its own submodules
                continue
            dep_room = room_of(dep)
            if dep_room != room and dep_room not in ALLOWED.get(room, set()) | {"base"}:
                wrong.append(f"{mod} ({room}) imports {dep} ({dep_room})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles() -> None:
    g = graph()
    # Tarjan's strongly connected components, iteratively small enough to read.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_kernel_names_no_plugin() -> None:
    for mod, path in modules().items():
        text = path.read_text()
        assert "arena_plugins" not in text or room_of(mod) == "cli", mod


@pytest.mark.parametrize(
    "public",
    [
        "arena_core.types",
        "arena_core.interfaces",
        "arena_core.match",
        "arena_core.testing",
        "arena_core.registry",
        "arena_core.ledger",
    ],
)
def test_public_paths_that_plugins_use_still_import(public: str) -> None:
    __import__(public)


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import contextlib, io, sys\nfrom arena_core.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'sqlalchemy', 'sqlmodel', 'trl', 'rich')"
        " if m in sys.modules]\nprint('heavy:' + ','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "heavy:", out


def test_every_lazy_import_names_something_that_exists() -> None:
    """Imports inside functions run only when their command does: a name moved to another room
    must not leave one behind that fails at run time (`arena report` did, after the move)."""
    import importlib

    missing = []
    files = dict(modules())
    files.update({str(p): p for p in (ROOT.parent / "plugins").rglob("*.py")})
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                continue
            if not node.module.startswith("arena_core"):
                continue
            target = importlib.import_module(node.module)
            for alias in node.names:
                if alias.name == "*" or hasattr(target, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    missing.append(f"{mod}: from {node.module} import {alias.name}")
    assert not missing, "\n".join(missing)
