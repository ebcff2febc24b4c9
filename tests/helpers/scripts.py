"""Import a script that is not a package module (benchmarks/*.py, examples/*.py) in tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(relpath: str, name: str) -> ModuleType:
    """The module at ROOT/`relpath`, registered as `name` (dataclasses look their module up);
    its folder goes on sys.path, as `python <script>` puts it (benchmarks/_common.py)."""
    folder = str((ROOT / relpath).parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec and spec.loader, relpath
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
