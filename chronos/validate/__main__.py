"""`python -m chronos.validate` (see the package docstring)."""

import contextlib
import sys

from chronos.validate import main

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())
