"""Stable digests of the code and values a kernel's reference and inputs depend on.

`KernelSpec.fingerprint` hashes `reference_fn` and `inputs_fn` with `code_digest`, so that an
edited reference or generator (its source, defaults or closure) is a different spec.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import marshal
from typing import Any

import numpy as np


def value_digest(value: Any, depth: int = 0) -> str:
    """A stable text for a value a reference depends on (arrays by their bytes)."""
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {value.shape} " + hashlib.sha256(value.tobytes()).hexdigest()
    if isinstance(value, np.generic):
        return f"{value.dtype} {value.tobytes().hex()}"
    if callable(value) and not isinstance(value, type):
        return code_digest(value, depth + 1)
    return repr(value)


def code_digest(fn: Any, depth: int = 0) -> str:
    """sha256 of a function's source, defaults and closure (its code object's bytes when
    there is no source), so that an edited reference or generator changes the fingerprint."""
    h = hashlib.sha256()
    if depth > 4:  # a closure that reaches itself: its own source already counted
        return h.hexdigest()
    if isinstance(fn, functools.partial):
        h.update(code_digest(fn.func, depth + 1).encode())
        h.update(repr([value_digest(a, depth) for a in fn.args]).encode())
        keywords = (fn.keywords or {}).items()
        kw = sorted((k, value_digest(v, depth)) for k, v in keywords)
        h.update(repr(kw).encode())
        return h.hexdigest()
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn)
    try:
        h.update(inspect.getsource(target).encode())
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        h.update(marshal.dumps(code) if code is not None else repr(fn).encode())
    h.update(repr(getattr(fn, "__defaults__", None)).encode())
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            h.update(value_digest(cell.cell_contents, depth).encode())
        except ValueError:  # an empty cell
            h.update(b"<empty>")
    return h.hexdigest()
