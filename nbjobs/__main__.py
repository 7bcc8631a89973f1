"""`python -m nbjobs`: the console script (see `nbjobs.cli`)."""

import sys

from .cli import main

sys.exit(main())
