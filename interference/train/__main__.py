"""`python -m interference.train`: the command line lives in `interference.commands.train`."""

import sys

from ..commands.train import main

if __name__ == "__main__":
    sys.exit(main())
