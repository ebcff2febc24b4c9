"""`python -m chronos.optimize TARGET`: runs chronos.pipeline.optimize (`--help`)."""

import sys

from chronos.pipeline.optimize import main

if __name__ == "__main__":
    sys.exit(main())
