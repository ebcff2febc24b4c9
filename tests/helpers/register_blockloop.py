"""Importing this registers tests/helpers/blockloop_kernels.py's kernels for the process:
`python -m chronos.transforms why --module tests.helpers.register_blockloop --family outside`."""

from kernels import register
from tests.helpers.blockloop_kernels import SPECS

for _spec in SPECS:
    register(_spec)
