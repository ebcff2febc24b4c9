"""The docs name what is in the tree: README's layout table and the design references."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("chronos", "envs", "agents", "kernels", "conf", "tests", "benchmarks", "docs")


def _layout_paths() -> list[str]:
    """The backticked paths in the first column of README's layout table."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| path | what |", 1)[1].split("\n\n", 1)[0]
    paths = []
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        paths += re.findall(r"`([^`]+)`", first)
    return paths


def test_readme_layout_paths_exist() -> None:
    paths = _layout_paths()
    assert paths, "README.md has no layout table"
    missing = [p for p in paths if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"README's layout table names paths that are not in the tree: {missing}"


def test_readme_layout_covers_the_library_and_pipeline() -> None:
    """Every package under chronos/ (and every top-level module but __init__/__main__) is in
    the table, so a newcomer finds each concept from the README."""
    listed = {p.rstrip("/") for p in _layout_paths()}
    wanted = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "chronos").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and not p.name.startswith("__"))
    }
    missing = sorted(wanted - listed)
    assert not missing, f"README's layout table does not list: {missing}"


def _design_sections() -> set[str]:
    text = (ROOT / "docs" / "design.md").read_text()
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.M))


def test_design_references_name_a_section() -> None:
    """Code cites the design as "docs/design.md §N" and docs as "design §N"; every number
    names a heading of docs/design.md. (§ in chronos/ptx/isa.py cites the PTX ISA.)"""
    sections = _design_sections()
    assert {"3", "3.1", "3.5", "5", "5.4", "6.1", "7"} <= sections
    bad = []
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".yaml", ".md") or not path.is_file():
                continue
            rel = path.relative_to(ROOT).as_posix()
            if rel in ("chronos/ptx/isa.py", "tests/test_docs.py"):
                continue
            code = path.suffix != ".md"
            for line_no, line in enumerate(path.read_text().splitlines(), 1):
                for m in re.finditer(r"§\s?(\d+(?:\.\d+)*)", line):
                    before = line[: m.start()]
                    if code:
                        ok = before.rstrip().endswith("docs/design.md") or re.search(
                            r"docs/design\.md §[\d.]+[,\s–-]+(§[\d.]+[,\s–-]*)*$", before
                        )
                    else:
                        ok = "design" in before[-40:] or "design" in line
                    if ok and m.group(1).rstrip(".") in sections:
                        continue
                    if not code and not ok:
                        continue  # a § of another document (a paper, the PTX ISA)
                    bad.append(f"{rel}:{line_no}: {line.strip()[:80]}")
    assert not bad, "design references without a section in docs/design.md:\n" + "\n".join(bad)
