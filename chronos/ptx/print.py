"""Printing a Module back to PTX text.

Because a Module keeps its exact source and edits are span replacements, printing is the
identity; this module exists so that callers have one obvious name for it.
"""

from __future__ import annotations

from chronos.ptx.model import Module


def print_ptx(module: Module) -> str:
    """The module's PTX text, byte for byte."""
    return module.text
