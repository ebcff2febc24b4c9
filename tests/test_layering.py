"""Imports point down (pipeline -> agents -> envs -> library -> kernels) with no cycles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chronos import layers


def test_the_project_layering_holds() -> None:
    problems = layers.violations()
    assert problems == [], "\n".join(problems)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in layers.PACKAGES:
        (root / pkg).mkdir(exist_ok=True)
        (root / pkg / "__init__.py").touch()
    return root


def test_a_cycle_between_library_units_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "chronos/measure/__init__.py": "",
            "chronos/measure/a.py": "def f():\n    from chronos.stores import b\n",
            "chronos/stores/__init__.py": "",
            "chronos/stores/b.py": "from chronos.measure.a import f\n",
        },
    )
    problems = layers.violations(root)
    assert len(problems) == 1 and problems[0].startswith("import cycle between chronos.measure")
    assert "chronos/measure/a.py:2" in problems[0]


def test_upward_and_third_party_imports_are_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "chronos/transforms/__init__.py": "from envs import mdp\n",
            "envs/mdp.py": "from ..agents import policy\n",
            "agents/policy.py": "import torch\n",
            "kernels/spec.py": "import hydra\nfrom chronos.ptx import parse\n",
        },
    )
    problems = layers.violations(root)
    assert any("upward import chronos.transforms (library) -> envs (envs)" in p for p in problems)
    assert any(
        "upward import envs (envs) -> agents (agents) at envs/mdp.py:1" in p for p in problems
    )
    assert any("upward import kernels (kernels) -> chronos.ptx (library)" in p for p in problems)
    assert any("kernels unit kernels imports hydra at kernels/spec.py:1" in p for p in problems)
    assert not any("torch" in p for p in problems), "agents may import torch"
    assert len(problems) == 4


def test_the_checker_runs_as_a_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chronos.layers"], capture_output=True, text=True, timeout=60
    )
    assert "violation(s)" in proc.stdout
    assert proc.returncode == (1 if layers.violations() else 0)


def test_no_library_package_imports_the_pipeline() -> None:
    """chronos.pipeline (and its `python -m` shims) sit on top: nothing below imports them."""
    bad = [
        f"{e.src} -> {e.dst} at {e.file}:{e.line}"
        for e in layers.edges()
        if layers.layer(e.src) != "pipeline" and layers.layer(e.dst) == "pipeline"
    ]
    assert bad == [], "\n".join(bad)
    assert layers.layer("chronos.pipeline") == "pipeline"


def test_a_library_import_of_the_pipeline_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "chronos/pipeline/__init__.py": "",
            "chronos/pipeline/config.py": "",
            "chronos/stores/__init__.py": "def f():\n    from chronos.pipeline import config\n",
        },
    )
    problems = layers.violations(root)
    assert problems == [
        "upward import chronos.stores (library) -> chronos.pipeline (pipeline)"
        " at chronos/stores/__init__.py:2"
    ]
