"""The import rule: arrows point down, and no unit imports another in a cycle.

    pipeline  chronos.pipeline (and its `python -m` shims chronos.train, eval, optimize, validate)
       |
    agents
       |
    envs
       |
    library   chronos.ptx, features, transforms, assemble, emulate, measure, stores, arch, ...
       |
    kernels

A *unit* is a top-level package (`agents`, `envs`, `kernels`) or a first-level member of
`chronos` (`chronos.measure`, `chronos.train`). The graph is read from the source with `ast`
(every `import`, at any depth, including the ones inside functions), so it sees what a lazy
import hides from `sys.modules`. `python -m chronos.layers` prints the graph and the violations
and exits 1 when there are any; tests/test_layering.py runs the same check.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chronos", "agents", "envs", "kernels")

PIPELINE = frozenset(
    {"chronos.pipeline", "chronos.train", "chronos.eval", "chronos.optimize", "chronos.validate"}
)
RANKS = {"pipeline": 4, "agents": 3, "envs": 2, "library": 1, "kernels": 0}
LIBRARY_FORBIDDEN = frozenset({"torch", "hydra", "omegaconf", "gymnasium"})
"""Third-party packages that belong to the upper layers only."""


def layer(unit: str) -> str:
    """The layer a unit belongs to."""
    if unit in PIPELINE:
        return "pipeline"
    if unit in ("agents", "envs", "kernels"):
        return unit
    return "library"


def unit_of(module: str) -> str | None:
    """`chronos.measure.backends.cupy` -> `chronos.measure`; None for third-party modules."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    if parts[0] == "chronos":
        return "chronos" if len(parts) == 1 else f"chronos.{parts[1]}"
    return parts[0]


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    file: str
    line: int


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path) -> Iterable[tuple[str, int]]:
    """Absolute names of every module an imported name may come from, with the line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = _module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, node.lineno
            for alias in node.names:
                # `from chronos import measure` imports the unit chronos.measure.
                yield f"{mod}.{alias.name}", node.lineno


def source_files(root: Path = ROOT) -> list[Path]:
    """The project's Python files, tests, benchmarks and examples excluded."""
    files: list[Path] = []
    for pkg in PACKAGES:
        if (root / pkg).is_dir():
            files.extend(sorted((root / pkg).rglob("*.py")))
    return files


def edges(root: Path = ROOT) -> list[Edge]:
    """Unit-to-unit import edges (self-edges dropped)."""
    out: list[Edge] = []
    for path in source_files(root):
        src = unit_of(_module_name(path, root))
        assert src is not None
        for mod, line in _imports(path, root):
            dst = unit_of(mod)
            if dst is None or dst == src or dst == "chronos":
                continue
            out.append(Edge(src, dst, str(path.relative_to(root)), line))
    return out


def third_party_edges(root: Path = ROOT) -> list[Edge]:
    """Library or kernels modules importing an upper layer's third-party package."""
    out: list[Edge] = []
    for path in source_files(root):
        src = unit_of(_module_name(path, root))
        assert src is not None
        if layer(src) not in ("library", "kernels"):
            continue
        for mod, line in _imports(path, root):
            top = mod.split(".")[0]
            if top in LIBRARY_FORBIDDEN:
                out.append(Edge(src, top, str(path.relative_to(root)), line))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(root: Path = ROOT) -> list[str]:
    """Every broken rule, one line each (empty: the layering holds)."""
    es = edges(root)
    graph: dict[str, set[str]] = {}
    for e in es:
        graph.setdefault(e.src, set()).add(e.dst)
    problems: list[str] = []
    first: dict[tuple[str, str], Edge] = {}
    for e in es:
        first.setdefault((e.src, e.dst), e)
    for comp in cycles(graph):
        where = [
            f"{e.src} -> {e.dst} ({e.file}:{e.line})"
            for (src, dst), e in sorted(first.items())
            if src in comp and dst in comp
        ]
        problems.append("import cycle between " + ", ".join(comp) + ": " + "; ".join(where))
    for (src, dst), e in sorted(first.items()):
        if RANKS[layer(dst)] > RANKS[layer(src)]:
            problems.append(
                f"upward import {src} ({layer(src)}) -> {dst} ({layer(dst)}) at {e.file}:{e.line}"
            )
    seen: set[tuple[str, str, str]] = set()
    for e in third_party_edges(root):
        if (e.src, e.dst, e.file) not in seen:
            seen.add((e.src, e.dst, e.file))
            problems.append(f"{layer(e.src)} unit {e.src} imports {e.dst} at {e.file}:{e.line}")
    return problems


def main(argv: list[str] | None = None) -> int:
    graph: dict[str, set[str]] = {}
    for e in edges():
        graph.setdefault(e.src, set()).add(e.dst)
    for src in sorted(graph, key=lambda u: (-RANKS[layer(u)], u)):
        print(f"{src:20s} [{layer(src)}] -> {', '.join(sorted(graph[src]))}")
    problems = violations()
    for p in problems:
        print("VIOLATION:", p, file=sys.stderr)
    print(f"{len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
