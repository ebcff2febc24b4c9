"""Importing this registers the kernels of tests/helpers/outside_kernels.py for the process:
`python -m chronos.transforms why --module tests.helpers.register_outside --family outside`."""

from kernels import register
from tests.helpers.outside_kernels import SPECS

for _spec in SPECS:
    register(_spec)
