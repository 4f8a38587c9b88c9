"""`python -m interference.world`: the command line lives in `interference.commands.world`."""

import sys

from ..commands.world import main

if __name__ == "__main__":
    sys.exit(main())
