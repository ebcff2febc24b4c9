"""The `.entry` and `.target` headers of a PTX module, read with regular expressions.

Kept local (not chronos.ptx's parser) so that kernels does not depend on chronos: a spec is
validated against its PTX's entry parameters and target, and the cupy backend sizes scalar
arguments by the PTX's own declarations.
"""

from __future__ import annotations

import re

from kernels.params import ParamEncodingError, type_size

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_ENTRY = re.compile(r"(?<![\w.$])\.entry\s+([A-Za-z_$%][\w$]*)\s*(?:\(([^)]*)\))?")
_TARGET = re.compile(r"^\s*\.target\s+([^\n;]+)", re.M)
_TYPE = re.compile(r"^\.(?:[usbf]\d+|pred)$")
_ARRAY = re.compile(r"\[\s*(\d+)\s*\]")


def ptx_param_decls(ptx: str) -> dict[str, list[tuple[str, str, int]]]:
    """Entry name -> [(param name, param type, bytes)]; `.b8 h[2]` is (h, .b8, 2)."""
    text = _COMMENT.sub(" ", ptx)
    entries: dict[str, list[tuple[str, str, int]]] = {}
    for m in _ENTRY.finditer(text):
        params: list[tuple[str, str, int]] = []
        for raw in (m.group(2) or "").split(","):
            tokens = raw.split()
            if not tokens:
                continue
            name = tokens[-1].split("[", 1)[0]
            ptx_type = next((t for t in tokens[1:-1] if _TYPE.match(t)), "")
            count = _ARRAY.search(raw)
            try:
                size = type_size(ptx_type) if ptx_type and ptx_type != ".pred" else 0
            except ParamEncodingError:
                size = 0
            params.append((name, ptx_type, size * (int(count[1]) if count else 1)))
        entries[m.group(1)] = params
    return entries


def ptx_entries(ptx: str) -> dict[str, list[tuple[str, str]]]:
    """Entry name -> [(param name, param type)] from the `.entry` headers of a module."""
    return {
        entry: [(name, ptx_type) for name, ptx_type, _ in params]
        for entry, params in ptx_param_decls(ptx).items()
    }


def ptx_targets(ptx: str) -> list[str]:
    """Targets named by `.target` (e.g. ["sm_80"]; "sm_90a, debug" -> ["sm_90a", "debug"])."""
    m = _TARGET.search(_COMMENT.sub(" ", ptx))
    return [t.strip() for t in m.group(1).split(",")] if m else []
