"""Exceptions of the ptxas wrapper.

`PtxasError` means "this PTX is invalid": the environment turns it into an invalid step.
`PtxasNotFoundError` means the machine is not set up, which must never be mistaken for a bad
kernel, so it is not a `PtxasError`. Both pickle (their `args` are their constructor
arguments), so they cross the measurement layer's worker-process boundary intact.
"""

from __future__ import annotations

import re

# ptxas kernel.ptx, line 12; error   : Unknown symbol '%r9'
# ptxas kernel.ptx, line 5; fatal   : Unsupported .version 9.4; current version is '9.0'
_DIAGNOSTIC = re.compile(
    r"^ptxas (?P<file>.+?), line (?P<line>\d+); (?P<severity>error|fatal|warning)\s*: "
    r"(?P<msg>.*)$"
)
# The summary ptxas prints after any error; it says nothing about the cause.
_ABORTED = "Ptx assembly aborted due to errors"
_FATAL = re.compile(r"^ptxas fatal\s*: (?P<msg>.*)$")

INSTALL_HINT = (
    "Install it with `pip install nvidia-cuda-nvcc` (or `pip install 'chronos[ptxas]'`, "
    "`pip install -e '.[ptxas]'` in a checkout), install the CUDA toolkit, or point "
    "CHRONOS_PTXAS at a ptxas executable."
)


class PtxasNotFoundError(FileNotFoundError):
    """No usable ptxas executable was found; the message says how to get one."""


class PtxasError(Exception):
    """ptxas rejected the PTX (or ran past its timeout).

    `returncode` is ptxas's exit status (None after a timeout), `log` its whole output, and
    `errors` the (PTX line, message) pairs of its `line N; error : ...` diagnostics.
    """

    def __init__(
        self, message: str, returncode: int | None, log: str, errors: list[tuple[int, str]]
    ):
        super().__init__(message, returncode, log, errors)
        self.message = message
        self.returncode = returncode
        self.log = log
        self.errors = errors

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_log(cls, returncode: int | None, log: str, ptx: str) -> PtxasError:
        """Build the error with a message that quotes each offending PTX line."""
        errors = parse_errors(log)
        source = ptx.splitlines()
        lines = [f"ptxas rejected the PTX (exit status {returncode}):"]
        previous = 0
        for line, msg in errors:
            if line != previous:
                text = source[line - 1].strip() if 1 <= line <= len(source) else ""
                lines.append(f"  line {line}: {text}".rstrip())
                previous = line
            lines.append(f"    error: {msg}")
        fatal = [
            m["msg"]
            for m in map(_FATAL.match, log.splitlines())
            if m and m["msg"].strip() != _ABORTED
        ]
        if not errors:
            lines.extend(f"  {msg}" for msg in fatal)
            if not fatal:
                lines.append("  " + (log.strip() or "(no output)").replace("\n", "\n  "))
        return cls("\n".join(lines), returncode, log, errors)


class PtxasTimeoutError(PtxasError):
    """ptxas ran past its time limit; not cached, since a rerun may succeed."""


def parse_errors(log: str) -> list[tuple[int, str]]:
    """(line, message) of every error (or fatal error) ptxas reported against a PTX line,
    sorted by line: "line 5; fatal : Unsupported .version 9.4" and "line 39; fatal : Parsing
    error near '}'" are the cause that the closing "assembly aborted" line hides."""
    found = []
    for text in log.splitlines():
        m = _DIAGNOSTIC.match(text)
        if m and m["severity"] in ("error", "fatal"):
            found.append((int(m["line"]), m["msg"].strip()))
    return sorted(found, key=lambda e: e[0])
