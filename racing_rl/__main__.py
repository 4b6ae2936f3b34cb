"""``python -m racing_rl``: the same as the ``racing-rl`` command."""

import sys

from racing_rl.cli import main

sys.exit(main())
