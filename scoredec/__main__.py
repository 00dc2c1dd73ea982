"""`python -m scoredec` (and `torchrun ... -m scoredec train ...`): the scoredec command."""

import sys

from scoredec.cli import main

if __name__ == "__main__":
    sys.exit(main())
