"""``python -m difair``: the ``difair`` command, for environments where the console script is not on PATH."""

import sys

from difair.cli import main

sys.exit(main())
