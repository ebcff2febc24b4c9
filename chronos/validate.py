"""`python -m chronos.validate`: runs chronos.pipeline.validate (`--help`)."""

import contextlib
import sys

from chronos.pipeline.validate import main

if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
