"""The one hash of a PTX text: every store, cache and record keys a kernel state on it."""

from __future__ import annotations

import hashlib


def ptx_sha256(ptx: str) -> str:
    """sha256 hex digest of the PTX's UTF-8 bytes."""
    return hashlib.sha256(ptx.encode("utf-8")).hexdigest()
