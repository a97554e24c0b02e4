"""``python -m difair``: the ``difair`` command, for environments where the console script is not on PATH."""

import sys

from difair.cli import main

if __name__ == "__main__":
    sys.exit(main())
