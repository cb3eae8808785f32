"""The collector's rooms import only downwards, and no collector modules import each other in a loop.

    cli -> commands -> lab -> app -> web -> {ingest, verdicts} -> store -> base (config, errors, ca,
    reload) -> probenet (the wire code)

Every import counts: at module level, inside functions and under TYPE_CHECKING, because each one
is a dependency a reader has to follow. `from package import module` is an import of that module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A room may import itself and rooms of a lower rank; rooms of one rank are peers that import
# neither each other. The longest matching prefix names a module's room.
RANKS = {
    "collector.cli": 7,
    "collector.commands": 6,
    "collector.lab": 5,
    "collector.app": 4,
    "collector.web": 3,
    "collector.ingest": 2,
    "collector.verdicts": 2,
    "collector.store": 1,
    "collector": 0,  # the root package: config, errors, ca, reload
    "probenet": -1,
}


def modules(package_dir: Path) -> dict[str, Path]:
    found = {}
    for path in package_dir.rglob("*.py"):
        name = ".".join(path.relative_to(package_dir.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def room(module: str) -> str:
    """The room of a module: its package under collector/, or `collector` for the root modules."""
    return max((r for r in RANKS if module == r or module.startswith(r + ".")), key=len)


def imported(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """The known modules `module` imports (the closest known module of each imported name)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = name
            while target and target not in known and not target.startswith("probenet"):
                target = target.rpartition(".")[0]
            if target and target != module:
                yield target


def graph(package_dir: Path) -> dict[str, set[str]]:
    mods = modules(package_dir)
    return {m: set(imported(m, p, set(mods))) for m, p in mods.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            source_room, target_room = room(module), room(target)
            if source_room != target_room and RANKS[target_room] >= RANKS[source_room]:
                bad.append(f"{module} ({source_room}) imports {target} ({target_room})")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_collector_rooms_import_only_downwards() -> None:
    bad = upward_imports(graph(ROOT / "collector"))
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_collector_modules_import_each_other_in_no_loop() -> None:
    loops = cycles(graph(ROOT / "collector"))
    assert not loops, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_the_checks_catch_an_upward_import_and_a_loop() -> None:
    edges = {"collector.store.x": {"collector.web.y"}, "collector.web.y": {"collector.store.x"}}
    assert upward_imports(edges) == [
        "collector.store.x (collector.store) imports collector.web.y (collector.web)"
    ]
    assert cycles(edges) == [["collector.store.x", "collector.web.y"]]
